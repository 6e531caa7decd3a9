"""Today's export field names and the newer fields, added to the rows data.py generates.

FullStory's own SDK (fullstory-anywhere-activation, projects/sdk/src/segment-export.ts) and hauser
(warehouse/schema.go) name the selector `EventTargetSelector`; `EventTargetSelectorTok` is the legacy
name. They also list numeric fields the first sandbox did not send: event and page measurements
(EventSecondaryDuration, EventCumulativeLayoutShift (a float), EventFirstInputDelay, PageNumEvents,
PageNumDerivedEvents, PageMaxScrollDepthPercent, Load*Time) and, for individuals, session
statistics (AvgSessionActiveSec, MaxSessionSec, LastSessionNumPages, LastSessionNumEvents,
LastSessionSec, LastSessionActiveSec, LastLatLong). Values derive from a hash of the row's own ids,
so every export of the same rows carries the same values. Where FullStory sends a field only for
some event types, so does this (load measurements on `load` events, scroll depth on `navigate`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from typing import Any

Row = dict[str, Any]


def add(rows: Iterable[Row], export_type: str) -> Iterator[Row]:
    if export_type == "events":
        return (_event(row) for row in rows)
    return (_individual(row) for row in rows)


def _draw(*parts: object) -> int:
    key = "|".join(str(part) for part in parts).encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big")


def _event(row: Row) -> Row:
    if "EventTargetSelectorTok" in row:
        row = dict(row)
        row["EventTargetSelector"] = row.pop("EventTargetSelectorTok")
    else:
        row = dict(row)
    page = _draw(row.get("PageId"), "page")
    row["PageNumEvents"] = 5 + page % 400
    row["PageNumDerivedEvents"] = page % 7
    kind = row.get("EventType")
    if kind == "navigate":
        row["PageMaxScrollDepthPercent"] = page % 101
    if kind == "load":
        event = _draw(row.get("PageId"), row.get("EventStart"), "load")
        row["LoadDomContentTime"] = 80 + event % 2000
        row["LoadEventTime"] = 120 + event % 4000
        row["LoadFirstPaintTime"] = 60 + event % 1500
        row["LoadLargestPaintTime"] = 200 + event % 5000
        row["EventFirstInputDelay"] = event % 300
        row["EventSecondaryDuration"] = event % 9000
        # a float score; some are exactly 0 and written as a JSON integer, as JSON encoders do
        shift = event % 1000
        row["EventCumulativeLayoutShift"] = 0 if shift < 100 else round(shift / 4000, 4)
    return row


def _individual(row: Row) -> Row:
    row = dict(row)
    person = _draw(row.get("IndvId"), row.get("LastSessionStart"), "person")
    sessions = max(int(row.get("NumSessions") or 1), 1)
    total = int(row.get("TotalSec") or 0)
    active = int(row.get("ActiveSec") or 0)
    row["AvgSessionActiveSec"] = active / sessions
    row["MaxSessionSec"] = total if sessions == 1 else total // sessions + person % max(total // sessions, 1)
    row["LastSessionNumPages"] = 1 + person % 6
    row["LastSessionNumEvents"] = 1 + person % 40
    row["LastSessionSec"] = 60 + person % 1800
    row["LastSessionActiveSec"] = (60 + person % 1800) * 2 // 3
    row["LastLatLong"] = f"{(person % 12000) / 100 - 60:.4f},{(person // 7 % 30000) / 100 - 150:.4f}"
    return row
