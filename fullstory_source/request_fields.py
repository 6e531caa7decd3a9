"""Optional fields of the live create-export request (fields, timezone, segmentTimeRange),
checked and spelled the way FullStory reads them."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .errors import ConfigurationError
from .windows import format_time, parse_time


def request_extras(
    names: tuple[str, ...] | None, timezone: str | None, segment_time_range: dict[str, Any] | None
) -> dict[str, Any]:
    extras: dict[str, Any] = {}
    if names:
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ConfigurationError(
                f"fields lists {repeated} more than once; name each field (or wildcard like user_*) once"
            )
        extras["fields"] = list(names)
    if timezone:
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigurationError(
                f"timezone={timezone!r} is not an IANA time zone name (e.g. 'America/New_York')"
            ) from None
        extras["timezone"] = timezone
    if segment_time_range:
        extras["segmentTimeRange"] = _segment_time_range(segment_time_range)
    return extras


def _segment_time_range(value: dict[str, Any]) -> dict[str, str]:
    unknown = set(value) - {"start", "end"}
    if unknown or not value.get("start") or not value.get("end"):
        raise ConfigurationError(
            f"segment_time_range={dict(value)!r} needs exactly 'start' and 'end' (RFC 3339 times)"
        )
    start = parse_time(value["start"], "segment_time_range.start")
    end = parse_time(value["end"], "segment_time_range.end")
    if start >= end:
        raise ConfigurationError("segment_time_range.start must be before segment_time_range.end")
    return {"start": format_time(start), "end": format_time(end)}
