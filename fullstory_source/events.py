"""What a run tells whoever listens (a progress display, a summary, a test), window by window.

One event type and one sink type: `fullstory_source(events=sink)` calls `sink(event)` from the
export threads whenever a window changes state, so a sink must be quick and thread-safe.

States, in order: Starting -> Running (FullStory's `estimatePctComplete` in `percent`) ->
Downloading -> Loading (`rows` so far) -> Completed or Failed (with the `outcome`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .exports import ExportJob


@dataclass(frozen=True)
class WindowOutcome:
    job: ExportJob
    status: str  # "loaded" | "failed"
    rows: int = 0
    bytes_downloaded: int = 0
    seconds: float = 0.0
    error: str = ""
    kind: str = "new"  # "new" | "refresh" | "backfill"
    rows_delta: int | None = None  # refresh: rows gained since the window was last loaded


@dataclass(frozen=True)
class ExportEvent:
    job: ExportJob
    state: str  # Starting, Running, Downloading, Loading, Completed, Failed
    percent: float | None = None  # FullStory's estimatePctComplete while Running
    bytes_downloaded: int | None = None  # once Downloading is over
    rows: int | None = None  # rows read so far (Loading) or in all (Completed)
    outcome: WindowOutcome | None = None  # with Completed and Failed


EventSink = Callable[[ExportEvent], None]


def ignore(event: ExportEvent) -> None:
    """The sink when nobody listens."""


def fan_out(*sinks: EventSink) -> EventSink:
    """One sink that passes every event to each of `sinks`, in order."""

    def send(event: ExportEvent) -> None:
        for sink in sinks:
            sink(event)

    return send
