"""Run records: one row per (segment, export type, window) in table `export_runs`, modelled on
PostHog's BatchExportBackfill, so the warehouse itself shows what was exported, when, how big,
and what failed. A window exported again updates its row (merge on `id`).

`export_runs` is its own resource, with its own hints: the export resources hand their records
over through a `RunLog`, so no hint of `events` or `individuals` reaches this table, and
`dlt pipeline <name> drop events` leaves it alone. `backfills` is written by the command.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import dlt
from dlt.sources import DltResource

from .events import WindowOutcome
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


def run_id(outcome: WindowOutcome) -> str:
    job = outcome.job
    return f"{job.segment_id}/{job.export_type}/{format_time(job.window.start)}/{format_time(job.window.end)}"


def run_record(outcome: WindowOutcome, operation_id: str | None, backfill_id: str | None) -> dict[str, Any]:
    now, job, loaded = datetime.now(UTC), outcome.job, outcome.status == "loaded"
    return {
        "id": run_id(outcome),
        "segment_id": job.segment_id,
        "export_type": job.export_type,
        "start_at": job.window.start,
        "end_at": job.window.end,
        "status": "Completed" if loaded else "Failed",
        "operation_id": operation_id,
        "created_at": now - timedelta(seconds=outcome.seconds),
        "finished_at": now,
        "last_updated_at": now,
        "total_records_count": outcome.rows if loaded else None,
        "bytes_downloaded": outcome.bytes_downloaded if loaded else None,
        "error": outcome.error or None,
        "backfill_id": backfill_id,
        "run_kind": outcome.kind,
        "rows_delta": outcome.rows_delta,
    }


class RunLog:
    """Records from the export resources (producers) to the `export_runs` resource, within one
    extract. `records()` ends once every producer has closed."""

    def __init__(self, producers: int) -> None:
        self._queue: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()
        self._open = producers
        self._lock = threading.Lock()

    def add(self, record: dict[str, Any]) -> None:
        self._queue.put(record)

    def close_one(self) -> None:
        with self._lock:
            self._open -= 1

    def records(self) -> Iterator[dict[str, Any] | None]:
        """Yields None while producers still run: dlt then turns to its other resources."""
        while True:
            with self._lock:
                done = self._open <= 0
            try:
                yield self._queue.get_nowait()
            except queue.Empty:
                if done:
                    return
                yield None


def export_runs_resource(run_log: Any) -> DltResource:
    """`run_log()` gives this extract's RunLog (created when the extract starts)."""

    @dlt.resource(name=RUNS_TABLE, write_disposition="merge", primary_key="id", columns=_RUN_COLUMNS)
    def export_runs() -> Iterator[Any]:
        yield from run_log().records()

    return export_runs


def backfills_resource(progress: list[BackfillProgress], status: str, records: dict[str, int]) -> DltResource:
    """Table `backfills`: one row per backfill (merge on `id`), written by the `backfill` command."""
    rows = [
        backfill_record(
            p, status if p.complete or status != "Completed" else "Running", records.get(p.backfill_id)
        )
        for p in progress
    ]
    columns: Any = {
        "finished_at": {"data_type": "timestamp", "nullable": True},
        "total_records_count": {"data_type": "bigint", "nullable": True},
    }
    return dlt.resource(
        rows, name=BACKFILLS_TABLE, write_disposition="merge", primary_key="id", columns=columns
    )


def backfill_record(progress: BackfillProgress, status: str, records: int | None) -> dict[str, Any]:
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
