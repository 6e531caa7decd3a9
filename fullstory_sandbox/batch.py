"""FullStory v2 batch import results: job status, imported events and import errors.

Endpoints (all GET, authenticated like the rest of the sandbox):
- `/v2/events/batch/{job_id}` -> `{"imports": n, "errors": n, "job": {"id", "status", "created",
  "finished"}}`; status PROCESSING, COMPLETED or FAILED (FAILED includes partial failure).
- `/v2/events/batch/{job_id}/imports?page_token=&include_schema=` -> `{"results", "total_records",
  "next_page_token"}`; `total_records` is a string, as in the API; `next_page_token` is "" on the
  last page. HTTP 202 while the job is still processing.
- `/v2/events/batch/{job_id}/errors?page_token=` -> the same paging; each result is
  `{"message", "code", "event", "shared"}`.
- An unknown job id answers 404 `{"code": "resource_not_found", "message"}`.

Everything is deterministic: a job's rows depend only on its id and sizes, so a test can ask
`sandbox.batch_jobs.expected_imports(job_id)` for exactly what the API serves.

Switches per job (see `BatchJobs.add`):
- `polls`: how many requests (to any of the job's endpoints) are answered as still processing;
- `results_lag`: how many more 202s imports, and errors, each answer after the status already
  says the job finished;
- `repeat_token`: from the second page on, `next_page_token` repeats the token of the request;
- `total_records_delta`: what `total_records` adds to the true count.

Faults: endpoints "batch_job", "batch_imports" and "batch_errors"; a Fault's `segment_id`, when
set, is matched against the job id.
"""

from __future__ import annotations

import base64
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote

from .faults import Fault, Faults
from .timefmt import format_ts

PAGE_SIZE = 3
BASE_TIME = datetime(2026, 10, 1, 12, 0, tzinfo=UTC)
RUN_TIME = timedelta(seconds=95)  # how long a job "took": finished - created
PROCESSING, COMPLETED, FAILED = "PROCESSING", "COMPLETED", "FAILED"
KINDS = ("imports", "errors")

# (status, JSON body, headers); status 0 means: reset the connection instead of answering
BatchReply = tuple[int, Any, dict[str, str]]

_NAMES = ("Support Ticket", "Order Completed", "Signed Up", "Plan Changed")
# (country, region, city, latitude, longitude): the location context of FullStory's v2 events API
# (node SDK LocationContext: latitude and longitude are doubles, plus ip_address)
_COUNTRIES = (
    ("US", "US-CA", "San Francisco", 37.7749, -122.4194),
    ("DE", "DE-BE", "Berlin", 52.52, 13.405),
    ("JP", "JP-13", "Tokyo", 35.6762, 139.6503),
)
_ERROR_CODES = (
    ("invalid_argument", "timestamp is not a valid ISO 8601 time"),
    ("required_field", "uid is required"),
    ("invalid_argument", "properties.amount_real must be a number"),
)


def imported_event(job_id: str, index: int, include_schema: bool = False) -> dict[str, Any]:
    """The `index`-th imported event of a job, in the API's nested shape."""
    moment = BASE_TIME + timedelta(seconds=37 * index, milliseconds=250 * (index % 3))
    event: dict[str, Any] = {
        "user": {"id": str(4_000_000 + index), "uid": f"{job_id}-user-{index % 4}"},
        "context": {
            "browser": {
                "url": f"https://app.example.com/tickets/{index}",
                "user_agent": "Example_User_Agent/1.0",
                "initial_referrer": "https://referrer.example.com",
            }
        },
        "name": _NAMES[index % len(_NAMES)],
        "timestamp": format_ts(moment),
        "properties": {
            "id": 424_242 + index,
            "priority": "High" if index % 2 else "Normal",
            "amount_real": 9.5 * index,
            "tags": ["batch", f"row-{index}"],
            "customer": {"plan": "pro", "seats": index + 1},
        },
    }
    if index % 4 != 3:  # some events are not attached to a session
        event["session"] = {"id": f"{4_000_000 + index}:{1_298_251_231 + index}", "uid": f"s-{index}"}
    if index % 2 == 0:  # and only some carry a location
        country, region, city, latitude, longitude = _COUNTRIES[index % len(_COUNTRIES)]
        event["context"]["location"] = {
            "country": country,
            "region": region,
            "city": city,
            "latitude": latitude,
            "longitude": longitude,
            "ip_address": f"198.51.100.{index % 250 + 1}",
        }
    if index % 5 == 4:
        event["context"]["device"] = {"manufacturer": "Example", "model": f"X{index}"}
    if include_schema:
        event["schema"] = {
            "properties": {
                "id": "int",
                "priority": "str",
                "amount_real": "real",
                "tags": "strs",
                "customer": {"plan": "str", "seats": "int"},
            }
        }
    return event


