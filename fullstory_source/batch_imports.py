"""Results of FullStory v2 batch imports: job status, imported events and import errors.

Three resources for a list of batch import job ids (the ids `POST /v2/events/batch` answered):

- `batch_import_jobs`: one row per job from `GET /v2/events/batch/{job_id}` (status, counts,
  created, finished), merged on `job_id`.
- `batch_imported_events`: `GET /v2/events/batch/{job_id}/imports`, paged with `page_token` /
  `next_page_token`, one row per imported event, its nested objects flattened into columns.
- `batch_import_errors`: `GET /v2/events/batch/{job_id}/errors`, same paging, one row per refused
  event with FullStory's message and code.

Both row resources also write one row per (job, kind) to `batch_import_audit`: `total_records`
(FullStory's count, a string in the API) against the rows actually loaded. A mismatch is logged
as a warning and kept there with `matches = false`, so an audit is one query.

Waiting: a job that is still processing answers its status with PROCESSING and its imports/errors
with HTTP 202. Each job is waited for once per run (shared by the three resources), with growing
intervals, until it finishes or `wait_timeout` runs out; the row resources then fail with
`BatchJobStillProcessingError` (nothing is loaded), while `batch_import_jobs` records the job as
PROCESSING.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import dlt
from dlt.sources import DltResource

from .client import FullStoryClient
from .errors import (
    BatchJobStillProcessingError,
    ConfigurationError,
    FullStoryAPIError,
    UnexpectedResponseError,
    UnknownBatchJobError,
)
from .polling import poll_waits

__all__ = [
    "AUDIT_TABLE",
    "BatchJobStillProcessingError",
    "UnknownBatchJobError",
    "batch_import_resources",
]

logger = logging.getLogger(__name__)

BATCH_PATH = "/v2/events/batch"
AUDIT_TABLE = "batch_import_audit"
PROCESSING = "PROCESSING"

# Re-loading a job replaces that whole job: merge with delete-insert on merge_key `job_id` deletes
# every row the job loaded before and inserts this load's rows. This is exact even if FullStory
# answers fewer rows (or another order) the second time, where a plain upsert on
# (job_id, ordinal) would keep stale rows past the new end. (job_id, ordinal) is still declared as
# the primary key: it is unique, documents the grain, and makes dlt drop duplicates in one load.
REPLACE_JOB = {"disposition": "merge", "strategy": "delete-insert"}
ROW_KEY = ["job_id", "ordinal"]


# Column hints: one dict per column, and deep-copied for every resource, because dlt writes into
# the hint dicts it is given (each column's name, key flags).
def _text_col(nullable: bool = True) -> dict[str, Any]:
    return {"data_type": "text", "nullable": nullable}


def _bigint_col(nullable: bool = True) -> dict[str, Any]:
    return {"data_type": "bigint", "nullable": nullable}


def _double_col() -> dict[str, Any]:
    return {"data_type": "double"}


def _bool_col() -> dict[str, Any]:
    return {"data_type": "bool"}


def _utc_timestamp_col() -> dict[str, Any]:
    return {"data_type": "timestamp", "timezone": True}


def _json_col() -> dict[str, Any]:
    """Kept as one JSON value: never exploded into child tables (max_table_nesting=0 as well)."""
    return {"data_type": "json"}


_EVENT_COLUMNS: dict[str, dict[str, Any]] = {
    "job_id": _text_col(nullable=False),
    "ordinal": _bigint_col(nullable=False),
    "page": _bigint_col(nullable=False),
    "user_id": _text_col(),
    "user_uid": _text_col(),
    "session_id": _text_col(),
    "session_uid": _text_col(),
    "context_browser_url": _text_col(),
    "context_browser_user_agent": _text_col(),
    "context_browser_initial_referrer": _text_col(),
    "location_country": _text_col(),
    "location_region": _text_col(),
    "location_city": _text_col(),
    # FullStory's LocationContext also carries these (node SDK, docs/fullstory-api.md)
    "location_latitude": _double_col(),
    "location_longitude": _double_col(),
    "location_ip_address": _text_col(),
    "context_mobile": _json_col(),
    "context_device": _json_col(),
    "name": _text_col(),
    "timestamp": _utc_timestamp_col(),
    "properties": _json_col(),
}
IMPORTED_EVENT_COLUMNS: dict[str, dict[str, Any]] = {**_EVENT_COLUMNS, "schema": _json_col()}
IMPORT_ERROR_COLUMNS: dict[str, dict[str, Any]] = {
    **_EVENT_COLUMNS,
    "message": _text_col(),
    "code": _text_col(),
    "event": _json_col(),  # the refused event as FullStory returned it, even where it does not parse
    "shared": _json_col(),
}
JOB_COLUMNS: dict[str, dict[str, Any]] = {
    "job_id": _text_col(nullable=False),
    "status": _text_col(),
    "created": _utc_timestamp_col(),
    "finished": _utc_timestamp_col(),
    "imports": _bigint_col(),
    "errors": _bigint_col(),
}
AUDIT_COLUMNS: dict[str, dict[str, Any]] = {
    "job_id": _text_col(nullable=False),
    "kind": _text_col(nullable=False),  # "imports" or "errors"
    "job_status": _text_col(),
    "status_count": _bigint_col(),  # `imports` / `errors` of GET /v2/events/batch/{job_id}
    "total_records": _bigint_col(),  # `total_records` of the paged answer (a string in the API)
    "loaded": _bigint_col(),  # rows this load wrote for the job
    "pages": _bigint_col(),
    "token_repeated": _bool_col(),
    "matches": _bool_col(),  # loaded == total_records (null if FullStory sent none)
    "checked_at": _utc_timestamp_col(),
}


@dataclass(frozen=True)
class _Options:
    include_schema: bool
    wait_timeout: float
    poll_interval: float
    poll_max_interval: float


@dataclass
class _JobStatus:
    body: dict[str, Any]
    finished: bool
    deadline: float  # monotonic time after which this job is not waited for any more
    started: float  # monotonic time the first wait for this job began

    @property
    def status(self) -> str | None:
        job = self.body.get("job")
        return str(job["status"]) if isinstance(job, dict) and job.get("status") else None

    def count(self, kind: str) -> int | None:
        return _int(self.body.get(kind))


class _BatchJobs:
    """State shared by the three resources of one `batch_import_resources` call: each job is
    waited for once, and its finished status is reused (a finished job never changes)."""

    def __init__(self, client: FullStoryClient, job_ids: tuple[str, ...], options: _Options) -> None:
        self.client = client
        self.job_ids = job_ids
        self.options = options
        self._statuses: dict[str, _JobStatus] = {}

    def require_ids(self) -> tuple[str, ...]:
        if not self.job_ids:
            raise ConfigurationError(
                "No batch import job ids: set batch_import_job_ids under [sources.fullstory] "
                "(e.g. SOURCES__FULLSTORY__BATCH_IMPORT_JOB_IDS='[\"job1\"]') or pass --batch-job ID"
            )
        return self.job_ids

    def status(self, job_id: str) -> _JobStatus:
        """The job's status, after waiting (growing intervals) until it is no longer PROCESSING
        or its deadline passed. Check `.finished`."""
        known = self._statuses.get(job_id)
        if known is not None and known.finished:
            return known
        now = time.monotonic()
        started = known.started if known else now
        deadline = known.deadline if known else now + self.options.wait_timeout
        waits = poll_waits(self.options.poll_interval, self.options.poll_max_interval, deadline)
        while True:
            body = self._get(_job_path(job_id), job_id)
            if not isinstance(body, dict) or not isinstance(body.get("job"), dict):
                raise UnexpectedResponseError(
                    f"GET {_job_path(job_id)}", "an object with a 'job' object", body, _context(job_id)
                )
            current = _JobStatus(body, finished=False, deadline=deadline, started=started)
            current.finished = current.status != PROCESSING
            self._statuses[job_id] = current
            if current.finished:
                return current
            logger.info("batch import job %r is still processing", job_id)
            if next(waits, None) is None:
                return current

    def finished_status(self, job_id: str) -> _JobStatus:
        status = self.status(job_id)
        if not status.finished:
            raise BatchJobStillProcessingError(
                job_id,
                time.monotonic() - status.started,
                self.options.wait_timeout,
                f"GET {_job_path(job_id)}",
            )
        return status

    def pages(self, job_id: str, kind: str, audit: _Audit) -> Iterator[tuple[int, list[dict[str, Any]]]]:
        """(page index, results) of `/imports` or `/errors`, until the token is empty or repeats.
        A 202 (still processing) is retried with growing intervals until the job's deadline."""
        status = self.finished_status(job_id)
        path = f"{_job_path(job_id)}/{kind}"
        params: dict[str, Any] = {}
        if kind == "imports":
            params["include_schema"] = "true" if self.options.include_schema else "false"
        seen: set[str] = set()
        page = 0
        while True:
            body = self._page(path, params, job_id, status, kind)
            results = body.get("results") or []
            if not isinstance(results, list):
                raise UnexpectedResponseError(f"GET {path}", "a 'results' list", body, _context(job_id))
            total = body.get("total_records")
            if audit.total_records is None and total not in (None, ""):
                audit.total_records = _int(total)
                if audit.total_records is None:
                    logger.warning(
                        "batch import job %r: total_records %r of %s is not a number", job_id, total, kind
                    )
            audit.pages += 1
            yield page, [r for r in results if isinstance(r, dict)]
            token = body.get("next_page_token")
            if not token:
                return
            if token in seen:
                audit.token_repeated = True
                logger.warning(
                    "GET %s repeated next_page_token %r (batch import job %r, page %d); stopping",
                    path,
                    token,
                    job_id,
                    page,
                )
                return
            seen.add(str(token))
            params["page_token"] = token
            page += 1

    def _page(
        self, path: str, params: dict[str, Any], job_id: str, status: _JobStatus, kind: str
    ) -> dict[str, Any]:
        waits = poll_waits(self.options.poll_interval, self.options.poll_max_interval, status.deadline)
        while True:
            code, body = self._get_with_status(path, params, job_id)
            if code != 202:
                if not isinstance(body, dict):
                    raise UnexpectedResponseError(f"GET {path}", "a JSON object", body, _context(job_id))
                return body
            if status.count(kind) == 0:
                # the finished job reported no rows of this kind: nothing to wait for
                return {"results": [], "next_page_token": ""}
            logger.info("GET %s answered 202 (still processing); retrying", path)
            if next(waits, None) is None:
                raise BatchJobStillProcessingError(
                    job_id, time.monotonic() - status.started, self.options.wait_timeout, f"GET {path}"
                )

    def _get(self, path: str, job_id: str) -> Any:
        try:
            return self.client.get(path, context=_context(job_id))
        except FullStoryAPIError as error:
            if error.status == 404:
                raise UnknownBatchJobError(job_id, error) from error
            raise

    def _get_with_status(self, path: str, params: dict[str, Any], job_id: str) -> tuple[int, Any]:
        try:
            return self.client.get_with_status(path, params=dict(params), context=_context(job_id))
        except FullStoryAPIError as error:
            if error.status == 404:
                raise UnknownBatchJobError(job_id, error) from error
            raise


