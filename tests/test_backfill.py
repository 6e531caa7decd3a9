"""Backfills and status, through the command: exact window replacement across window lengths,
resuming, --force, cursors, and the backfills / export_runs records."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from fullstory_sandbox import Sandbox
from pipelines.fullstory_pipeline import main

from .support import DAY1, DAY2, DAY3, cursors, expected_multiset, loaded_multiset, make_pipeline, query
from .test_source import expected_events

SEGMENT = "everyone"


def connection(sb: Sandbox) -> list[str]:
    return ["--base-url", sb.base_url, "--api-flavor", sb.flavor, "--segment", SEGMENT, "--types", "events"]


def scheduled(sb: Sandbox, end: str) -> int:
    return main(["run", *connection(sb), "--window", "6h", "--start", "2026-10-01T00:00:00Z", "--end", end])


def backfill(sb: Sandbox, start: str, end: str, *extra: str) -> int:
    return main(["backfill", *connection(sb), "--start", start, "--end", end, *extra])


def starts(sb: Sandbox) -> list[str]:
    return sorted(c["timeRange"]["start"] for c in sb.created_exports())


def test_a_1d_backfill_replaces_6h_windows_exactly_and_keeps_the_cursor(
    live_sandbox: Sandbox, command_env: Path
) -> None:
    assert scheduled(live_sandbox, "2026-10-03T00:00:00Z") == 0
    live_sandbox.clear_log()

    assert backfill(live_sandbox, "2026-10-01T00:00:00Z", "2026-10-02T00:00:00Z", "--window", "1d") == 0

    assert starts(live_sandbox) == ["2026-10-01T00:00:00Z"]
    # day 1 now holds the rows of one 1d window, day 2 still those of four 6h windows
    day = timedelta(days=1)
    expected = expected_events(live_sandbox, SEGMENT, DAY1, DAY2, day) + expected_events(
        live_sandbox, SEGMENT, DAY2, DAY3
    )
    assert loaded_multiset(command_env, "events") == expected
    assert cursors(make_pipeline(command_env, "fullstory_pipeline"), "events") == {
        SEGMENT: "2026-10-03T00:00:00Z"
    }


def test_a_backfill_over_the_cursor_moves_it_forward(live_sandbox: Sandbox, command_env: Path) -> None:
    assert scheduled(live_sandbox, "2026-10-01T12:00:00Z") == 0
    assert backfill(live_sandbox, "2026-10-01T00:00:00Z", "2026-10-03T00:00:00Z", "--window", "1d") == 0
    assert cursors(make_pipeline(command_env, "fullstory_pipeline"), "events") == {
        SEGMENT: "2026-10-03T00:00:00Z"
    }
    expected = expected_events(live_sandbox, SEGMENT, DAY1, DAY3, timedelta(days=1))
    assert loaded_multiset(command_env, "events") == expected
    live_sandbox.clear_log()
    # the next scheduled run starts where the backfill left the cursor
    assert scheduled(live_sandbox, "2026-10-03T06:00:00Z") == 0
    assert starts(live_sandbox) == ["2026-10-03T00:00:00Z"]


def test_a_backfill_creates_no_cursor(live_sandbox: Sandbox, command_env: Path) -> None:
    assert backfill(live_sandbox, "2026-10-01T00:00:00Z", "2026-10-02T00:00:00Z", "--window", "6h") == 0
    assert cursors(make_pipeline(command_env, "fullstory_pipeline"), "events") == {}
    assert loaded_multiset(command_env, "events") == expected_events(live_sandbox, SEGMENT, DAY1, DAY2)


def test_an_interrupted_backfill_resumes_and_force_redoes_everything(
    live_sandbox: Sandbox, command_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    live_sandbox.faults.fail_operations(error_details="transient", segment_id=SEGMENT)
    args = ("2026-10-01T00:00:00Z", "2026-10-02T00:00:00Z", "--window", "6h")
    assert backfill(live_sandbox, *args) == 1
    out = capsys.readouterr().out
    failed = re.search(r"FAILED segment 'everyone', events, window \[(\S+), ", out)
    assert failed and re.search(r"backfill\s+3/4 windows \(75.0%\)", out)
    record = query(command_env, "SELECT status, total_runs, finished_runs, progress FROM fullstory.backfills")
    assert record == [("FailedRetryable", 4, 3, 75.0)]

    live_sandbox.clear_log()
    assert backfill(live_sandbox, *args) == 0
    assert starts(live_sandbox) == [failed.group(1)]  # only the window that failed
    assert loaded_multiset(command_env, "events") == expected_events(live_sandbox, SEGMENT, DAY1, DAY2)
    expected_rows = len(live_sandbox.expected_rows("events", SEGMENT, DAY1, DAY2))
    record = query(
        command_env,
        "SELECT status, total_runs, finished_runs, progress, total_records_count, finished_at IS NOT NULL "
        "FROM fullstory.backfills",
    )
    assert record == [("Completed", 4, 4, 100.0, expected_rows, True)]

    live_sandbox.clear_log()
    assert backfill(live_sandbox, *args) == 0
    assert starts(live_sandbox) == []  # nothing left to do
    assert backfill(live_sandbox, *args, "--force") == 0
    assert len(starts(live_sandbox)) == 4
    assert loaded_multiset(command_env, "events") == expected_events(live_sandbox, SEGMENT, DAY1, DAY2)


def test_status_shows_cursors_last_runs_and_backfills(
    live_sandbox: Sandbox,
    command_env: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    assert scheduled(live_sandbox, "2026-10-02T00:00:00Z") == 0
    live_sandbox.faults.fail_operations(error_details="boom", segment_id=SEGMENT)
    assert backfill(live_sandbox, "2026-09-30T00:00:00Z", "2026-10-01T00:00:00Z", "--window", "6h") == 1
    capsys.readouterr()

    assert main(["status"]) == 1  # the last run (the backfill) had a failed window
    out = capsys.readouterr().out
    assert re.search(r"everyone\s+events\s+2026-10-02T00:00:00Z\s+(Completed|Failed)", out)
    assert "2026-09-30T00:00:00Z .. 2026-10-01T00:00:00Z: 3/4 windows (75.0%), Running" in out
    assert "the last run had 1 failed window(s)" in out and ": boom" in out

    # a fresh machine (CI runner): the state comes back from the destination
    monkeypatch.setenv("DLT_DATA_DIR", str(tmp_path / "fresh"))
    assert main(["status"]) == 1
    assert re.search(r"everyone\s+events\s+2026-10-02T00:00:00Z", capsys.readouterr().out)


def test_export_runs_record_every_window(live_sandbox: Sandbox, command_env: Path) -> None:
    assert scheduled(live_sandbox, "2026-10-02T00:00:00Z") == 0
    rows = query(
        command_env,
        "SELECT start_at, end_at, status, operation_id IS NOT NULL, total_records_count, "
        "bytes_downloaded > 0, finished_at >= created_at, backfill_id "
        "FROM fullstory.export_runs ORDER BY start_at",
    )
    assert len(rows) == 4
    for (start, end, status, has_operation, count, has_bytes, ordered, backfill_id), hour in zip(
        rows, range(0, 24, 6), strict=True
    ):
        assert start == DAY1 + timedelta(hours=hour) and end == start + timedelta(hours=6)
        assert (status, has_operation, has_bytes, ordered, backfill_id) == (
            "Completed",
            True,
            True,
            True,
            None,
        )
        assert count == len(live_sandbox.expected_rows("events", SEGMENT, start, end))


def test_batch_import_resources_from_the_command_line(
    live_sandbox: Sandbox, command_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["run", "--base-url", live_sandbox.base_url, "--resources", "batch_import_jobs,batch_imported_events",
         "--batch-job", "batch-completed"]
    )  # fmt: skip
    assert code == 0
    expected = live_sandbox.batch_jobs.expected_imports("batch-completed")
    assert query(command_env, "SELECT count(*) FROM fullstory.batch_imported_events")[0][0] == len(expected)
    assert query(command_env, "SELECT job_id FROM fullstory.batch_import_jobs") == [("batch-completed",)]
    assert "events" not in {
        r[0] for r in query(command_env, "SELECT table_name FROM information_schema.tables")
    }

    assert main(["run", "--base-url", live_sandbox.base_url, "--resources", "batch_imported_events"]) == 2
    assert "unknown resource(s) ['batch_imported_events']" in capsys.readouterr().err


def newest_individuals(sb: Sandbox, days: list[tuple[datetime, datetime]]) -> Counter[str]:
    """Every individual once, with the row of the newest of `days` (1d windows) that holds it."""
    newest: dict[Any, tuple[dict[str, Any], dict[str, Any]]] = {}
    for start, end in days:
        for row in sb.expected_rows("individuals", SEGMENT, start, end):
            newest[row["IndvId"]] = (row, {"segment_id": SEGMENT, "window_start": start, "window_end": end})
    expected: Counter[str] = Counter()
    for row, extra in newest.values():
        expected += expected_multiset([row], extra)
    return expected


def individuals(sb: Sandbox, command: str, start: str, end: str, more: Sequence[str] = ()) -> int:
    return main([command, "--base-url", sb.base_url, "--api-flavor", sb.flavor, "--segment", SEGMENT,
                 "--types", "individuals", "--window", "1d", "--start", start, "--end", end,
                 *more])  # fmt: skip


def test_individuals_keep_the_newest_window_when_an_older_one_loads_later(
    live_sandbox: Sandbox, command_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    days = [(DAY1, DAY2), (DAY2, DAY3)]
    expected = newest_individuals(live_sandbox, days)
    # day 1 and day 2 hold many of the same individuals with other values
    assert len(expected) < sum(len(live_sandbox.expected_rows("individuals", SEGMENT, *d)) for d in days)
    monkeypatch.setenv("SOURCES__FULLSTORY__MAX_CONCURRENT_EXPORTS", "1")  # day 1 is created first
    live_sandbox.faults.fail_operations(times=1, segment_id=SEGMENT)
    assert individuals(live_sandbox, "run", "2026-10-01T00:00:00Z", "2026-10-03T00:00:00Z") == 1
    assert individuals(live_sandbox, "run", "2026-10-01T00:00:00Z", "2026-10-03T00:00:00Z") == 0
    assert sorted(c["timeRange"]["start"] for c in live_sandbox.created_exports()) == [
        "2026-10-01T00:00:00Z", "2026-10-01T00:00:00Z", "2026-10-02T00:00:00Z",
    ]  # fmt: skip
    assert loaded_multiset(command_env, "individuals") == expected
    # a backfill of the older day changes nothing either
    assert individuals(live_sandbox, "backfill", "2026-10-01T00:00:00Z", "2026-10-02T00:00:00Z") == 0
    assert loaded_multiset(command_env, "individuals") == expected


def test_individuals_keep_the_newest_window_with_no_state_to_tell_the_order(
    live_sandbox: Sandbox, command_env: Path
) -> None:
    """A pipeline of another name (an Airflow task per interval, a second runner) has none of the
    first one's state: only the destination knows that a newer window was loaded."""
    days = [(DAY1, DAY2), (DAY2, DAY3)]
    expected = newest_individuals(live_sandbox, days)
    assert individuals(live_sandbox, "backfill", "2026-10-02T00:00:00Z", "2026-10-03T00:00:00Z") == 0
    other = ["--pipeline-name", "fullstory_other_runner"]
    assert individuals(live_sandbox, "backfill", "2026-10-01T00:00:00Z", "2026-10-02T00:00:00Z", other) == 0
    assert loaded_multiset(command_env, "individuals") == expected