def import_error(job_id: str, index: int) -> dict[str, Any]:
    """The `index`-th error of a job: what went wrong and the event that was refused."""
    code, message = _ERROR_CODES[index % len(_ERROR_CODES)]
    event: dict[str, Any] = {
        "user": {"uid": f"{job_id}-rejected-{index}"},
        "name": f"Broken Event {index}",
        "timestamp": "yesterday-ish"
        if code == "invalid_argument" and index % 3 == 0
        else "2026-10-01T09:30:00Z",
        "properties": {"amount_real": "lots", "attempt": index},
    }
    if code == "required_field":
        event["user"] = {"id": str(5_000_000 + index)}
    return {
        "message": message,
        "code": code,
        "event": event,
        "shared": {"context": {"browser": {"url": "https://app.example.com/batch"}}},
    }


@dataclass
class BatchJob:
    id: str
    imports: int
    errors: int
    created: datetime
    status: str  # the final status, once the job has finished
    polls: int = 0
    results_lag: int = 0
    repeat_token: bool = False
    total_records_delta: int = 0
    requests: int = 0  # requests seen so far, counted against `polls`
    lagged: dict[str, int] = field(default_factory=dict)  # 202s served per kind, against `results_lag`
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def finished(self) -> datetime:
        return self.created + RUN_TIME


