"""Run records and how they reach `export_runs`: its own resource, fed by the export resources."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fullstory_source.events import WindowOutcome
from fullstory_source.exports import ExportJob
from fullstory_source.runs import RunLog, run_record
from fullstory_source.windows import Window

DAY1 = datetime(2026, 10, 1, tzinfo=UTC)
JOB = ExportJob("everyone", "events", Window(DAY1, DAY1 + timedelta(hours=6)))


def test_a_loaded_window_record() -> None:
    outcome = WindowOutcome(
        JOB, "loaded", rows=12, bytes_downloaded=345, seconds=2.0, kind="refresh", rows_delta=3
    )
    record = run_record(outcome, "op-1", None)
    assert record["id"] == "everyone/events/2026-10-01T00:00:00Z/2026-10-01T06:00:00Z"
    assert (record["status"], record["total_records_count"], record["bytes_downloaded"]) == (
        "Completed",
        12,
        345,
    )
    assert (record["run_kind"], record["rows_delta"], record["operation_id"]) == ("refresh", 3, "op-1")
    assert record["error"] is None and record["backfill_id"] is None
    assert record["finished_at"] - record["created_at"] == timedelta(seconds=2.0)
    assert (record["start_at"], record["end_at"]) == (JOB.window.start, JOB.window.end)


def test_a_failed_window_record_has_its_error_and_no_counts() -> None:
    outcome = WindowOutcome(JOB, "failed", error="boom", kind="backfill")
    record = run_record(outcome, None, "bf-1")
    assert (record["status"], record["error"], record["backfill_id"]) == ("Failed", "boom", "bf-1")
    assert record["total_records_count"] is None and record["bytes_downloaded"] is None


def test_the_run_log_ends_when_every_producer_closed() -> None:
    log = RunLog(producers=2)
    records = log.records()
    assert next(records) is None  # nothing yet, producers still run: dlt turns elsewhere
    log.add({"id": "a"})
    assert next(records) == {"id": "a"}
    log.close_one()
    log.add({"id": "b"})
    log.close_one()
    assert list(records) == [{"id": "b"}]


def test_a_run_log_without_producers_is_empty() -> None:
    assert list(RunLog(producers=0).records()) == []
