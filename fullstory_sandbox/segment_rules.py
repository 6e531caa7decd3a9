"""Segment membership and event scope, the way FullStory's docs describe them.

A segment is defined by event criteria and a time range of its own, often relative ("users who
clicked in the last 30 days"). An export's `segmentTimeRange` overrides that range; without one,
the segment's own range is evaluated when the export is created, so re-exporting an old window of
a relative segment returns other rows, or none. `eventDetails.scope` then decides which events of
the members an events export holds:

- events:     only the events that match the criteria (SCOPE_EVENT; FullStory's SDK: SCOPE_EVENTS)
- pages:      every event of each page that holds a match (SCOPE_PAGES)
- sessions:   every event of each session that holds a match (SCOPE_SESSIONS)
- individual: every event of each member (SCOPE_INDIVIDUAL)

A match is an event that meets the criteria inside the membership range (a click 40 days ago is no
match for "clicked in the last 30 days"); the export's `timeRange` then picks the events.
The server's default scope when `eventDetails` is absent is not documented; the sandbox assumes the
narrowest one ("events"). Segments without a rule (the defaults, like `everyone`) match every event
over all time: their exports are exactly the generated rows of the window, whatever the request.

The sandbox ignores late arrival (data.LateData) when it evaluates membership.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from . import data

Row = dict[str, Any]

SCOPES = {
    "SCOPE_EVENT": "events",
    "SCOPE_EVENTS": "events",
    "SCOPE_PAGES": "pages",
    "SCOPE_SESSIONS": "sessions",
    "SCOPE_INDIVIDUAL": "individual",
}
DEFAULT_SCOPE = "events"
HOUR = timedelta(hours=1)


@dataclass(frozen=True)
class SegmentRule:
    """People with at least one event whose `field` equals `value`, within the segment's own time
    range: the last `last_days` days before the export (from midnight in the request's timezone),
    or all time when `last_days` is None."""

    field: str = "EventType"
    value: str = "click"
    last_days: int | None = 30

    def matches(self, row: Row) -> bool:
        return str(row.get(self.field, "")) == self.value

    def own_range(
        self, now: datetime, timezone: str | None, history_start: datetime
    ) -> tuple[datetime, datetime]:
        if self.last_days is None:
            return history_start, now
        zone = _zone(timezone)
        midnight = now.astimezone(zone).replace(hour=0, minute=0, second=0, microsecond=0)
        return (midnight - timedelta(days=self.last_days)).astimezone(UTC), now


@dataclass(frozen=True)
class Selection:
    """What an export of a segment holds, resolved when the export was created: members are the
    people with a match in [start, end); `scope` picks their events."""

    segment_id: str
    rule: SegmentRule | None  # None: every event matches
    start: datetime
    end: datetime
    scope: str

    def key(self) -> str:
        """For export cache names: everything that decides the rows."""
        stamp = "%Y%m%dT%H%M%S"
        rule = "all" if self.rule is None else f"{self.rule.field}={self.rule.value}"
        return f"{rule}-{self.start:{stamp}}-{self.end:{stamp}}-{self.scope}"


def resolve(
    segment_id: str,
    rule: SegmentRule | None,
    requested: tuple[datetime | None, datetime | None] | None,
    scope: str | None,
    timezone: str | None,
    now: datetime,
    history_start: datetime,
) -> Selection | None:
    """The selection for an export created at `now`; None when it is simply every generated row."""
    if requested is None:
        if rule is None:
            return None
        start, end = rule.own_range(now, timezone, history_start)
    else:
        start, end = requested[0] or history_start, requested[1] or now
    return Selection(segment_id, rule, start, end, scope or DEFAULT_SCOPE)


def select(
    selection: Selection | None,
    export_type: str,
    window: tuple[datetime, datetime],
    rows: Iterable[Row],
    events_per_hour: int,
) -> Iterator[Row]:
    """Filter the window's generated rows (events or individuals) down to what the export holds."""
    if selection is None or covers_everything(selection, window):
        yield from rows
        return
    members, pages, sessions = _matches(selection, events_per_hour)
    for row in rows:
        if row.get("IndvId") not in members:
            continue
        if export_type == "individuals" or _in_scope(row, selection, pages, sessions):
            yield row


def _in_scope(row: Row, selection: Selection, pages: frozenset[Any], sessions: frozenset[Any]) -> bool:
    if selection.scope == "events":
        if selection.rule is None:  # no criteria: every event of a member
            return True
        # a match: the criteria, inside the membership range
        return selection.rule.matches(row) and selection.start <= _when(row) < selection.end
    if selection.scope == "pages":
        return _page(row) in pages
    if selection.scope == "sessions":
        return _session(row) in sessions
    return True


def covers_everything(selection: Selection, window: tuple[datetime, datetime]) -> bool:
    """Without a rule every event matches, so when the membership range holds the window every
    row of the window is its own match."""
    return selection.rule is None and selection.start <= window[0] and window[1] <= selection.end


def _matches(
    selection: Selection, events_per_hour: int
) -> tuple[frozenset[Any], frozenset[Any], frozenset[Any]]:
    members: set[Any] = set()
    pages: set[Any] = set()
    sessions: set[Any] = set()
    hour = selection.start.replace(minute=0, second=0, microsecond=0)
    while hour < selection.end:
        for when, indv, page, session in _hour_matches(
            selection.segment_id, hour, events_per_hour, selection.rule
        ):
            if selection.start <= when < selection.end:
                members.add(indv)
                pages.add(page)
                sessions.add(session)
        hour += HOUR
    return frozenset(members), frozenset(pages), frozenset(sessions)


@lru_cache(maxsize=200_000)
def _hour_matches(
    segment_id: str, hour: datetime, events_per_hour: int, rule: SegmentRule | None
) -> tuple[tuple[datetime, Any, Any, Any], ...]:
    """The matching events of one UTC hour, which no window changes: cached across exports."""
    found = []
    for row in data.events(segment_id, hour, hour + HOUR, events_per_hour):
        if rule is None or rule.matches(row):
            found.append((_when(row), row.get("IndvId"), _page(row), _session(row)))
    return tuple(found)


def _when(row: Row) -> datetime:
    return datetime.fromisoformat(str(row["EventStart"]).replace("Z", "+00:00"))


def _page(row: Row) -> tuple[Any, Any, Any]:
    return row.get("UserId"), row.get("SessionId"), row.get("PageId")


def _session(row: Row) -> tuple[Any, Any]:
    return row.get("UserId"), row.get("SessionId")


def _zone(name: str | None) -> Any:
    if not name:
        return UTC
    try:
        return ZoneInfo(name)
    except (ValueError, ZoneInfoNotFoundError):
        return UTC  # an unknown zone (or no tz database on this machine): UTC, FullStory's default