@dataclass
class _Audit:
    job_id: str
    kind: str
    total_records: int | None = None
    loaded: int = 0
    pages: int = 0
    token_repeated: bool = False

    def row(self, status: _JobStatus) -> dict[str, Any]:
        matches = None if self.total_records is None else self.loaded == self.total_records
        if matches is False:
            logger.warning(
                "batch import job %r: loaded %d %s but FullStory's total_records says %d%s; "
                "recorded in table %s",
                self.job_id,
                self.loaded,
                "imported events" if self.kind == "imports" else "errors",
                self.total_records,
                " (the page token repeated, so paging stopped early)" if self.token_repeated else "",
                AUDIT_TABLE,
            )
        return {
            "job_id": self.job_id,
            "kind": self.kind,
            "job_status": status.status,
            "status_count": status.count(self.kind),
            "total_records": self.total_records,
            "loaded": self.loaded,
            "pages": self.pages,
            "token_repeated": self.token_repeated,
            "matches": matches,
            "checked_at": datetime.now(UTC),
        }


def batch_import_resources(
    client: FullStoryClient,
    job_ids: Sequence[str],
    *,
    include_schema: bool = False,
    wait_timeout: float = 600.0,
    poll_interval: float = 1.0,
    poll_max_interval: float = 30.0,
) -> list[DltResource]:
    """The resources `batch_import_jobs`, `batch_imported_events` and `batch_import_errors` for
    the given job ids (see the module docstring). Bad ids raise ConfigurationError here; an empty
    list raises only when one of the resources is extracted, so the resources can be built (and
    left unselected) when no ids are configured."""
    ids = validate_job_ids(job_ids)
    if wait_timeout < 0 or poll_interval <= 0 or poll_max_interval <= 0:
        raise ConfigurationError(
            "batch import waiting needs wait_timeout >= 0 and positive poll intervals; got "
            f"wait_timeout={wait_timeout}, poll_interval={poll_interval}, "
            f"poll_max_interval={poll_max_interval}"
        )
    jobs = _BatchJobs(client, ids, _Options(include_schema, wait_timeout, poll_interval, poll_max_interval))

    def job_rows() -> Iterator[dict[str, Any]]:
        for job_id in jobs.require_ids():
            status = jobs.status(job_id)
            if not status.finished:
                logger.warning(
                    "batch import job %r is still processing after %.1f s; recorded as PROCESSING",
                    job_id,
                    time.monotonic() - status.started,
                )
            yield _job_row(job_id, status.body)

    def imported_event_rows() -> Iterator[Any]:
        yield from _result_rows(jobs, "imports", _imported_event_row)

    def import_error_rows() -> Iterator[Any]:
        yield from _result_rows(jobs, "errors", _import_error_row)

    job_resource = dlt.resource(
        job_rows,
        name="batch_import_jobs",
        write_disposition="merge",
        primary_key="job_id",
        columns=copy.deepcopy(JOB_COLUMNS),
        max_table_nesting=0,
    )
    return [
        job_resource,
        _row_resource(imported_event_rows, "batch_imported_events", IMPORTED_EVENT_COLUMNS),
        _row_resource(import_error_rows, "batch_import_errors", IMPORT_ERROR_COLUMNS),
    ]


