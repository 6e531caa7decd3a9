"""The export lifecycle, top to bottom: create -> poll -> link -> download.

One `ExportJob` is one (segment, export type, window). `Exporter.export(job)` asks FullStory to
build the file, waits for the operation, gets a download link and streams the file to disk,
checking that it is a complete gzip. Parsing and loading are someone else's job (readers.py and
the dlt resources): this module hands back a file on disk.

FullStory has two shapes of this API (see docs and ../shared/notes/fullstory-api.md):
- spec: type `events`, format `json`, create answers an Operation, the completed operation
  carries `results.downloadUrl`;
- live: type `TYPE_EVENT`, format `FORMAT_JSON`, create answers `{"operationId"}`, the completed
  operation carries `results.searchExportId` and the link comes from
  `GET /search/v1/exports/{id}/results` -> `location`.
Request spellings follow the configured `Dialect`; responses are read in either shape.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from requests import PreparedRequest, RequestException, Response
from urllib3.exceptions import HTTPError

from .client import FullStoryClient, redact_url
from .errors import DownloadError, OperationFailedError, OperationTimeoutError, UnexpectedResponseError
from .windows import Window, format_time

logger = logging.getLogger(__name__)

EXPORT_TYPES = ("events", "individuals")
EXPORT_FORMATS = ("json", "ndjson", "csv")
GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Dialect:
    name: str
    type_names: dict[str, str]
    format_names: dict[str, str]
    segments_cursor_param: str


SPEC = Dialect(
    "spec",
    {"events": "events", "individuals": "individuals"},
    {"json": "json", "ndjson": "ndjson", "csv": "csv"},
    "pagination_token",
)
LIVE = Dialect(
    "live",
    {"events": "TYPE_EVENT", "individuals": "TYPE_INDIVIDUAL"},
    {"json": "FORMAT_JSON", "ndjson": "FORMAT_NDJSON", "csv": "FORMAT_CSV"},
    "paginationToken",
)
DIALECTS = {d.name: d for d in (SPEC, LIVE)}


@dataclass(frozen=True)
class ExportJob:
    segment_id: str
    export_type: str
    window: Window

    def __str__(self) -> str:
        return f"segment {self.segment_id!r}, {self.export_type}, window {self.window}"


@dataclass
class ExportOptions:
    dialect: Dialect
    export_format: str
    download_dir: Path
    poll_interval: float = 1.0
    poll_max_interval: float = 30.0
    poll_timeout: float = 3 * 3600.0
    download_attempts: int = 3
    # optional live request fields, passed through as given
    extra_body: dict[str, Any] = field(default_factory=dict)


@dataclass
class DownloadedExport:
    job: ExportJob
    operation_id: str
    path: Path
    export_format: str
    compressed: bool
    bytes_downloaded: int
    empty: bool


class Exporter:
    def __init__(self, client: FullStoryClient, download_session: Any, options: ExportOptions) -> None:
        self.client = client
        self.downloads = download_session
        self.options = options

    def export(self, job: ExportJob) -> DownloadedExport:
        operation_id = self.create(job)
        operation = self.wait(job, operation_id)
        return self.download(job, operation_id, operation)

    # -- 1. create ---------------------------------------------------------------------------
    def create(self, job: ExportJob) -> str:
        dialect = self.options.dialect
        body: dict[str, Any] = {
            "segmentId": job.segment_id,
            "type": dialect.type_names[job.export_type],
            "format": dialect.format_names[self.options.export_format],
            "timeRange": {"start": format_time(job.window.start), "end": format_time(job.window.end)},
            **self.options.extra_body,
        }
        answer = self.client.post("/segments/v1/exports", body, context=str(job))
        operation_id = answer.get("operationId") or answer.get("id") if isinstance(answer, dict) else None
        if not operation_id:
            raise UnexpectedResponseError(
                "POST /segments/v1/exports", "'operationId' (live) or 'id' (spec)", answer, str(job)
            )
        logger.info("export created: %s -> operation %s", job, operation_id)
        return str(operation_id)

    # -- 2. poll -----------------------------------------------------------------------------
    def wait(
        self,
        job: ExportJob,
        operation_id: str,
        on_progress: Callable[[str, float], None] | None = None,
    ) -> dict[str, Any]:
        """Poll with growing intervals until COMPLETED; FAILED and time-outs raise.
        `on_progress(state, estimatePctComplete)` hears every poll (default: a log line)."""
        interval = self.options.poll_interval
        deadline = time.monotonic() + self.options.poll_timeout
        while True:
            operation = self.operation(job, operation_id)
            state = operation["state"]
            if state == "COMPLETED":
                return operation
            if state == "FAILED":
                details = operation.get("errorDetails") or "no errorDetails given"
                raise OperationFailedError(
                    f"FullStory export FAILED for {job} (operation {operation_id}): {details}. "
                    "Its cursor did not move; the next run retries this window."
                )
            if time.monotonic() + interval > deadline:
                raise OperationTimeoutError(
                    f"Export for {job} (operation {operation_id}) is still {state} after "
                    f"{self.options.poll_timeout:g} s (poll_timeout). Its cursor did not move; the "
                    "next run resumes this operation."
                )
            percent = float(operation.get("estimatePctComplete") or 0)
            if on_progress:
                on_progress(state, percent)
            else:
                logger.info("waiting for %s: %s, %.0f%% complete", job, state, percent)
            time.sleep(interval)
            interval = min(interval * 1.5, self.options.poll_max_interval)

    def operation(self, job: ExportJob, operation_id: str) -> dict[str, Any]:
        endpoint = f"/operations/v1/{operation_id}"
        operation = self.client.get(endpoint, context=str(job))
        if not isinstance(operation, dict) or operation.get("state") not in (
            "PENDING",
            "RUNNING",
            "COMPLETED",
            "FAILED",
        ):
            raise UnexpectedResponseError(
                f"GET {endpoint}", "an Operation with state PENDING/RUNNING/COMPLETED/FAILED", operation
            )
        return operation

    # -- 3. link -----------------------------------------------------------------------------
    def link(self, job: ExportJob, operation: dict[str, Any]) -> str:
        results = operation.get("results") or {}
        if results.get("downloadUrl"):
            return str(results["downloadUrl"])
        if results.get("searchExportId"):
            endpoint = f"/search/v1/exports/{results['searchExportId']}/results"
            answer = self.client.get(endpoint, context=str(job))
            if isinstance(answer, dict) and answer.get("location"):
                return str(answer["location"])
            raise UnexpectedResponseError(f"GET {endpoint}", "'location'", answer, str(job))
        raise UnexpectedResponseError(
            "GET /operations/v1/{id}",
            "results.downloadUrl (spec) or results.searchExportId (live)",
            results,
            str(job),
        )

    # -- 4. download -------------------------------------------------------------------------
    def download(self, job: ExportJob, operation_id: str, operation: dict[str, Any]) -> DownloadedExport:
        """Stream the file to disk; on an expired link, a broken connection or a damaged
        gzip, start again from the beginning with a fresh link."""
        attempts = self.options.download_attempts
        problems: list[str] = []
        for attempt in range(1, attempts + 1):
            if attempt > 1:
                operation = self.operation(job, operation_id)
            url = self.link(job, operation)
            try:
                return self._fetch(job, operation_id, url)
            except _RetryableDownload as problem:
                problems.append(str(problem))
                logger.warning("download of %s, attempt %d/%d: %s", job, attempt, attempts, problem)
        raise DownloadError(
            f"Could not download the export for {job} (operation {operation_id}) after "
            f"{attempts} attempts: {'; '.join(problems)}. Nothing was loaded for this window and "
            "its cursor did not move; run again."
        )

    def _fetch(self, job: ExportJob, operation_id: str, url: str) -> DownloadedExport:
        target = self._target(job)
        # No auth header: the link is presigned (see client.py)
        try:
            response = self.downloads.get(url, stream=True, auth=_no_credentials)
        except RequestException as error:
            raise _RetryableDownload(f"{type(error).__name__} from {redact_url(url)}") from None
        with response:
            if response.status_code == 403:
                raise _RetryableDownload(f"link expired or refused (HTTP 403) at {redact_url(url)}")
            if response.status_code >= 400:
                raise _RetryableDownload(f"HTTP {response.status_code} from {redact_url(url)}")
            check = _GzipCheck()
            try:
                with target.open("wb") as out:
                    for chunk in _as_sent(response):
                        check.feed(chunk)
                        out.write(chunk)
            except (RequestException, HTTPError) as error:
                target.unlink(missing_ok=True)
                raise _RetryableDownload(f"connection broke mid-download ({type(error).__name__})") from None
        problem = check.problem(self.options.export_format)
        if problem:
            target.unlink(missing_ok=True)
            raise _RetryableDownload(problem)
        path = target if check.compressed else target.rename(target.with_suffix(""))
        logger.info("downloaded %s: %d bytes from %s", job, check.received, redact_url(url))
        return DownloadedExport(
            job, operation_id, path, self.options.export_format, check.compressed, check.received, check.empty
        )

    def _target(self, job: ExportJob) -> Path:
        self.options.download_dir.mkdir(parents=True, exist_ok=True)
        return self.options.download_dir / download_name(job, self.options.export_format)


def _as_sent(response: Response) -> Iterator[bytes]:
    """The body as the storage host sent it. requests would inflate a body sent with
    `Content-Encoding: gzip` (GCS transcoding, S3 object metadata) without checking the gzip's
    length and CRC, so a truncated file would arrive as text cut short; read as sent, it is
    checked like any other gzip. A short body is an error either way (Content-Length)."""
    return response.raw.stream(_CHUNK, decode_content=False)  # type: ignore[no-any-return]


def download_name(job: ExportJob, export_format: str) -> str:
    """A file name of its own for every (segment, type, window): the segment id percent-encoded
    (so "a/b", "a_b" and "a b" stay apart), hashed when it would make the name too long."""
    segment = quote(job.segment_id, safe="-_.")
    if len(segment) > 80:
        segment = segment[:40] + "~" + hashlib.sha256(job.segment_id.encode()).hexdigest()[:16]
    start, end = (t.strftime("%Y%m%dT%H%M%SZ") for t in (job.window.start, job.window.end))
    return f"{segment}-{job.export_type}-{start}-{end}.{export_format}.gz"


def _no_credentials(request: PreparedRequest) -> PreparedRequest:
    """An explicit auth hook that strips credentials, so that requests does not add any
    from ~/.netrc either."""
    request.headers.pop("Authorization", None)
    return request


# the start of a CSV header of FullStory field names (the peek may cut it anywhere)
_CSV_HEADER = re.compile(rb'^"?[A-Za-z_][\w.]*"?(,"?[A-Za-z_][\w.]*"?)*,?"?[\w.]*(\r?\n|$)')


def _looks_like(export_format: str, head: bytes) -> bool:
    if not head:
        return True  # an empty export
    if export_format == "json":
        return head.startswith(b"[")
    if export_format == "ndjson":
        return head.startswith(b"{")
    return bool(_CSV_HEADER.match(head))


class _RetryableDownload(Exception):
    pass


class _GzipCheck:
    """Verifies a gzip stream as it passes by (CRC and length, member by member) without
    keeping what it inflates, so a truncated or damaged download is caught before loading."""

    _PEEK = 64

    def __init__(self) -> None:
        self.received = 0
        self.compressed: bool | None = None
        self._inflater = zlib.decompressobj(wbits=31)
        self._head = b""
        self._inflated = 0
        self._error: str | None = None

    def feed(self, chunk: bytes) -> None:
        if not chunk:
            return
        self.received += len(chunk)
        if self.compressed is None:
            self.compressed = chunk[:2] == GZIP_MAGIC
        if not self.compressed:
            if len(self._head) < self._PEEK:
                self._head += chunk[: self._PEEK]
            return
        if self._error is None:
            self._inflate(chunk)

    def _inflate(self, data: bytes) -> None:
        try:
            while data:
                out = self._inflater.decompress(data, _CHUNK)
                self._note(out)
                data = self._inflater.unconsumed_tail
                if self._inflater.eof and self._inflater.unused_data:
                    # a multi-member gzip: the next member starts here
                    data = self._inflater.unused_data
                    self._inflater = zlib.decompressobj(wbits=31)
        except zlib.error as error:
            self._error = f"the file is not a valid gzip ({error})"

    def _note(self, out: bytes) -> None:
        if len(self._head) < self._PEEK:
            self._head += out[: self._PEEK]
        self._inflated += len(out)

    @property
    def empty(self) -> bool:
        return self._head.strip() in (b"", b"[]") and self._inflated < self._PEEK

    def problem(self, export_format: str) -> str | None:
        if self.received == 0:
            return "the download was empty (0 bytes; an export is always a gzip file)"
        if self._error:
            return self._error
        if self.compressed:
            if not self._inflater.eof:
                return f"the gzip file is truncated ({self.received} bytes received)"
            return None
        # Not gzip: some clients and proxies inflate on the way. Accept it only if it
        # looks like the text we asked for; anything else (an error page) is a damaged download.
        if not _looks_like(export_format, self._head.lstrip(b"\xef\xbb\xbf").lstrip()):
            return f"the file is neither gzip (no 1f 8b magic bytes) nor plain {export_format}"
        return None
