"""Window planning: which jobs a run gets, and how finishing them (in any order) moves the state."""

from __future__ import annotations

import tracemalloc
from datetime import UTC, datetime, timedelta
from typing import Any

from fullstory_source.config import Windows
from fullstory_source.plans import Backfill, WindowPlan, backfill_progress
from fullstory_source.windows import format_time

DAY1 = datetime(2026, 10, 1, tzinfo=UTC)
DAY2 = DAY1 + timedelta(days=1)
SIX = timedelta(hours=6)
CONFIG = Windows(start_date=DAY1, end_date=None, window=SIX, export_delay=timedelta(hours=3))


def starts(plan: WindowPlan) -> list[str]:
    return [format_time(job.window.start)[11:16] for job in list(plan.jobs())]


def test_a_first_run_plans_every_window_from_the_start() -> None:
    plan = WindowPlan("events", {}, CONFIG, ["a"], DAY2)
    assert starts(plan) == ["00:00", "06:00", "12:00", "18:00"]
    assert {plan.kind(job) for job in list(plan.jobs())} == {"new"}


def test_the_cursor_moves_only_over_windows_finished_without_a_gap() -> None:
    state: dict[str, Any] = {}
    plan = WindowPlan("events", state, CONFIG, ["a"], DAY2)
    first, second, third, fourth = list(plan.jobs())
    plan.finished(second, 5)  # out of order: the first is not done yet
    assert state["cursors"] == {} and state["loaded_ahead"] == {
        "a": [f"{format_time(second.window.start)}/{format_time(second.window.end)}"]
    }
    plan.finished(first, 5)
    assert state["cursors"] == {"a": format_time(second.window.end)}
    assert state["loaded_ahead"] == {}
    plan.finished(fourth, 5)  # the third failed: the cursor waits before it
    assert state["cursors"] == {"a": format_time(third.window.start)}


def test_the_next_run_exports_only_what_is_missing() -> None:
    state: dict[str, Any] = {}
    plan = WindowPlan("events", state, CONFIG, ["a"], DAY2)
    for job in list(plan.jobs())[:2] + list(plan.jobs())[3:]:
        plan.finished(job, 1)
    again = WindowPlan("events", state, CONFIG, ["a"], DAY2)
    assert starts(again) == ["12:00"]


def test_lookback_refreshes_loaded_windows_and_counts_late_rows() -> None:
    state: dict[str, Any] = {}
    config = Windows(DAY1, None, SIX, timedelta(hours=3), lookback=timedelta(hours=18))
    plan = WindowPlan("events", state, config, ["a"], DAY2)
    for job in list(plan.jobs()):
        plan.finished(job, 10)
    later = WindowPlan("events", state, config, ["a"], DAY2 + SIX)
    refreshed = [job for job in list(later.jobs()) if later.kind(job) == "refresh"]
    assert [format_time(j.window.start)[11:16] for j in refreshed] == ["12:00", "18:00"]
    assert later.finished(refreshed[0], 13) == 3
    assert state["cursors"] == {"a": format_time(DAY2)}  # a refresh does not move the cursor


def test_a_backfill_resumes_and_moves_an_existing_cursor_only_forward() -> None:
    state: dict[str, Any] = {"cursors": {"a": format_time(DAY1 + SIX)}}
    backfill = Backfill(DAY1, DAY2)
    plan = WindowPlan("events", state, CONFIG, ["a", "b"], DAY2, backfill)
    assert len(list(plan.jobs())) == 8 and {plan.kind(j) for j in list(plan.jobs())} == {"backfill"}
    for job in list(plan.jobs())[:2]:  # segment a: 00:00 and 06:00
        plan.finished(job, 1)
    assert state["cursors"] == {"a": format_time(DAY1 + 2 * SIX)}  # b gets no cursor
    (progress,) = backfill_progress({"events": state})
    assert (progress.finished_runs, progress.total_runs) == (2, 8)
    resumed = WindowPlan("events", state, CONFIG, ["a", "b"], DAY2, backfill)
    assert len(list(resumed.jobs())) == 6


def test_jobs_taken_while_windows_finish_are_each_window_once() -> None:
    """The pool takes jobs lazily while earlier ones finish and move the cursor."""
    state: dict[str, Any] = {}
    plan = WindowPlan("events", state, CONFIG, ["a", "b"], DAY2 + 2 * SIX)
    taken = []
    for job in plan.jobs():
        taken.append((job.segment_id, format_time(job.window.start)))
        plan.finished(job, 1)
    assert len(taken) == len(set(taken)) == 12
    assert state["cursors"] == {"a": format_time(DAY2 + 2 * SIX), "b": format_time(DAY2 + 2 * SIX)}
    assert state["loaded_ahead"] == {}


def test_a_start_decades_back_is_planned_without_listing_its_windows() -> None:
    """1970 in 1 h windows is about 500,000 windows per segment: the plan holds none of them."""
    hour = timedelta(hours=1)
    config = Windows(datetime(1970, 1, 1, tzinfo=UTC), None, hour, timedelta(hours=3))
    state: dict[str, Any] = {"loaded_ahead": {"a": ["1970-01-01T02:00:00Z/1970-01-01T03:00:00Z"]}}
    tracemalloc.start()
    try:
        plan = WindowPlan("events", state, config, ["a"], DAY2)
        jobs = plan.jobs()
        first = [next(jobs) for _ in range(3)]
        for job in first:
            plan.finished(job, 1)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [format_time(j.window.start)[11:16] for j in first] == ["00:00", "01:00", "03:00"]  # not 02:00
    assert state["cursors"] == {"a": "1970-01-01T04:00:00Z"} and state["loaded_ahead"] == {}
    assert peak < 200_000  # a list of the windows alone would be tens of megabytes


def test_windows_of_an_old_grid_are_forgotten_once_the_cursor_passes_them() -> None:
    """8 h windows, 00-08 of day 2 failed; then the setting changes to 1 d: the day-2 window
    loads, and the 8 h windows loaded beyond the gap are not kept as "ahead" of the cursor."""
    state: dict[str, Any] = {}
    eight = Windows(DAY1, None, timedelta(hours=8), timedelta(0))
    plan = WindowPlan("events", state, eight, ["a"], DAY2 + timedelta(days=1), now=DAY2 + timedelta(days=1))
    for job in plan.jobs():
        if job.window.start != DAY2:
            plan.finished(job, 1)
    assert len(state["loaded_ahead"]["a"]) == 2
    daily = Windows(DAY1, None, timedelta(days=1), timedelta(0))
    again = WindowPlan("events", state, daily, ["a"], DAY2 + timedelta(days=1), now=DAY2 + timedelta(days=1))
    (job,) = list(again.jobs())
    assert (job.window.start, job.window.end) == (DAY2, DAY2 + timedelta(days=1))
    again.finished(job, 1)
    assert state["cursors"] == {"a": format_time(DAY2 + timedelta(days=1))} and state["loaded_ahead"] == {}