def validate_job_ids(job_ids: Sequence[str] | None) -> tuple[str, ...]:
    """Non-empty strings, stripped, duplicates dropped (first occurrence kept)."""
    if job_ids is None:
        return ()
    if isinstance(job_ids, str | bytes) or not isinstance(job_ids, Sequence):
        raise ConfigurationError(
            f'batch_import_job_ids must be a list of job ids, e.g. ["job1"]; got {job_ids!r}'
        )
    ids: list[str] = []
    for position, job_id in enumerate(job_ids):
        if not isinstance(job_id, str) or not job_id.strip():
            raise ConfigurationError(
                f"batch import job id #{position + 1} is {job_id!r}: every id must be a non-empty "
                "string (the `job.id` that POST /v2/events/batch answered)"
            )
        if job_id.strip() not in ids:
            ids.append(job_id.strip())
    return tuple(ids)


def _row_resource(
    rows: Callable[[], Iterator[Any]], name: str, columns: dict[str, dict[str, Any]]
) -> DltResource:
    resource = dlt.resource(rows, name=name, max_table_nesting=0)
    # The audit rows go to their own table. The variant is created before this resource's own
    # hints are set, because a variant starts as a copy of them (and would inherit its columns).
    resource.apply_hints(
        table_name=AUDIT_TABLE,
        write_disposition="merge",
        primary_key=["job_id", "kind"],
        columns=copy.deepcopy(AUDIT_COLUMNS),
        create_table_variant=True,
    )
    resource.apply_hints(
        write_disposition=REPLACE_JOB, primary_key=ROW_KEY, merge_key="job_id", columns=copy.deepcopy(columns)
    )
    return resource


