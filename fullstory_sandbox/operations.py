"""Export operations: their progress through PENDING/RUNNING to COMPLETED or FAILED, their ids,
and the operations list (`GET /operations/v1`)."""

from __future__ import annotations

import base64
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from .data import LateData
from .segment_rules import Selection
from .validate import ExportJob

ID_STYLES = ("base64", "hex")
LIST_TYPES = (
    "DELETE_USER",
    "SEARCH_EXPORT",
    "DELETE_SESSION",
    "DELETE_SEGMENT_SESSIONS",
    "DELETE_SEGMENT_USERS",
)
LIST_STATES = ("PENDING", "COMPLETED", "FAILED")


def new_id(style: str) -> str:
    """An operation (or export) id. FullStory's are standard base64 (the docs' example is
    "YnVsa3k6NTc0OTU2MzMzMTcwNjg4MA=="): these always hold '+', '/' and '==' padding, so a client
    that puts one in a URL path without percent-encoding it asks for another path."""
    if style == "hex":
        return uuid.uuid4().hex
    # 0xfb 0xff at a 3-byte boundary encode as "+/"; 13 bytes leave "==" padding.
    raw = secrets.token_bytes(9) + b"\xfb\xff" + secrets.token_bytes(2)
    return base64.b64encode(raw).decode()


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
    selection: Selection | None = None  # members and scope, resolved when the export was asked
    request: Any = None  # the create body as received
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
