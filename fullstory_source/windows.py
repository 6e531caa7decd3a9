"""Export windows on a fixed UTC grid, and the times that bound them.

Windows divide a day evenly and are aligned to UTC midnight, so a window always has the same
bounds whichever run exports it: that is what lets a re-export replace exactly what an earlier
run loaded. `timeRange` is start-inclusive and end-exclusive, and so is `Window`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from .errors import ConfigurationError

DAY = timedelta(days=1)
QUARTER_HOUR = timedelta(minutes=15)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# times outside these are typos (and year 9999 would overflow the grid arithmetic)
EARLIEST, LATEST = EPOCH, datetime(3000, 1, 1, tzinfo=UTC)
_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d)?\s*$", re.IGNORECASE)  # no unit: seconds
_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True, order=True)
class Window:
    start: datetime
    end: datetime

    def __str__(self) -> str:
        return f"[{format_time(self.start)}, {format_time(self.end)})"


def parse_duration(value: str | float | timedelta, name: str) -> timedelta:
    """'15m', '1h', '6h', '1d', '3600s' or a number of seconds."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return timedelta(seconds=value)
    match = _DURATION.match(str(value))
    if not match:
        raise ConfigurationError(
            f"{name}={value!r} is not a duration; use a number with a unit: '30m', '1h', '6h', '1d'"
        )
    return timedelta(seconds=int(match.group(1)) * _UNIT_SECONDS[(match.group(2) or "s").lower()])


def parse_window(value: str | float | timedelta) -> timedelta:
    window = parse_duration(value, "window")
    if window <= timedelta(0) or window > DAY or DAY % window != timedelta(0):
        raise ConfigurationError(
            f"window={value!r} does not divide 24 hours; windows sit on a UTC grid aligned to "
            "midnight, so pick a length like 15m, 30m, 1h, 2h, 3h, 4h, 6h, 8h, 12h or 1d"
        )
    if window % QUARTER_HOUR:
        # events are replaced per 15-minute bucket: a shorter window would delete the rows of
        # the other windows sharing its bucket (tables.py)
        raise ConfigurationError(
            f"window={value!r} is shorter than or not a whole number of 15-minute buckets; "
            "windows replace events per 15-minute bucket, so pick 15m, 30m, 1h, 2h, 3h, 4h, 6h, "
            "8h, 12h or 1d"
        )
    return window


def parse_time(value: str | datetime, name: str) -> datetime:
    """An RFC 3339 time (a date alone means its UTC midnight); always returned in UTC."""
    if isinstance(value, datetime):
        parsed = value
    else:
        text = str(value).strip()
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise ConfigurationError(
                f"{name}={value!r} is not an RFC 3339 time; write it like 2026-10-01T00:00:00Z"
            ) from None
        if parsed.tzinfo is None and _DATE_ONLY.match(text):
            parsed = parsed.replace(tzinfo=UTC)  # a bare date means its UTC midnight
    if parsed.tzinfo is None:
        raise ConfigurationError(
            f"{name}={value!r} has no time zone; add 'Z' for UTC, e.g. 2026-10-01T00:00:00Z"
        )
    if not EARLIEST <= parsed < LATEST:
        raise ConfigurationError(
            f"{name}={value!r} is outside {EARLIEST.year}-{LATEST.year - 1}; check the year"
        )
    return parsed.astimezone(UTC)


def format_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def align_down(moment: datetime, window: timedelta) -> datetime:
    return moment - (moment - EPOCH) % window


def align_up(moment: datetime, window: timedelta) -> datetime:
    floor = align_down(moment, window)
    return floor if floor == moment else floor + window


def grid_windows(start: datetime, end: datetime, window: timedelta) -> Iterator[Window]:
    """Whole grid windows from `start` (aligned down) that end no later than `end`."""
    cursor = align_down(start, window)
    while cursor + window <= end:
        yield Window(cursor, cursor + window)
        cursor += window


def check_on_grid(start: datetime, end: datetime, window: timedelta, what: str) -> None:
    """A range that must be whole grid windows (a backfill): a bound between grid lines would
    silently export more, or less, than asked."""
    for name, moment in (("start", start), ("end", end)):
        if align_down(moment, window) != moment:
            below = align_down(moment, window)
            raise ConfigurationError(
                f"{what} {name} {format_time(moment)} is not on the {duration_text(window)} window grid; "
                f"use {format_time(below)} or {format_time(below + window)}"
            )


def duration_text(length: timedelta) -> str:
    seconds = int(length.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def newest_window_end(
    now: datetime, export_delay: timedelta, window: timedelta, end_date: datetime | None
) -> datetime:
    """Windows end no later than `now - export_delay` (FullStory still processes recent data),
    or `end_date` when given; either way on the grid."""
    limit = end_date if end_date is not None else now - export_delay
    return align_down(limit, window)
