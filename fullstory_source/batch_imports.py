"""Results of FullStory v2 batch imports: job status, imported events and import errors.

Three resources for a list of batch import job ids (the ids `POST /v2/events/batch` answered):

- `batch_import_jobs`: one row per job from `GET /v2/events/batch/{job_id}` (status, counts,
  created, finished), merged on `job_id`.
- `batch_imported_events`: `GET /v2/events/batch/{job_id}/imports`, paged, one row per imported
  event, its nested objects flattened into columns (batch_rows.py).
- `batch_import_errors`: `GET /v2/events/batch/{job_id}/errors`, same paging, one row per refused
  event with FullStory's message and code.

Both row resources also write one row per (job, kind) to `batch_import_audit` (batch_audit.py).
Waiting for a job still processing and paging its results: batch_jobs.py; a job still
processing when `wait_timeout` runs out fails the row resources with
`BatchJobStillProcessingError` (nothing is loaded), while `batch_import_jobs` records it as
PROCESSING. Tables, keys and why re-loading a job replaces it: batch_tables.py.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import dlt
from dlt.sources import DltResource

from .batch_audit import Audit
from .batch_jobs import BatchJobs, WaitOptions
from .batch_rows import import_error_row, imported_event_row, job_row
from .batch_tables import (
    AUDIT_COLUMNS,
    AUDIT_KEY,
    AUDIT_TABLE,
    ERRORS_TABLE,
    IMPORT_ERROR_COLUMNS,
    IMPORTED_EVENT_COLUMNS,
    IMPORTS_TABLE,
    JOB_COLUMNS,
    JOBS_TABLE,
    REPLACE_JOB,
    ROW_KEY,
    Columns,
)
from .client import FullStoryClient
from .errors import BatchJobStillProcessingError, ConfigurationError, UnknownBatchJobError

__all__ = [
    "AUDIT_TABLE",
    "BatchJobStillProcessingError",
    "UnknownBatchJobError",
    "batch_import_resources",
    "validate_job_ids",
]

logger = logging.getLogger(__name__)


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
    jobs = BatchJobs(client, ids, WaitOptions(include_schema, wait_timeout, poll_interval, poll_max_interval))

    def job_rows() -> Iterator[dict[str, Any]]:
        for job_id in jobs.require_ids():
            status = jobs.status(job_id)
            if not status.finished:
                logger.warning(
                    "batch import job %r is still processing after %.1f s; recorded as PROCESSING",
                    job_id,
                    time.monotonic() - status.started,
                )
            yield job_row(job_id, status.body)

    def imported_event_rows() -> Iterator[Any]:
        yield from _result_rows(jobs, "imports", imported_event_row)

    def import_error_rows() -> Iterator[Any]:
        yield from _result_rows(jobs, "errors", import_error_row)

    job_resource = dlt.resource(
        job_rows,
        name=JOBS_TABLE,
        write_disposition="merge",
        primary_key="job_id",
        columns=copy.deepcopy(JOB_COLUMNS),
        max_table_nesting=0,
    )
    return [
        job_resource,
        _row_resource(imported_event_rows, IMPORTS_TABLE, IMPORTED_EVENT_COLUMNS),
        _row_resource(import_error_rows, ERRORS_TABLE, IMPORT_ERROR_COLUMNS),
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


def _row_resource(rows: Callable[[], Iterator[Any]], name: str, columns: Columns) -> DltResource:
    resource = dlt.resource(rows, name=name, max_table_nesting=0)
    # The audit rows go to their own table. The variant is created before this resource's own
    # hints are set, because a variant starts as a copy of them (and would inherit its columns).
    resource.apply_hints(
        table_name=AUDIT_TABLE,
        write_disposition="merge",
        primary_key=AUDIT_KEY,
        columns=copy.deepcopy(AUDIT_COLUMNS),
        create_table_variant=True,
    )
    resource.apply_hints(
        write_disposition=REPLACE_JOB, primary_key=ROW_KEY, merge_key="job_id", columns=copy.deepcopy(columns)
    )
    return resource


def _result_rows(
    jobs: BatchJobs, kind: str, to_row: Callable[[dict[str, Any]], dict[str, Any]]
) -> Iterator[Any]:
    for job_id in jobs.require_ids():
        audit = Audit(job_id, kind)
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
        status = jobs.status(job_id)
        yield dlt.mark.with_table_name(audit.row(status.status, status.count(kind)), AUDIT_TABLE)
