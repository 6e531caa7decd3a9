"""What a run does, window by window: live states for a progress display, and the outcomes
the command prints as its summary."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from .exports import ExportJob


@dataclass
class WindowOutcome:
    job: ExportJob
    status: str  # "loaded" | "failed"
    rows: int = 0
    bytes_downloaded: int = 0
    seconds: float = 0.0
    error: str = ""
    kind: str = "new"  # "new" | "refresh" | "backfill"
    rows_delta: int | None = None  # refresh: rows gained since the window was last loaded


@dataclass
class LiveState:
    state: str  # Starting, Running, Downloading, Loading, Completed, Failed
    percent: float | None = None
    rows: int = 0
    bytes: int = 0  # downloaded so far


@dataclass
class RunReport:
    """Collects window outcomes. Passing one to `fullstory_source(report=...)` also changes
    what a failed export does: instead of failing the whole extract, that window is recorded
    as failed (its cursor stays before it) and every other window still loads; the caller
    then reads `failures` and decides (the command exits non-zero).

    `listener`, when set, hears every change of a window's live state (progress displays)."""

    outcomes: list[WindowOutcome] = field(default_factory=list)
    live: dict[ExportJob, LiveState] = field(default_factory=dict)
    listener: Callable[[ExportJob, LiveState], None] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def update(
        self,
        job: ExportJob,
        state: str,
        percent: float | None = None,
        rows: int | None = None,
        bytes_downloaded: int | None = None,
    ) -> None:
        with self._lock:
            live = self.live.setdefault(job, LiveState(state))
            live.state = state
            if percent is not None:
                live.percent = percent
            if rows is not None:
                live.rows = rows
            if bytes_downloaded is not None:
                live.bytes = bytes_downloaded
        if self.listener:
            self.listener(job, live)

    def add(self, outcome: WindowOutcome) -> None:
        with self._lock:
            self.outcomes.append(outcome)
        self.update(outcome.job, "Completed" if outcome.status == "loaded" else "Failed", rows=outcome.rows)

    @property
    def loaded(self) -> list[WindowOutcome]:
        return [o for o in self.outcomes if o.status == "loaded"]

    @property
    def failures(self) -> list[WindowOutcome]:
        return [o for o in self.outcomes if o.status == "failed"]
