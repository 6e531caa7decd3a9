"""Which windows a run exports, and how finishing one moves the state.

State (dlt resource state of each export resource):
    cursors:       {segment_id: end of the last window loaded without a gap before it}
    loaded_ahead:  {segment_id: ["start/end" of windows loaded beyond a gap after the cursor]}
    window_rows:   {segment_id: {"start/end": rows}} of recent windows, while `lookback` may
                   refresh them (so a refresh can say how many rows arrived late)
    backfills:     {backfill_id: {start, end, window, created_at, segments, windows,
                                  done: {segment_id: [window starts]}}}

Windows finish in any order (they run concurrently); a cursor only moves over an unbroken run of
finished windows, so a failed window keeps the cursor before it. Windows after the gap that did
load are remembered in `loaded_ahead`, so the next run exports only the failed one.

With `lookback`, a scheduled run also refreshes the loaded windows that end within `lookback` of
the newest window: FullStory keeps adding late events to them for a while.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from .config import Windows, check_initial_start
from .errors import ConfigurationError
from .exports import ExportJob
from .windows import Window, align_down, align_up, format_time, grid_windows, parse_time


@dataclass(frozen=True)
class Backfill:
    """Re-export [start, end) in grid windows, resumably: the same command continues where an
    interrupted run stopped; `force` exports the finished windows again."""

    start: datetime
    end: datetime
    force: bool = False

    def id(self, window: timedelta) -> str:
        """The same command line gives the same id: that is what makes re-running it resume."""
        return f"{format_time(self.start)}/{format_time(self.end)}/{int(window.total_seconds())}s"


def pending_windows(cursor: str | None, settings: Windows, newest: datetime) -> Iterator[Window]:
    """Windows after the cursor (or from `start_date` when there is none) up to `newest`,
    generated as they are asked for: a start decades back is a long iterator, not a long list.

    A cursor off the current grid (the `window` setting changed since the last run) first gets
    a bridging window up to the next grid line, so nothing is skipped or exported twice."""
    if cursor is None:
        yield from grid_windows(settings.start_date, newest, settings.window)
        return
    start = parse_time(cursor, "cursor")
    grid_start = align_up(start, settings.window)
    if start < grid_start <= newest:
        yield Window(start, grid_start)
    yield from grid_windows(grid_start, newest, settings.window)


def _key(window: Window) -> str:
    return f"{format_time(window.start)}/{format_time(window.end)}"


def _window_of(key: str) -> Window:
    start, end = key.split("/")
    return Window(parse_time(start, "window start"), parse_time(end, "window end"))


class WindowPlan:
    """The jobs of one export type for this run, and the bookkeeping as they finish.

    Nothing here is proportional to the number of windows a run spans: jobs are generated as
    the pool takes them, and finishing a window moves the cursor by arithmetic on the grid.
    What is held are the windows finished beyond a gap (as the state holds them anyway)."""

    def __init__(
        self,
        export_type: str,
        state: dict[str, Any],
        settings: Windows,
        segment_ids: Sequence[str],
        newest: datetime,
        backfill: Backfill | None = None,
        now: datetime | None = None,
    ) -> None:
        self.export_type = export_type
        self.backfill = backfill
        self._settings = settings
        self._newest = newest
        self._now = now or datetime.now(UTC)
        self._segment_ids = list(segment_ids)
        self.cursors: dict[str, str] = state.setdefault("cursors", {})
        self.loaded_ahead: dict[str, list[str]] = state.setdefault("loaded_ahead", {})
        # where the plan starts: the cursors move while the pool is still taking jobs
        self._planned_from = dict(self.cursors)
        # finished windows the cursor has not passed yet; and those an earlier run finished,
        # which this run skips (a separate set: the cursor may pass them before they come up)
        self._finished: dict[str, set[Window]] = {s: set() for s in segment_ids}
        self._skip: dict[str, frozenset[Window]] = {}
        self._refresh: dict[str, list[Window]] = {s: [] for s in segment_ids}
        self._rows: dict[str, dict[str, int]] | None = None
        self._done: dict[str, list[str]] | None = None
        if backfill is None:
            self._plan_scheduled(state, settings, newest)
        else:
            self._plan_backfill(state, settings, backfill)

    def jobs(self) -> Iterator[ExportJob]:
        """The refreshes first, then each segment's windows in time order, as they are asked for."""
        for segment, windows in self._refresh.items():
            for window in windows:
                yield ExportJob(segment, self.export_type, window)
        for segment in self._segment_ids:
            skip = self._skip[segment]
            for window in self._windows(segment):
                if window not in skip:
                    yield ExportJob(segment, self.export_type, window)

    def _windows(self, segment: str) -> Iterator[Window]:
        if self.backfill is not None:
            return grid_windows(self.backfill.start, self.backfill.end, self._settings.window)
        return pending_windows(self._planned_from.get(segment), self._settings, self._newest)

    def _plan_scheduled(self, state: dict[str, Any], settings: Windows, newest: datetime) -> None:
        """New windows after each cursor, and with `lookback` the loaded ones to refresh."""
        horizon = newest - settings.lookback
        if settings.lookback:
            self._rows = state.setdefault("window_rows", {})
        # loaded windows only: none before the first window scheduled runs export
        first = align_down(settings.start_date, settings.window)
        for segment in self._segment_ids:
            cursor = self.cursors.get(segment)
            if cursor is None:
                self._check_initial_start(segment, settings)
            ahead = {_window_of(key) for key in self.loaded_ahead.get(segment, [])}
            self._finished[segment] = {w for w in ahead if self._is_planned(segment, w)}
            self._skip[segment] = frozenset(self._finished[segment])
            if settings.lookback and cursor:
                loaded = grid_windows(max(horizon, first), parse_time(cursor, "cursor"), settings.window)
                self._refresh[segment] = [w for w in loaded if w.end > horizon and w.start >= first]
            if self._rows is not None:
                self._prune_rows(segment, horizon)

    def _is_planned(self, segment: str, window: Window) -> bool:
        """Whether `window` is one of the segment's pending windows, without listing them."""
        cursor = self._planned_from.get(segment)
        if cursor is None:
            first = align_down(self._settings.start_date, self._settings.window)
        else:
            first = parse_time(cursor, "cursor")
        on_grid = align_down(window.start, self._settings.window) == window.start
        # off the grid only the bridge from the cursor (pending_windows): an old-grid window
        # loaded before the `window` setting changed is not one of this plan's
        starts_right = on_grid or window.start == first
        return (
            first <= window.start
            and window.end <= self._newest
            and starts_right
            and window == self._next(window.start)
        )

    def _next(self, position: datetime) -> Window:
        """The window that starts at `position`: up to the next grid line (a bridge when
        `position` is off the grid)."""
        return Window(position, align_down(position, self._settings.window) + self._settings.window)

    def _check_initial_start(self, segment: str, settings: Windows) -> None:
        end = settings.end_date or self._now - settings.export_delay
        try:
            check_initial_start(
                settings.start_date, end, None if settings.end_date else settings.export_delay
            )
        except ConfigurationError as error:
            raise ConfigurationError(
                f"segment {segment!r}, {self.export_type}: no cursor yet, so it starts at the initial "
                f"start, but {error}"
            ) from None

    def _plan_backfill(self, state: dict[str, Any], settings: Windows, backfill: Backfill) -> None:
        """Every grid window of the range not finished by an earlier run of the same backfill."""
        record = state.setdefault("backfills", {}).setdefault(
            backfill.id(settings.window),
            {
                "start": format_time(backfill.start),
                "end": format_time(backfill.end),
                "window": int(settings.window.total_seconds()),
                "created_at": format_time(datetime.now(UTC)),
                "done": {},
            },
        )
        if backfill.force:
            record["done"] = {}
        self._done = record["done"]
        first = align_down(backfill.start, settings.window)
        record["windows"] = max(0, (backfill.end - first) // settings.window)
        record["segments"] = sorted(set(record.get("segments", [])) | set(self._segment_ids))
        for segment in self._segment_ids:
            starts = (parse_time(start, "window start") for start in self._done.get(segment, []))
            self._finished[segment] = {Window(s, s + settings.window) for s in starts}
            self._skip[segment] = frozenset(self._finished[segment])

    def kind(self, job: ExportJob) -> str:
        """'backfill', 'refresh' (a loaded window exported again for late data) or 'new'."""
        if self.backfill is not None:
            return "backfill"
        return "refresh" if job.window in self._refresh.get(job.segment_id, ()) else "new"

    def finished(self, job: ExportJob, rows: int) -> int | None:
        """Record a loaded window and move what it allows to move. For a refreshed window,
        returns how many rows it gained since it was last loaded (None when unknown)."""
        segment = job.segment_id
        delta = None
        if self._rows is not None:
            counts = self._rows.setdefault(segment, {})
            before = counts.get(_key(job.window))
            counts[_key(job.window)] = rows
            if self.kind(job) == "refresh" and before is not None:
                delta = rows - before
        if self.kind(job) == "refresh":
            return delta
        finished = self._finished[segment]
        finished.add(job.window)
        if self._done is not None:
            self._done.setdefault(segment, []).append(format_time(job.window.start))
            self._advance_existing_cursor(segment)
            return None
        cursor = self.cursors.get(segment)
        first = align_down(self._settings.start_date, self._settings.window)
        position = parse_time(cursor, "cursor") if cursor else first
        while (window := self._next(position)) in finished:
            finished.discard(window)  # passed: the cursor stands for it now
            position = window.end
        finished -= {w for w in finished if w.end <= position}  # passed by a bridge, if any
        if position != (parse_time(cursor, "cursor") if cursor else first):
            self.cursors[segment] = format_time(position)
        if finished:
            self.loaded_ahead[segment] = sorted(_key(w) for w in finished)
        else:
            self.loaded_ahead.pop(segment, None)
        return None

    def _prune_rows(self, segment: str, horizon: datetime) -> None:
        """Row counts are kept only while a window can still be refreshed."""
        assert self._rows is not None
        counts = self._rows.get(segment, {})
        for key in [k for k in counts if parse_time(k.split("/")[1], "window end") <= horizon]:
            del counts[key]

    def _advance_existing_cursor(self, segment: str) -> None:
        """A backfill moves a scheduled cursor only forward, and only over windows it loaded
        without a gap from the cursor on. It never creates one: the scheduled runs start
        where their own configuration says."""
        if segment not in self.cursors or self.backfill is None:
            return
        position = parse_time(self.cursors[segment], "cursor")
        step = self._settings.window
        while True:
            start = align_down(position, step)
            window = Window(start, start + step)
            inside = self.backfill.start <= start and window.end <= self.backfill.end
            if not (inside and window in self._finished[segment]):
                break
            position = window.end
        self.cursors[segment] = format_time(position)


@dataclass(frozen=True)
class BackfillProgress:
    backfill_id: str
    start: str
    end: str
    created_at: str
    total_runs: int
    finished_runs: int

    @property
    def percent(self) -> float:
        return round(100.0 * self.finished_runs / self.total_runs, 1) if self.total_runs else 100.0

    @property
    def complete(self) -> bool:
        return self.finished_runs >= self.total_runs


def backfill_progress(resource_states: dict[str, Any]) -> list[BackfillProgress]:
    """Every backfill recorded in the export resources' states, summed over export types."""
    merged: dict[str, dict[str, Any]] = {}
    for state in resource_states.values():
        for backfill_id, record in state.get("backfills", {}).items():
            total = record.get("windows", 0) * len(record.get("segments", []))
            finished = sum(len(starts) for starts in record.get("done", {}).values())
            entry = merged.setdefault(backfill_id, {**record, "total": 0, "finished": 0})
            entry["total"] += total
            entry["finished"] += finished
    return [
        BackfillProgress(i, r["start"], r["end"], r["created_at"], r["total"], r["finished"])
        for i, r in sorted(merged.items())
    ]


def most_windows_per_segment(
    cursors: dict[str, str],
    settings: Windows,
    segment_ids: Sequence[str],
    newest: datetime,
    backfill: Backfill | None,
) -> int:
    """How many windows the run would plan for its busiest segment, counted without planning
    them (a --start decades back with 1h windows is hundreds of thousands)."""
    if backfill is not None:
        return max(0, (align_up(backfill.end, settings.window) - align_down(backfill.start, settings.window))
                   // settings.window)  # fmt: skip
    most = 0
    for segment in segment_ids:
        cursor = cursors.get(segment)
        first = parse_time(cursor, "cursor") if cursor else align_down(settings.start_date, settings.window)
        most = max(most, max(0, (newest - first) // settings.window))
    return most
