"""The optional fields of every create-export request (fields, timezone, segmentTimeRange,
eventDetails.scope), checked once and spelled the way FullStory reads them.

Why segmentTimeRange is always sent: FullStory decides a segment's members over the segment's own
time range, often relative ("visited in the last 30 days"), evaluated when the export is created,
unless the request overrides it. Without it, re-exporting an old window of such a segment returns
other rows, or none. The choices (docs/fullstory-api.md has the evidence):

- "all" (default): `{"start": "", "end": ""}`, membership over all time, as FullStory's hauser
  sends. With the scopes events, pages and sessions a window's rows no longer change once its
  sessions are over, and do not depend on how the range is cut into windows.
- "window": the exported window itself, as FullStory's CLI sends: members are the people who
  match within that window. Reproducible too, but a session crossing a window edge is split by
  which part holds a match, and other window lengths give other rows.
- fixed bounds `{start, end}`: a membership period of your own; either bound may be "" (open).

Why eventDetails.scope defaults to SCOPE_SESSIONS: FullStory's docs define SCOPE_EVENT (only the
events that match the segment's criteria), SCOPE_PAGES, SCOPE_SESSIONS (every event of each
session with a match) and SCOPE_INDIVIDUAL (every event of each member); FullStory's SDK spells the
first SCOPE_EVENTS. Whole sessions are what session, funnel and page-flow analysis needs; for
`everyone` (no criteria) every scope is every event.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .errors import ConfigurationError
from .windows import Window, format_time, parse_time

SEGMENT_TIME_RANGES = ("all", "window")
EVENT_SCOPES = ("SCOPE_EVENT", "SCOPE_EVENTS", "SCOPE_PAGES", "SCOPE_SESSIONS", "SCOPE_INDIVIDUAL")
DEFAULT_EVENT_SCOPE = "SCOPE_SESSIONS"
ALL_TIME = {"start": "", "end": ""}


@dataclass(frozen=True)
class CreateFields:
    """What every create request adds to segmentId, type, format and timeRange."""

    static: dict[str, Any] = field(default_factory=dict)  # fields, timezone
    segment_time_range: str | dict[str, str] = "all"  # "all", "window" or {"start", "end"}
    event_scope: str | None = DEFAULT_EVENT_SCOPE

    def for_window(self, export_type: str, window: Window) -> dict[str, Any]:
        body = dict(self.static)
        if self.segment_time_range == "window":
            body["segmentTimeRange"] = {"start": format_time(window.start), "end": format_time(window.end)}
        elif self.segment_time_range == "all":
            body["segmentTimeRange"] = dict(ALL_TIME)
        else:
            body["segmentTimeRange"] = dict(self.segment_time_range)
        if export_type == "events" and self.event_scope:  # the scope is about events only
            body["eventDetails"] = {"scope": self.event_scope}
        return body

    def identity(self) -> dict[str, Any]:
        """The same for every window: what an operation resumed from the journal must match."""
        return {**self.static, "segmentTimeRange": self.segment_time_range, "eventScope": self.event_scope}


def create_fields(
    names: tuple[str, ...] | None,
    timezone: str | None,
    segment_time_range: Any = "all",
    event_scope: str | None = DEFAULT_EVENT_SCOPE,
) -> CreateFields:
    static: dict[str, Any] = {}
    if names:
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ConfigurationError(
                f"fields lists {repeated} more than once; name each field (or wildcard like user_*) once"
            )
        static["fields"] = list(names)
    if timezone:
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigurationError(
                f"timezone={timezone!r} is not an IANA time zone name (e.g. 'America/New_York')"
            ) from None
        static["timezone"] = timezone
    return CreateFields(static, _segment_time_range(segment_time_range), _event_scope(event_scope))


def _event_scope(value: str | None) -> str | None:
    if value is None or value == "":
        return None  # send no eventDetails: FullStory's own default (undocumented)
    if value not in EVENT_SCOPES:
        raise ConfigurationError(
            f"event_scope={value!r} is unknown; use one of {', '.join(EVENT_SCOPES)} "
            f"(default {DEFAULT_EVENT_SCOPE}: every event of each session with a match)"
        )
    return value


def _segment_time_range(value: Any) -> str | dict[str, str]:
    if value is None or value == "":
        return "all"
    if isinstance(value, str) and value.strip().startswith("{"):  # an env var holding JSON
        with contextlib.suppress(ValueError):
            value = json.loads(value)
    if isinstance(value, str):
        if value in SEGMENT_TIME_RANGES:
            return value
        raise ConfigurationError(
            f"segment_time_range={value!r} is unknown; use 'all' (default: membership over all "
            "time), 'window' (over each exported window) or {start, end} bounds "
            '(RFC 3339; "" leaves a bound open)'
        )
    if not isinstance(value, dict) or set(value) != {"start", "end"}:
        raise ConfigurationError(
            f"segment_time_range={value!r} needs exactly 'start' and 'end' (RFC 3339 times, or \"\" "
            "for an open bound), or one of 'all', 'window'"
        )
    start, end = (
        None if value[key] in ("", None) else parse_time(value[key], f"segment_time_range.{key}")
        for key in ("start", "end")
    )
    if start and end and start >= end:
        raise ConfigurationError(
            f"segment_time_range.start {format_time(start)} must be before "
            f"segment_time_range.end {format_time(end)}"
        )
    return {"start": format_time(start) if start else "", "end": format_time(end) if end else ""}
