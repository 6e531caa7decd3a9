"""The FullStory calls of one export, each one HTTP step: create, operation, link, fetch.

`lifecycle.py` puts them in order (resume-or-create -> wait -> link -> download -> read); this
module only speaks HTTP. FullStory has two shapes of this API (see ../shared/notes/fullstory-api.md):
- spec: type `events`, format `json`, create answers an Operation, the completed operation
  carries `results.downloadUrl`;
- live: type `TYPE_EVENT`, format `FORMAT_JSON`, create answers `{"operationId"}`, the completed
  operation carries `results.searchExportId` and the link comes from
  `GET /search/v1/exports/{id}/results` -> `location`.
Request spellings follow the configured `Dialect` (registry.py); responses are read in either shape.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from requests import PreparedRequest, RequestException, Response
from urllib3.exceptions import HTTPError

from .client import FullStoryClient, path_id, redact_url
from .errors import ExportFileGoneError, RetryableDownloadError, UnexpectedResponseError
from .gzipcheck import CHUNK, GzipCheck
from .registry import Dialect
from .request_fields import CreateFields
from .stopping import StoppedError, StopSignal
from .windows import Window, format_time

logger = logging.getLogger(__name__)

OPERATION_STATES = ("PENDING", "RUNNING", "COMPLETED", "FAILED")


@dataclass(frozen=True)
class ExportJob:
    segment_id: str
    export_type: str
    window: Window

    def __str__(self) -> str:
        return f"segment {self.segment_id!r}, {self.export_type}, window {self.window}"


@dataclass
class DownloadedExport:
    job: ExportJob
    operation_id: str
    path: Path
    export_format: str
    compressed: bool
    bytes_downloaded: int
    empty: bool


@dataclass
class ExportApi:
    """The export endpoints for one host, API shape, format and set of request fields."""

    client: FullStoryClient
    downloads: Any  # a session without credentials (client.download_session)
    dialect: Dialect
    export_format: str
    download_dir: Path
    create_fields: CreateFields = field(default_factory=CreateFields)
    stop: StopSignal | None = None  # checked between download chunks

    def create(self, job: ExportJob) -> str:
        body: dict[str, Any] = {
            "segmentId": job.segment_id,
            "type": self.dialect.type_name(job.export_type),
            "format": self.dialect.format_names[self.export_format],
            "timeRange": {"start": format_time(job.window.start), "end": format_time(job.window.end)},
            **self.create_fields.for_window(job.export_type, job.window),
        }
        answer = self.client.post("/segments/v1/exports", body, context=str(job))
        operation_id = answer.get("operationId") or answer.get("id") if isinstance(answer, dict) else None
        if not operation_id:
            raise UnexpectedResponseError(
                "POST /segments/v1/exports", "'operationId' (live) or 'id' (spec)", answer, str(job)
            )
        logger.info("export created: %s -> operation %s", job, operation_id)
        return str(operation_id)

    def operation(self, job: ExportJob, operation_id: str) -> dict[str, Any]:
        endpoint = f"/operations/v1/{path_id(operation_id)}"
        operation = self.client.get(endpoint, context=str(job))
        if not isinstance(operation, dict) or operation.get("state") not in OPERATION_STATES:
            raise UnexpectedResponseError(
                f"GET {endpoint}", "an Operation with state PENDING/RUNNING/COMPLETED/FAILED", operation
            )
        return operation

    def link(self, job: ExportJob, operation: dict[str, Any]) -> str:
        results = operation.get("results") or {}
        if results.get("downloadUrl"):
            return str(results["downloadUrl"])
        if results.get("searchExportId"):
            endpoint = f"/search/v1/exports/{path_id(str(results['searchExportId']))}/results"
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

    def fetch(
        self, job: ExportJob, operation_id: str, url: str, on_bytes: Callable[[int], None] | None = None
    ) -> DownloadedExport:
        """One download attempt: stream the file to disk, checking it on the way (`on_bytes`
        hears the bytes received so far). Whatever a fresh link might cure raises
        RetryableDownloadError."""
        target = self._target(job)
        # No auth header: the link is presigned (see client.py)
        try:
            response = self.downloads.get(url, stream=True, auth=_no_credentials)
        except RequestException as error:
            raise RetryableDownloadError(f"{type(error).__name__} from {redact_url(url)}") from None
        with response:
            if response.status_code == 403:
                raise RetryableDownloadError(f"link expired or refused (HTTP 403) at {redact_url(url)}")
            if response.status_code in (404, 410):
                raise ExportFileGoneError(
                    f"the export file of {job} (operation {operation_id}) is gone "
                    f"(HTTP {response.status_code} from {redact_url(url)})"
                )
            if response.status_code >= 400:
                raise RetryableDownloadError(f"HTTP {response.status_code} from {redact_url(url)}")
            check = _stream_to(target, response, self.stop, on_bytes)
        problem = check.problem(self.export_format)
        if problem:
            target.unlink(missing_ok=True)
            raise RetryableDownloadError(problem)
        path = target if check.compressed else target.rename(target.with_suffix(""))
        logger.info("downloaded %s: %d bytes from %s", job, check.received, redact_url(url))
        return DownloadedExport(
            job, operation_id, path, self.export_format, bool(check.compressed), check.received, check.empty
        )

    def _target(self, job: ExportJob) -> Path:
        self.download_dir.mkdir(parents=True, exist_ok=True)
        return self.download_dir / download_name(job, self.export_format)


def download_name(job: ExportJob, export_format: str) -> str:
    """A file name of its own for every (segment, type, window): the segment id percent-encoded
    (so "a/b", "a_b" and "a b" stay apart), hashed when it would make the name too long."""
    segment = quote(job.segment_id, safe="-_.")
    if len(segment) > 80:
        segment = segment[:40] + "~" + hashlib.sha256(job.segment_id.encode()).hexdigest()[:16]
    start, end = (t.strftime("%Y%m%dT%H%M%SZ") for t in (job.window.start, job.window.end))
    return f"{segment}-{job.export_type}-{start}-{end}.{export_format}.gz"


def _as_sent(response: Response) -> Iterator[bytes]:
    """The body as the storage host sent it. requests would inflate a body sent with
    `Content-Encoding: gzip` (GCS transcoding, S3 object metadata) without checking the gzip's
    length and CRC, so a truncated file would arrive as text cut short; read as sent, it is
    checked like any other gzip. A short body is an error either way (Content-Length)."""
    return response.raw.stream(CHUNK, decode_content=False)  # type: ignore[no-any-return]


def _stream_to(
    target: Path,
    response: Response,
    stop: StopSignal | None,
    on_bytes: Callable[[int], None] | None = None,
) -> GzipCheck:
    check = GzipCheck()
    try:
        with target.open("wb") as out:
            for chunk in _as_sent(response):
                if stop is not None:
                    stop.check()
                check.feed(chunk)
                out.write(chunk)
                if on_bytes:
                    on_bytes(check.received)
    except StoppedError:
        target.unlink(missing_ok=True)
        raise
    except (RequestException, HTTPError) as error:
        target.unlink(missing_ok=True)
        raise RetryableDownloadError(f"connection broke mid-download ({type(error).__name__})") from None
    return check


def _no_credentials(request: PreparedRequest) -> PreparedRequest:
    """An explicit auth hook that strips credentials, so that requests does not add any
    from ~/.netrc either."""
    request.headers.pop("Authorization", None)
    return request
