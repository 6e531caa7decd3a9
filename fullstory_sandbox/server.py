"""A local FullStory-compatible HTTP server speaking the spec or the live API shape."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import re
import shutil
import socket
import struct
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from . import current_fields, data, segment_rules
from .batch import BatchJobs
from .encode import write_export
from .errors import ApiError
from .faults import Fault, Faults
from .links import LinkSigner
from .log import LoggedRequest, RequestLog
from .operations import ID_STYLES, LIST_STATES, LIST_TYPES, Operation, new_id
from .segment_rules import SCOPES, SegmentRule, Selection
from .timefmt import format_ts, require_utc
from .validate import TYPES, ExportJob, parse_export_request

FLAVORS = ("spec", "live")
SEGMENT_TOKEN_NAMES = ("nextPaginationToken", "next_pagination_token")
FIELD_SETS = ("current", "legacy")
_CHUNK = 64 * 1024
_NOT_GZIP = b"<Error><Code>InternalError</Code><Message>not gzip, as promised</Message></Error>\n" * 8
_LIVE_EXPORT_TTL = timedelta(days=1)


@dataclass
class Reply:
    """What to answer; the handler turns it into bytes on the wire."""

    status: int
    body: Any = None  # JSON-serialisable
    headers: dict[str, str] = field(default_factory=dict)
    file: Path | None = None  # stream this file instead of a JSON body
    damage: str | None = None  # "truncate" | "corrupt" for download faults
    replacement: bytes | None = None  # sent gzipped instead of the file (Faults.serve_instead)
    reset: bool = False  # drop the connection without answering


def _error(status: int, message: str) -> Reply:
    return Reply(status, ApiError(status, message).body())


def _fault_reply(fault: Fault) -> Reply:
    if fault.status == 0:
        return Reply(0, reset=True)
    headers = {} if fault.retry_after is None else {"Retry-After": f"{fault.retry_after:g}"}
    return Reply(fault.status, {"code": fault.status, "message": fault.message}, headers)


class Sandbox:
    """Run with `with Sandbox() as sandbox:` and point a client at `sandbox.base_url`."""

    def __init__(
        self,
        api_key: str = "sandbox-key",
        flavor: str = "spec",
        segments: list[dict[str, Any]] | None = None,
        events_per_hour: int = 6,
        operation_polls: int = 2,
        operation_seconds: float = 0.0,
        link_ttl: float = 300.0,
        host: str = "127.0.0.1",
        port: int = 0,
        workdir: str | None = None,
        export_cache_dir: str | None = None,
        segment_rules: dict[str, SegmentRule] | None = None,
        operation_ids: str = "base64",
        segments_token: str = "nextPaginationToken",
        field_set: str = "current",
        history_days: int = 90,
    ) -> None:
        if flavor not in FLAVORS:
            raise ValueError(f"flavor must be one of {FLAVORS}")
        if operation_ids not in ID_STYLES:
            raise ValueError(f"operation_ids must be one of {ID_STYLES}")
        if segments_token not in SEGMENT_TOKEN_NAMES:
            raise ValueError(f"segments_token must be one of {SEGMENT_TOKEN_NAMES}")
        if field_set not in FIELD_SETS:
            raise ValueError(f"field_set must be one of {FIELD_SETS}")
        self.api_key = api_key
        self.flavor = flavor
        self.segments = [dict(segment) for segment in (segments or data.DEFAULT_SEGMENTS)]
        self.events_per_hour = events_per_hour
        self.operation_polls = operation_polls
        self.operation_seconds = operation_seconds  # server-side time each export takes, at least
        self.download_chunk_delay = 0.0  # seconds before each 64 KiB chunk of a download
        # sent with downloads as `Content-Encoding` (e.g. "gzip": storage that transcodes, like GCS)
        self.download_content_encoding: str | None = None
        # late-arriving events (data.LateData) and the sandbox's clock for them (None: real time)
        self.late_data: data.LateData | None = None
        self.clock: datetime | None = None
        self.host = host
        self.port = port
        self.workdir = workdir
        # Benchmarks: keep export files here, keyed by what they hold, and reuse them (never deleted)
        self.export_cache_dir = export_cache_dir
        # Segment definitions (segment_rules.py): membership over segmentTimeRange, and scope.
        # Segments without a rule hold every generated event of their own, over all time.
        self.segment_rules = dict(segment_rules or {})
        # "base64" (default): ids like FullStory's, with '+', '/' and '='; "hex": plain ids
        self.operation_ids = operation_ids
        # the live list's name for the next token: today's docs, or an older page's spelling
        self.segments_token = segments_token
        # "current": today's export field names and the newer fields (current_fields.py);
        # "legacy": the rows data.py generates as they are (EventTargetSelectorTok, fewer fields)
        self.field_set = field_set
        # how far "forever in the past" reaches when membership is evaluated (retention)
        self.history_days = history_days
        self.faults = Faults()
        self.batch_jobs = BatchJobs()  # v2 batch import jobs: add(), expected_imports(), ...
        self.base_url = ""
        self._links = LinkSigner(link_ttl)
        self._log = RequestLog()
        self._lock = threading.Lock()
        self._operations: dict[str, Operation] = {}
        self._exports: dict[str, Operation] = {}  # completed exports by export id
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._own_workdir = False
        self._dir = Path(".")

    # Lifecycle

    def start(self) -> Sandbox:
        if self.workdir is None:
            self._dir = Path(tempfile.mkdtemp(prefix="fullstory-sandbox-"))
            self._own_workdir = True
        else:
            self._dir = Path(self.workdir)
            self._dir.mkdir(parents=True, exist_ok=True)
        self._server = _Server((self.host, self.port), _Handler, self)
        self.port = self._server.server_address[1]
        self.base_url = f"http://{self.host}:{self.port}"
        # A short poll interval keeps stop() fast, which matters for tests that start many sandboxes.
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fullstory-sandbox",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._own_workdir:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._own_workdir = False

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # Inspection helpers for tests

    def requests(self, method: str | None = None, path_prefix: str | None = None) -> list[LoggedRequest]:
        return self._log.select(method, path_prefix)

    def clear_log(self) -> None:
        self._log.clear()

    def created_exports(self) -> list[dict[str, Any]]:
        return [
            entry.body
            for entry in self._log.select("POST", "/segments/v1/exports")
            if entry.status == 200 and entry.path == "/segments/v1/exports"
        ]

    def created_operations(self) -> list[dict[str, Any]]:
        """The create bodies of every export the sandbox started, including those whose answer
        was lost (Fault(committed=True)): what FullStory built, and counts against the org."""
        with self._lock:
            operations = sorted(self._operations.values(), key=lambda operation: operation.created_at)
        return [operation.request for operation in operations]

    def expected_rows(
        self,
        export_type: str,
        segment_id: str,
        start: datetime,
        end: datetime,
        fields: Iterable[str] | None = None,
        as_of: datetime | None = None,
        *,
        segment_time_range: tuple[datetime | None, datetime | None] | None = None,
        scope: str | None = None,
        timezone: str | None = None,
    ) -> list[dict[str, Any]]:
        """Exactly the rows an export of this window holds (export_type in either spelling);
        with late data, the rows visible at `as_of` (default: all, once everything arrived).
        `segment_time_range` (None bounds: "") and `scope` (either spelling, e.g. "SCOPE_SESSIONS"
        or "sessions") as the create request sent them; membership is evaluated at `now()`."""
        kind = {**TYPES["spec"], **TYPES["live"]}[export_type]
        job = ExportJob(
            segment_id, kind, "json", require_utc(start), require_utc(end), tuple(fields) if fields else None
        )
        late = (self.late_data, as_of) if self.late_data and as_of else None
        scope_name = SCOPES.get(scope, scope) if scope else None
        selection = self._selection(segment_id, segment_time_range, scope_name, timezone)
        return list(_rows(job, self.events_per_hour, late, selection, self.field_set)())

    def _selection(
        self,
        segment_id: str,
        requested: tuple[datetime | None, datetime | None] | None,
        scope: str | None,
        timezone: str | None,
    ) -> Selection | None:
        now = self.now()
        return segment_rules.resolve(
            segment_id,
            self.segment_rules.get(segment_id),
            requested,
            scope,
            timezone,
            now,
            now - timedelta(days=self.history_days),
        )

    def now(self) -> datetime:
        return self.clock or datetime.now(UTC)

    def finish_operations(self) -> None:
        """Every operation created so far needs no more server-side time (see operation_seconds)."""
        with self._lock:
            for operation in self._operations.values():
                operation.ready_at = 0.0

    def forget_operations(self) -> None:
        """Every operation created so far is gone: polling it answers 404 (as expired ones do)."""
        with self._lock:
            self._operations.clear()

    def expire_links(self) -> None:
        self._links.expire_all()

    # Request handling (called from handler threads)

    def _log_request(self, entry: LoggedRequest) -> None:
        self._log.add(entry)

    def handle(
        self, method: str, path: str, query: dict[str, list[str]], headers: dict[str, str], body: Any
    ) -> Reply:
        try:
            if method == "GET" and path.startswith("/download/"):
                return self._download(unquote(path.removeprefix("/download/")), query, headers)
            if headers.get("Authorization") != f"Basic {self.api_key}":
                return _error(401, "unauthorized: send 'Authorization: Basic <api key>'")
            return self._route(method, path.rstrip("/") or "/", query, body)
        except ApiError as error:
            return Reply(error.status, error.body())

    def _route(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> Reply:
        # Ids travel percent-encoded; an unencoded '/' inside one makes another path (a 404).
        parts = [unquote(part) for part in path.strip("/").split("/")]
        if parts[:3] == ["v2", "events", "batch"]:
            status, reply, headers = self.batch_jobs.handle(method, parts[3:], query, self.faults)
            return Reply(status, reply, headers, reset=status == 0)
        if method == "GET" and parts == ["segments", "v1"]:
            return self._list_segments(query)
        if method == "POST" and parts == ["segments", "v1", "exports"]:
            return self._create_export(body)
        if method == "GET" and len(parts) == 3 and parts[:2] == ["segments", "v1"]:
            return self._get_segment(parts[2])
        if method == "GET" and parts == ["operations", "v1"]:
            return self._list_operations(query)
        if method == "GET" and len(parts) == 3 and parts[:2] == ["operations", "v1"]:
            return self._poll(parts[2])
        if (
            method == "GET"
            and len(parts) == 5
            and parts[:3] == ["search", "v1", "exports"]
            and parts[4] == "results"
        ):
            return self._live_results(parts[3])
        return _error(404, f"no such endpoint: {method} {path}")

    def _list_segments(self, query: dict[str, list[str]]) -> Reply:
        if fault := self.faults.take("segments"):
            return _fault_reply(fault)
        limit = _int_param(query, "limit", default=20)
        if not 1 <= limit <= 100:
            raise ApiError(400, "limit must be between 1 and 100")
        token = _param(query, "pagination_token")
        if self.flavor == "live":
            token = _param(query, "paginationToken") or token
        offset = _decode_token(token) if token else 0
        page = self.segments[offset : offset + limit]
        more = offset + limit < len(self.segments)
        if self.flavor == "spec":
            reply: dict[str, Any] = {"segments": page}
            if more:
                reply["pagination_token"] = _encode_token(offset + limit)
            return Reply(200, reply)
        # The live API always names the next token, with "" on the last page.
        return Reply(
            200, {"segments": page, self.segments_token: _encode_token(offset + limit) if more else ""}
        )

    def _get_segment(self, segment_id: str) -> Reply:
        if fault := self.faults.take("segment", segment_id):
            return _fault_reply(fault)
        for segment in self.segments:
            if segment["id"] == segment_id:
                return Reply(200, segment)
        return _error(404, f"segment not found: {segment_id}")

    def _create_export(self, body: Any) -> Reply:
        segment_id = body.get("segmentId") if isinstance(body, dict) else None
        fault = self.faults.take("create", segment_id if isinstance(segment_id, str) else None)
        if fault and not fault.committed:
            return _fault_reply(fault)
        job = parse_export_request(body, self.flavor, {segment["id"] for segment in self.segments})
        operation = Operation(
            id=new_id(self.operation_ids),
            export_id=new_id(self.operation_ids),
            job=job,
            events_per_hour=self.events_per_hour,
            late=(self.late_data, self.now()) if self.late_data else None,
            selection=self._selection(job.segment_id, job.segment_range, job.scope, job.timezone),
            request=body,
            created_at=datetime.now(UTC),
            failure=self.faults.take_operation_failure(job.segment_id),
            ready_at=time.monotonic() + self.operation_seconds,
        )
        with self._lock:
            self._operations[operation.id] = operation
        if fault:  # created, and then the answer is lost
            return _fault_reply(fault)
        if self.flavor == "live":
            return Reply(200, {"operationId": operation.id})
        return Reply(200, self._operation_body(operation))

    def _poll(self, operation_id: str) -> Reply:
        with self._lock:
            operation = self._operations.get(operation_id)
        segment_id = operation.job.segment_id if operation else None
        if fault := self.faults.take("operation", segment_id):
            return _fault_reply(fault)
        if operation is None:
            raise ApiError(404, f"operation not found: {operation_id}")
        with operation.lock:  # also serialises writing the export file once
            completes = (
                operation.polls + 1 >= self.operation_polls
                and time.monotonic() >= operation.ready_at
                and operation.failure is None
            )
            # In spec flavor the completing poll is the one that hands out a link, so "link" faults hit it.
            if completes and self.flavor == "spec" and (fault := self.faults.take("link", segment_id)):
                return _fault_reply(fault)
            operation.polls += 1
            state, _ = operation.state(self.operation_polls, self.flavor)
            if state in ("COMPLETED", "FAILED") and operation.finished_at is None:
                if state == "COMPLETED":
                    self._write_export_file(operation)
                operation.finished_at = datetime.now(UTC)
            return Reply(200, self._operation_body(operation))

    def _write_export_file(self, operation: Operation) -> None:
        job = operation.job
        if self.export_cache_dir is None:
            path = self._dir / f"{_file_safe(operation.export_id)}.{job.fmt}.gz"
            rows = _rows(job, operation.events_per_hour, operation.late, operation.selection, self.field_set)
            write_export(path, rows, job.fmt)
        else:
            name = export_cache_name(job, operation.events_per_hour, operation.selection, self.field_set)
            path = Path(self.export_cache_dir) / name
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                partial = path.with_name(f"{path.name}.{_file_safe(operation.export_id)}.part")
                rows = _rows(job, operation.events_per_hour, None, operation.selection, self.field_set)
                write_export(partial, rows, job.fmt)
                partial.replace(path)
        operation.file = path
        with self._lock:
            self._exports[operation.export_id] = operation

    def _operation_body(self, operation: Operation) -> dict[str, Any]:
        state, pct = operation.state(self.operation_polls, self.flavor)
        body: dict[str, Any] = {
            "id": operation.id,
            # hauser refuses an operation whose type is not SEARCH_EXPORT; the spec says SEGMENT_EXPORT
            "type": "SEARCH_EXPORT" if self.flavor == "live" else "SEGMENT_EXPORT",
            "state": state,
            "createdAt": format_ts(operation.created_at),
            "estimatePctComplete": pct,
        }
        if operation.finished_at is not None:
            body["finishedAt"] = format_ts(operation.finished_at)
        if state == "FAILED":
            body["errorDetails"] = operation.failure
        elif state == "COMPLETED" and self.flavor == "spec":
            link, _ = self._links.sign(operation.export_id)  # a fresh link on every poll
            body["results"] = {"downloadUrl": self.base_url + link}
        elif state == "COMPLETED":
            assert operation.finished_at is not None
            expires = operation.finished_at + _LIVE_EXPORT_TTL
            body["results"] = {"searchExportId": operation.export_id, "expires": format_ts(expires)}
        return body

    def _list_operations(self, query: dict[str, list[str]]) -> Reply:
        """`GET /operations/v1?type=&state=&limit=&paginationToken=`, newest first. Search
        exports carry results but no details (FullStory's docs), so nothing here says which
        segment or time range an operation exports."""
        if fault := self.faults.take("operations"):
            return _fault_reply(fault)
        limit = _int_param(query, "limit", default=100)
        if not 1 <= limit <= 100:
            raise ApiError(400, "limit must be between 1 and 100")
        kind = _param(query, "type")
        state = _param(query, "state")
        if kind and kind not in LIST_TYPES:
            raise ApiError(400, f"invalid type {kind!r}: expected one of {list(LIST_TYPES)}")
        if state and state not in LIST_STATES:
            raise ApiError(400, f"invalid state {state!r}: expected one of {list(LIST_STATES)}")
        token = _param(query, "paginationToken") or _param(query, "pagination_token")
        offset = _decode_token(token) if token else 0
        with self._lock:
            operations = sorted(self._operations.values(), key=lambda op: op.created_at, reverse=True)
        bodies = []
        if kind in (None, "", "SEARCH_EXPORT"):  # the sandbox runs no other kind of operation
            for operation in operations:
                with operation.lock:
                    body = self._operation_body(operation)
                if not state or body["state"] == state:
                    bodies.append(body)
        page = bodies[offset : offset + limit]
        more = offset + limit < len(bodies)
        return Reply(
            200, {"operations": page, "nextPaginationToken": _encode_token(offset + limit) if more else ""}
        )

    def _live_results(self, export_id: str) -> Reply:
        with self._lock:
            operation = self._exports.get(export_id)
        if fault := self.faults.take("link", operation.job.segment_id if operation else None):
            return _fault_reply(fault)
        if self.flavor != "live" or operation is None:
            raise ApiError(404, f"search export not found: {export_id}")
        link, expires = self._links.sign(export_id)
        return Reply(
            200,
            {"location": self.base_url + link, "expires": format_ts(datetime.fromtimestamp(expires, UTC))},
        )

    def _download(self, export_id: str, query: dict[str, list[str]], headers: dict[str, str]) -> Reply:
        # Presigned URLs carry their own credentials; a second mechanism is an error on S3-style stores.
        if "Authorization" in headers:
            raise ApiError(
                400,
                "Only one auth mechanism allowed; only the signature query parameter "
                "or the Authorization header should be specified",
            )
        problem = self._links.problem(
            export_id, _param(query, "expires") or "", _param(query, "signature") or ""
        )
        if problem:
            raise ApiError(403, problem)
        with self._lock:
            operation = self._exports.get(export_id)
        if operation is None or operation.file is None:
            raise ApiError(404, f"no such export: {export_id}")
        if fault := self.faults.take("download", operation.job.segment_id):
            return _fault_reply(fault)
        encoding = self.download_content_encoding
        return Reply(
            200,
            headers={
                "Content-Type": "application/gzip",
                **({"Content-Encoding": encoding} if encoding else {}),
            },
            file=operation.file,
            damage=self.faults.take_download_damage(),
            replacement=self.faults.take_download_replacement(),
        )


def export_cache_name(
    job: ExportJob,
    events_per_hour: int,
    selection: Selection | None = None,
    field_set: str = "current",
) -> str:
    """The file name of an export in an export cache: everything that decides its content."""
    stamp = "%Y%m%dT%H%M%S%fZ"
    name = f"{job.segment_id}-{job.export_type}-{job.start:{stamp}}-{job.end:{stamp}}-eph{events_per_hour}"
    if job.fields:
        name += "-f" + hashlib.blake2b("\n".join(job.fields).encode(), digest_size=6).hexdigest()
    # a selection that keeps every row of the window (no rule, a range holding the window: the
    # default "all" range of `everyone`) names the same file as none; its range moves with the
    # clock, so keying on it would generate the same rows again on every run
    if selection is not None and not segment_rules.covers_everything(selection, (job.start, job.end)):
        name += "-m" + hashlib.blake2b(selection.key().encode(), digest_size=6).hexdigest()
    if field_set != "current":
        name += f"-{field_set}"
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name) + f".{job.fmt}.gz"


def _rows(
    job: ExportJob,
    events_per_hour: int,
    late: tuple[data.LateData, datetime] | None = None,
    selection: Selection | None = None,
    field_set: str = "current",
) -> Callable[[], Iterable[dict[str, Any]]]:
    """A factory rather than a generator: CSV encoding reads the rows twice. `late`: the late
    data model and the moment the export was asked for (events exports only); `selection`:
    the segment's members and the scope (segment_rules.py)."""
    generate = data.events if job.export_type == "events" else data.individuals

    def rows() -> Iterable[dict[str, Any]]:
        produced: Iterable[dict[str, Any]] = generate(job.segment_id, job.start, job.end, events_per_hour)
        produced = segment_rules.select(
            selection, job.export_type, (job.start, job.end), produced, events_per_hour
        )
        if late and job.export_type == "events":
            produced = data.visible(produced, *late)
        if field_set == "current":
            produced = current_fields.add(produced, job.export_type)
        return data.select_fields(produced, job.fields) if job.fields else produced

    return rows


def _file_safe(identifier: str) -> str:
    """Base64 ids hold '/', which a file name cannot."""
    return identifier.replace("/", "_").replace("+", "-")


def _param(query: dict[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[0] if values else None


def _int_param(query: dict[str, list[str]], name: str, default: int) -> int:
    text = _param(query, name)
    if text is None or text == "":
        return default
    try:
        return int(text)
    except ValueError:
        raise ApiError(400, f"{name} must be an integer") from None


def _encode_token(offset: int) -> str:
    # Opaque to clients, like the real tokens, so nobody is tempted to compute them.
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode()


def _decode_token(token: str) -> int:
    try:
        prefix, _, number = base64.urlsafe_b64decode(token.encode()).decode().partition(":")
        if prefix == "offset" and number.isdigit():
            return int(number)
    except ValueError:
        pass
    raise ApiError(400, f"invalid pagination token: {token!r}")


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], sandbox: Sandbox
    ) -> None:
        self.sandbox = sandbox
        super().__init__(address, handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"  # keep-alive, as clients reuse connections against the real API
    disable_nagle_algorithm = True  # headers and body go out as separate writes: no 40 ms stalls

    def do_GET(self) -> None:  # noqa: N802 (name required by BaseHTTPRequestHandler)
        self._handle("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._handle("POST")

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Silent: tests and benchmarks read the sandbox's request log instead of stderr."""

    def _handle(self, method: str) -> None:
        received = time.time()
        url = urlsplit(self.path)
        query = parse_qs(url.query, keep_blank_values=True)
        headers = dict(self.headers.items())
        body, malformed = self._read_json_body()
        sandbox = self.server.sandbox
        reply = _error(400, "request body is not valid JSON") if malformed else None
        if reply is None:
            try:
                reply = sandbox.handle(method, url.path, query, headers, body)
            except Exception as error:  # a bug must answer 500, not hang the client
                reply = _error(500, f"sandbox error: {error!r}")
        # logged before answering, so a client that got its answer finds the request in the log
        sandbox._log_request(LoggedRequest(method, url.path, query, headers, body, reply.status, received))
        try:
            self._send(reply)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client went away mid-answer; nothing left to do

    def _read_json_body(self) -> tuple[Any, bool]:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if not raw:
            return None, False
        try:
            return json.loads(raw), False
        except ValueError:
            return None, True

    def _send(self, reply: Reply) -> None:
        if reply.reset:
            self._reset()
            return
        if reply.file is not None:
            self._send_file(reply)
            return
        payload = json.dumps(reply.body).encode()
        self.send_response(reply.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def _send_file(self, reply: Reply) -> None:
        assert reply.file is not None
        if reply.replacement is not None:
            payload = gzip.compress(reply.replacement)
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            return
        size = reply.file.stat().st_size
        if reply.damage == "truncate":
            size //= 2  # a matching Content-Length makes the response look complete; the gzip is not
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(_NOT_GZIP) if reply.damage == "corrupt" else size))
        self.end_headers()
        if reply.damage == "corrupt":
            self.wfile.write(_NOT_GZIP)
            return
        with reply.file.open("rb") as source:
            remaining = size
            while remaining > 0:
                chunk = source.read(min(_CHUNK, remaining))
                if not chunk:
                    break
                if self.server.sandbox.download_chunk_delay:
                    time.sleep(self.server.sandbox.download_chunk_delay)  # a slow storage host
                self.wfile.write(chunk)
                remaining -= len(chunk)

    def _reset(self) -> None:
        """Abort with a TCP RST: SO_LINGER with a zero timeout makes close() discard and reset."""
        self.close_connection = True
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()
