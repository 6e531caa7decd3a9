"""What a run did, window by window: the command prints it as the run summary."""

from __future__ import annotations

import threading
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


@dataclass
class RunReport:
    """Collects window outcomes. Passing one to `fullstory_source(report=...)` also changes
    what a failed export does: instead of failing the whole extract, that (segment, type)
    stops at the failed window (its cursor stays there) and every other window still loads;
    the caller then reads `failures` and decides (the command exits non-zero)."""

    outcomes: list[WindowOutcome] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, outcome: WindowOutcome) -> None:
        with self._lock:
            self.outcomes.append(outcome)

    @property
    def loaded(self) -> list[WindowOutcome]:
        return [o for o in self.outcomes if o.status == "loaded"]

    @property
    def failures(self) -> list[WindowOutcome]:
        return [o for o in self.outcomes if o.status == "failed"]