class BatchJobs:
    """The batch import jobs a sandbox knows, by id. Thread-safe."""

    def __init__(self, page_size: int = PAGE_SIZE, defaults: bool = True) -> None:
        self.page_size = page_size
        self._lock = threading.Lock()
        self._jobs: dict[str, BatchJob] = {}
        if defaults:
            # a finished job whose imports span three pages (3 + 3 + 1)
            self.add("batch-completed", imports=7)
            # a job that answers "still processing" to its first three requests
            self.add("batch-processing", imports=5, polls=3)
            # a partial failure: FAILED, with both imported events and errors, two pages each
            self.add("batch-partial", imports=4, errors=5)
            # nothing imported at all
            self.add("batch-failed", imports=0, errors=2)
            self.add("batch-empty", imports=0)

    def add(
        self,
        job_id: str,
        imports: int = 5,
        errors: int = 0,
        *,
        polls: int = 0,
        status: str | None = None,
        results_lag: int = 0,
        repeat_token: bool = False,
        total_records_delta: int = 0,
    ) -> BatchJob:
        """Add (or replace) a job. `status` defaults to FAILED when it has errors, else COMPLETED."""
        final = status or (FAILED if errors else COMPLETED)
        if final not in (COMPLETED, FAILED):
            raise ValueError(f"a job finishes COMPLETED or FAILED, not {final!r}")
        with self._lock:
            job = BatchJob(
                id=job_id,
                imports=imports,
                errors=errors,
                created=BASE_TIME + timedelta(minutes=len(self._jobs)),
                status=final,
                polls=polls,
                results_lag=results_lag,
                repeat_token=repeat_token,
                total_records_delta=total_records_delta,
            )
            self._jobs[job_id] = job
        return job

    def get(self, job_id: str) -> BatchJob:
        with self._lock:
            return self._jobs[job_id]

    def ids(self) -> list[str]:
        with self._lock:
            return list(self._jobs)

    # What a job serves, for assertions

    def expected_imports(self, job_id: str, include_schema: bool = False) -> list[dict[str, Any]]:
        """Every imported event of the job, in page order, as the API sends them."""
        job = self.get(job_id)
        return [imported_event(job.id, i, include_schema) for i in range(job.imports)]

    def expected_errors(self, job_id: str) -> list[dict[str, Any]]:
        job = self.get(job_id)
        return [import_error(job.id, i) for i in range(job.errors)]

    def status_body(self, job_id: str, processing: bool = False) -> dict[str, Any]:
        job = self.get(job_id)
        return _status_body(job, processing)

    # Request handling

    def handle(
        self, method: str, parts: list[str], query: dict[str, list[str]], faults: Faults
    ) -> BatchReply:
        """`parts`: the path segments after /v2/events/batch."""
        if method != "GET" or not 1 <= len(parts) <= 2 or (len(parts) == 2 and parts[1] not in KINDS):
            return _api_error(404, "resource_not_found", f"no such endpoint: {method} /v2/events/batch/...")
        job_id = unquote(parts[0])
        kind = parts[1] if len(parts) == 2 else None
        fault = faults.take(f"batch_{kind}" if kind else "batch_job", job_id)
        if fault is not None:
            return _fault_reply(fault)
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            return _api_error(404, "resource_not_found", f"batch import job not found: {job_id}")
        with job.lock:
            job.requests += 1
            processing = job.requests <= job.polls
            lagging = kind is not None and not processing and job.lagged.get(kind, 0) < job.results_lag
            if lagging and kind is not None:
                job.lagged[kind] = job.lagged.get(kind, 0) + 1
        if kind is None:
            return 200, _status_body(job, processing), {}
        if processing or lagging:
            return 202, {}, {}
        return self._page(job, kind, query)

    def _page(self, job: BatchJob, kind: str, query: dict[str, list[str]]) -> BatchReply:
        include_schema = _param(query, "include_schema") or "false"
        if include_schema not in ("true", "false"):
            return _api_error(400, "invalid_argument", "include_schema must be true or false")
        token = _param(query, "page_token") or ""
        offset = _decode_token(job.id, token) if token else 0
        if offset is None:
            return _api_error(400, "invalid_argument", f"invalid page_token: {token!r}")
        count = job.imports if kind == "imports" else job.errors
        end = min(offset + self.page_size, count)
        if kind == "imports":
            results = [imported_event(job.id, i, include_schema == "true") for i in range(offset, end)]
        else:
            results = [import_error(job.id, i) for i in range(offset, end)]
        next_token = _encode_token(job.id, end) if end < count else ""
        if job.repeat_token and token and next_token:
            next_token = token  # the server bug this switch simulates: the same page token again
        body = {
            "results": results,
            "total_records": str(count + job.total_records_delta),
            "next_page_token": next_token,
        }
        return 200, body, {}


def _status_body(job: BatchJob, processing: bool) -> dict[str, Any]:
    info: dict[str, Any] = {"id": job.id, "status": PROCESSING if processing else job.status}
    info["created"] = format_ts(job.created)
    if processing:
        return {"imports": 0, "errors": 0, "job": info}
    info["finished"] = format_ts(job.finished)
    return {"imports": job.imports, "errors": job.errors, "job": info}


def _api_error(status: int, code: str, message: str) -> BatchReply:
    return status, {"code": code, "message": message}, {}


def _fault_reply(fault: Fault) -> BatchReply:
    headers = {} if fault.retry_after is None else {"Retry-After": f"{fault.retry_after:g}"}
    return fault.status, {"code": fault.status, "message": fault.message}, headers


def _param(query: dict[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[0] if values else None


def _encode_token(job_id: str, offset: int) -> str:
    # opaque, like the real tokens ("asd543="), and bound to its job
    return base64.urlsafe_b64encode(f"{job_id}\n{offset}".encode()).decode()


def _decode_token(job_id: str, token: str) -> int | None:
    try:
        owner, _, number = base64.urlsafe_b64decode(token.encode()).decode().partition("\n")
    except ValueError:
        return None
    return int(number) if owner == job_id and number.isdigit() else None
