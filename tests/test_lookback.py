"""Late-arriving data: a short export delay alone misses events FullStory processes late;
the same runs with `lookback` end up exact, and say what each refresh added."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest

from fullstory_sandbox import Sandbox
from fullstory_sandbox.data import LateData
from fullstory_source.windows import format_time
from pipelines.fullstory_pipeline import main

from .support import API_KEY, DAY1, query

SEGMENT = "everyone"
HOUR = timedelta(hours=1)


@pytest.fixture
def late_sandbox(tmp_path: Path) -> Sandbox:
    with Sandbox(api_key=API_KEY, flavor="live", events_per_hour=30, workdir=str(tmp_path / "sb")) as sb:
        sb.late_data = LateData(fraction=0.3, age=timedelta(hours=3))  # 30% of events arrive 3 h late
        yield sb


def hourly_runs(sb: Sandbox, hours: int, *extra: str) -> list[str]:
    """One scheduled run per hour with a 1 h export delay: at hour h the newest window ends at
    h - 1 (the --end a real run computes from now minus export_delay)."""
    outputs = []
    for hour in range(2, hours + 1):
        sb.clock = DAY1 + hour * HOUR
        end = format_time(sb.clock - HOUR)
        code = main(
            ["run", "--base-url", sb.base_url, "--segment", SEGMENT, "--types", "events", "--window", "1h",
             "--start", format_time(DAY1), "--end", end, *extra]
        )  # fmt: skip
        assert code == 0
        outputs.append(end)
    return outputs


def loaded_count(database: Path, start, end) -> int:
    return query(
        database,
        f"SELECT count(*) FROM fullstory.events WHERE event_start >= '{start.isoformat()}' "
        f"AND event_start < '{end.isoformat()}'",
    )[0][0]


def test_without_lookback_late_events_are_lost(late_sandbox: Sandbox, command_env: Path) -> None:
    hourly_runs(late_sandbox, 10)
    complete = late_sandbox.expected_rows("events", SEGMENT, DAY1, DAY1 + 9 * HOUR)
    assert loaded_count(command_env, DAY1, DAY1 + 9 * HOUR) < len(complete)


def test_with_lookback_the_same_runs_end_exact(
    late_sandbox: Sandbox, command_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hourly_runs(late_sandbox, 10, "--lookback", "4h")
    out = capsys.readouterr().out
    # windows that ended at least lookback - delay = 3 h before the last run are complete
    settled = DAY1 + 6 * HOUR
    complete = late_sandbox.expected_rows("events", SEGMENT, DAY1, settled)
    assert loaded_count(command_env, DAY1, settled) == len(complete)
    # the later ones hold what FullStory could export at the last run, exactly
    last_run = late_sandbox.clock
    for hour in range(6, 9):
        start = DAY1 + hour * HOUR
        visible = late_sandbox.expected_rows("events", SEGMENT, start, start + HOUR, as_of=last_run)
        assert loaded_count(command_env, start, start + HOUR) == len(visible)
    # no duplicates anywhere
    total = query(
        command_env,
        "SELECT count(*), count(DISTINCT (session_id, event_start, event_type)) FROM fullstory.events",
    )
    assert total[0][0] == total[0][1]
    # the cost is visible: refreshed windows and the rows they gained
    assert re.search(r"1 new, 3 refreshed \(\+\d+ rows arrived late\)", out)  # 3 h of 1 h windows
    runs = query(
        command_env,
        "SELECT run_kind, count(*), sum(rows_delta) FROM fullstory.export_runs GROUP BY 1 ORDER BY 1",
    )
    kinds = {kind: (count, delta) for kind, count, delta in runs}
    assert kinds["new"][0] + kinds["refresh"][0] == 9  # one row per window (merged on id)
    assert kinds["refresh"][1] > 0


def test_windows_older_than_the_lookback_are_never_exported_again(
    late_sandbox: Sandbox, command_env: Path
) -> None:
    hourly_runs(late_sandbox, 10, "--lookback", "2h")
    per_window: dict[str, int] = {}
    for body in late_sandbox.created_exports():
        per_window[body["timeRange"]["start"]] = per_window.get(body["timeRange"]["start"], 0) + 1
    # each window: once new, then refreshed by the next run only (the run after that, it ends
    # 2 h before the newest window, outside the lookback); the last window has had no next run
    assert len(per_window) == 9
    assert per_window.pop("2026-10-01T08:00:00Z") == 1
    assert set(per_window.values()) == {2}
