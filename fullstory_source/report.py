"""A ready-made event sink: collects every window's outcome and its live state.

report = RunReport()
source = fullstory_source(events=report, on_window_error="record")
pipeline.run(source)
report.failures  # the windows that failed (their cursors did not move)
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from .events import ExportEvent, WindowOutcome
from .exports import ExportJob


@dataclass
class LiveState:
    state: str  # Starting, Running, Downloading, Loading, Completed, Failed
    percent: float | None = None
    rows: int = 0
    bytes_downloaded: int = 0


@dataclass
class RunReport:
    """Sums, not lists, for the windows that loaded: a run of hundreds of thousands of windows
    (`--yes`) keeps this small. Failures and refreshes are kept whole: the summary lists them."""

    windows_loaded: int = 0
    rows_loaded: int = 0
    bytes_downloaded: int = 0
    failures: list[WindowOutcome] = field(default_factory=list)
    refreshed: list[WindowOutcome] = field(default_factory=list)
    live: dict[ExportJob, LiveState] = field(default_factory=dict)  # the exports in flight
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __call__(self, event: ExportEvent) -> None:
        with self._lock:
            if event.outcome is not None:
                self.live.pop(event.job, None)
                self._count(event.outcome)
                return
            live = self.live.setdefault(event.job, LiveState(event.state))
            live.state = event.state
            if event.percent is not None:
                live.percent = event.percent
            if event.rows is not None:
                live.rows = event.rows
            if event.bytes_downloaded is not None:
                live.bytes_downloaded = event.bytes_downloaded

    def _count(self, outcome: WindowOutcome) -> None:
        if outcome.status == "failed":
            self.failures.append(outcome)
            return
        self.windows_loaded += 1
        self.rows_loaded += outcome.rows
        self.bytes_downloaded += outcome.bytes_downloaded
        if outcome.kind == "refresh":
            self.refreshed.append(outcome)
