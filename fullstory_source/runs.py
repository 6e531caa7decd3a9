"""Run records: one row per (segment, export type, window) in the table `export_runs`, modelled
on PostHog's BatchExportBackfill, so the warehouse itself shows what was exported, when, how
big, and what failed. A window exported again updates its row (merge on `id`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import dlt

from .exports import ExportJob
from .plans import BackfillProgress
from .windows import format_time

RUNS_TABLE = "export_runs"
BACKFILLS_TABLE = "backfills"


# declared up front: a column that is null in every row of a first load would not exist yet
_RUN_COLUMNS: Any = {
    "operation_id": {"data_type": "text", "nullable": True},
    "total_records_count": {"data_type": "bigint", "nullable": True},
    "bytes_downloaded": {"data_type": "bigint", "nullable": True},
    "error": {"data_type": "text", "nullable": True},
    "backfill_id": {"data_type": "text", "nullable": True},
    "run_kind": {"data_type": "text", "nullable": True},
    "rows_delta": {"data_type": "bigint", "nullable": True},
}


def run_id(job: ExportJob) -> str:
    return f"{job.segment_id}/{job.export_type}/{format_time(job.window.start)}/{format_time(job.window.end)}"


def run_record(
    job: ExportJob,
    status: str,
    *,
    operation_id: str | None,
    seconds: float,
    rows: int | None = None,
    bytes_downloaded: int | None = None,
    error: str | None = None,
    backfill_id: str | None = None,
    kind: str = "new",
    rows_delta: int | None = None,
) -> Any:
    now = datetime.now(UTC)
    record = {
        "id": run_id(job),
        "segment_id": job.segment_id,
        "export_type": job.export_type,
        "start_at": job.window.start,
        "end_at": job.window.end,
        "status": status,
        "operation_id": operation_id,
        "created_at": now - timedelta(seconds=seconds),
        "finished_at": now,
        "last_updated_at": now,
        "total_records_count": rows,
        "bytes_downloaded": bytes_downloaded,
        "error": error,
        "backfill_id": backfill_id,
        "run_kind": kind,
        "rows_delta": rows_delta,
    }
    hints = dlt.mark.make_hints(
        table_name=RUNS_TABLE,
        write_disposition="merge",
        primary_key="id",
        merge_key=[],  # a table variant starts from its resource's hints: not events' merge key
        columns=_RUN_COLUMNS,
    )
    return dlt.mark.with_hints(record, hints, create_table_variant=True)


# how the command loads backfill records: `pipeline.run(records, **BACKFILL_TABLE_HINTS)`
BACKFILL_TABLE_HINTS: dict[str, Any] = {
    "table_name": BACKFILLS_TABLE,
    "write_disposition": "merge",
    "primary_key": "id",
    "columns": {
        "finished_at": {"data_type": "timestamp", "nullable": True},
        "total_records_count": {"data_type": "bigint", "nullable": True},
    },
}


def backfill_record(progress: BackfillProgress, status: str, records: int | None) -> dict[str, Any]:
    """The row of table `backfills` for one backfill (merge on `id`)."""
    now = datetime.now(UTC)
    return {
        "id": progress.backfill_id,
        "start_at": progress.start,
        "end_at": progress.end,
        "status": status,
        "total_runs": progress.total_runs,
        "finished_runs": progress.finished_runs,
        "progress": progress.percent,
        "created_at": progress.created_at,
        "finished_at": now if progress.complete else None,
        "last_updated_at": now,
        "total_records_count": records,
    }
