"""The tables of batch import results: their columns, keys and write dispositions.

Re-loading a job replaces that whole job: merge with delete-insert on merge_key `job_id` deletes
every row the job loaded before and inserts this load's rows. This is exact even if FullStory
answers fewer rows (or another order) the second time, where a plain upsert on
(job_id, ordinal) would keep stale rows past the new end. (job_id, ordinal) is still declared as
the primary key: it is unique, documents the grain, and makes dlt drop duplicates in one load.
"""

from __future__ import annotations

from typing import Any

JOBS_TABLE = "batch_import_jobs"
IMPORTS_TABLE = "batch_imported_events"
ERRORS_TABLE = "batch_import_errors"
AUDIT_TABLE = "batch_import_audit"

REPLACE_JOB = {"disposition": "merge", "strategy": "delete-insert"}
ROW_KEY = ["job_id", "ordinal"]
AUDIT_KEY = ["job_id", "kind"]

Columns = dict[str, dict[str, Any]]


# One dict per column, and deep-copied for every resource (batch_imports.py), because dlt writes
# into the hint dicts it is given (each column's name, key flags).
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


_EVENT_COLUMNS: Columns = {
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
IMPORTED_EVENT_COLUMNS: Columns = {**_EVENT_COLUMNS, "schema": _json_col()}
IMPORT_ERROR_COLUMNS: Columns = {
    **_EVENT_COLUMNS,
    "message": _text_col(),
    "code": _text_col(),
    "event": _json_col(),  # the refused event as FullStory returned it, even where it does not parse
    "shared": _json_col(),
}
JOB_COLUMNS: Columns = {
    "job_id": _text_col(nullable=False),
    "status": _text_col(),
    "created": _utc_timestamp_col(),
    "finished": _utc_timestamp_col(),
    "imports": _bigint_col(),
    "errors": _bigint_col(),
}
AUDIT_COLUMNS: Columns = {
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