def _result_rows(
    jobs: _BatchJobs, kind: str, to_row: Callable[[dict[str, Any]], dict[str, Any]]
) -> Iterator[Any]:
    for job_id in jobs.require_ids():
        audit = _Audit(job_id, kind)
        ordinal = 0
        for page, results in jobs.pages(job_id, kind, audit):
            rows = []
            for result in results:
                rows.append({"job_id": job_id, "ordinal": ordinal, "page": page, **to_row(result)})
                ordinal += 1
            audit.loaded += len(rows)
            if rows:
                yield rows
        logger.info("batch import job %r: %d %s rows in %d pages", job_id, audit.loaded, kind, audit.pages)
        yield dlt.mark.with_table_name(audit.row(jobs.status(job_id)), AUDIT_TABLE)


def _job_row(job_id: str, body: dict[str, Any]) -> dict[str, Any]:
    job = body.get("job") or {}
    return {
        "job_id": job_id,
        "status": job.get("status"),
        "created": _timestamp(job.get("created")),
        "finished": _timestamp(job.get("finished")),
        "imports": _int(body.get("imports")),
        "errors": _int(body.get("errors")),
    }


def _event_columns(event: dict[str, Any]) -> dict[str, Any]:
    """The nested objects of an event as flat, query-friendly columns."""
    user = _object(event.get("user"))
    session = _object(event.get("session"))
    context = _object(event.get("context"))
    browser = _object(context.get("browser"))
    location = _object(context.get("location"))
    return {
        "user_id": _text(user.get("id")),
        "user_uid": _text(user.get("uid")),
        "session_id": _text(session.get("id")),
        "session_uid": _text(session.get("uid")),
        "context_browser_url": _text(browser.get("url")),
        "context_browser_user_agent": _text(browser.get("user_agent")),
        "context_browser_initial_referrer": _text(browser.get("initial_referrer")),
        "location_country": _text(location.get("country")),
        "location_region": _text(location.get("region")),
        "location_city": _text(location.get("city")),
        "location_latitude": _float(location.get("latitude")),
        "location_longitude": _float(location.get("longitude")),
        "location_ip_address": _text(location.get("ip_address")),
        "context_mobile": context.get("mobile"),
        "context_device": context.get("device"),
        "name": _text(event.get("name")),
        "timestamp": _timestamp(event.get("timestamp")),
        "properties": event.get("properties"),
    }


def _imported_event_row(result: dict[str, Any]) -> dict[str, Any]:
    row = _event_columns(result)
    row["schema"] = result.get("schema")
    return row


def _import_error_row(result: dict[str, Any]) -> dict[str, Any]:
    event = _object(result.get("event"))
    return {
        **_event_columns(event),
        "message": _text(result.get("message")),
        "code": _text(result.get("code")),
        "event": result.get("event"),
        "shared": result.get("shared"),
    }


def _job_path(job_id: str) -> str:
    return f"{BATCH_PATH}/{quote(job_id, safe='')}"


def _context(job_id: str) -> str:
    return f"batch import job {job_id!r}"


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _float(value: Any) -> float | None:
    """A double, from a JSON number or a numeric string; anything else is no coordinate."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _int(value: Any) -> int | None:
    """FullStory writes counts as numbers or as strings (int64 in JSON)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


def _timestamp(value: Any) -> datetime | None:
    """An ISO 8601 time as an aware UTC datetime; a time without an offset is taken as UTC.
    Anything else is None (a refused event's raw value stays in the `event` column)."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)
