"""Export operations: their progress through PENDING/RUNNING to COMPLETED or FAILED."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from .data import LateData
from .validate import ExportJob


@dataclass
class Operation:
    id: str
    export_id: str  # names the export file; the live API calls it searchExportId
    job: ExportJob
    events_per_hour: int  # captured at creation so the export matches what was asked for
    created_at: datetime
    failure: str | None  # errorDetails if this operation is destined to fail
    polls: int = 0
    ready_at: float = 0.0  # time.monotonic() before which the export is still being built
    late: tuple[LateData, datetime] | None = None  # late-data model, and when the export was asked
    finished_at: datetime | None = None
    file: Path | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def state(self, polls_needed: int, flavor: str) -> tuple[str, int]:
        """(state, estimatePctComplete) after the polls seen so far."""
        if self.polls >= max(polls_needed, 1) and time.monotonic() >= self.ready_at:
            # never complete before the first poll wrote the file
            return ("FAILED" if self.failure else "COMPLETED"), 100
        pct = min(99, 100 * self.polls // max(polls_needed, 1))
        if flavor == "live" or self.polls == 0:  # the live API never reports RUNNING
            return "PENDING", pct
        return "RUNNING", pct
