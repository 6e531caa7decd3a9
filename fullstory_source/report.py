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
    outcomes: list[WindowOutcome] = field(default_factory=list)
    live: dict[ExportJob, LiveState] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __call__(self, event: ExportEvent) -> None:
        with self._lock:
            live = self.live.setdefault(event.job, LiveState(event.state))
            live.state = event.state
            if event.percent is not None:
                live.percent = event.percent
            if event.rows is not None:
                live.rows = event.rows
            if event.bytes_downloaded is not None:
                live.bytes_downloaded = event.bytes_downloaded
            if event.outcome is not None:
                self.outcomes.append(event.outcome)

    @property
    def loaded(self) -> list[WindowOutcome]:
        return [o for o in self.outcomes if o.status == "loaded"]

    @property
    def failures(self) -> list[WindowOutcome]:
        return [o for o in self.outcomes if o.status == "failed"]
