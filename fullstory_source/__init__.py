"""FullStory segment exports as a dlt source: `fullstory_source` (source.py).

Where to read: source.py (the resources), lifecycle.py (one window's export, top to bottom),
registry.py (the export types), config_specs.py and config.py (every option, and its checks),
events.py (what a run reports).
"""

from __future__ import annotations

from .errors import (
    ConfigurationError,
    DownloadError,
    ExportFailedError,
    FullStoryAPIError,
    FullStoryError,
    UnexpectedResponseError,
)
from .events import EventSink, ExportEvent, WindowOutcome, fan_out
from .plans import Backfill, pending_windows
from .report import RunReport
from .source import fullstory_source

__all__ = [
    "Backfill",
    "ConfigurationError",
    "DownloadError",
    "EventSink",
    "ExportEvent",
    "ExportFailedError",
    "FullStoryAPIError",
    "FullStoryError",
    "RunReport",
    "UnexpectedResponseError",
    "WindowOutcome",
    "fan_out",
    "fullstory_source",
    "pending_windows",
]
