"""Config values checked and turned into one typed object, before any request is made."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .client import resolve_base_url
from .errors import ConfigurationError
from .exports import DIALECTS, EXPORT_FORMATS, EXPORT_TYPES, Dialect
from .windows import format_time, parse_duration, parse_time, parse_window

DEFAULT_LOOKBACK_DAYS = 30


@dataclass(frozen=True)
class Settings:
    base_url: str
    dialect: Dialect
    segment_ids: tuple[str, ...] | None
    export_types: tuple[str, ...]
    export_format: str
    start_date: datetime
    end_date: datetime | None
    window: timedelta
    export_delay: timedelta
    lookback: timedelta
    download_dir: Path
    # optional live-API request fields, passed through to every create-export request
    request_extras: dict[str, Any]


def as_list(value: str | Sequence[str] | None, name: str) -> tuple[str, ...] | None:
    """Lists come from TOML, env vars (JSON lists) or the command line ('a,b')."""
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else list(value)
    cleaned = tuple(str(item).strip() for item in items if str(item).strip())
    if not cleaned:
        raise ConfigurationError(f"{name} is empty; leave it unset or name at least one value")
    return cleaned


def build_settings(
    *,
    api_key: str,
    base_url: str | None,
    region: str | None,
    api_flavor: str,
    segment_ids: str | Sequence[str] | None,
    export_types: str | Sequence[str],
    export_format: str,
    start_date: Any,
    end_date: Any,
    window: Any,
    export_delay: Any,
    download_dir: str | None,
    lookback: Any = 0,
    fields: str | Sequence[str] | None = None,
    timezone: str | None = None,
    segment_time_range: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> Settings:
    if api_flavor not in DIALECTS:
        raise ConfigurationError(f"api_flavor={api_flavor!r} is unknown; use 'live' or 'spec'")
    types = as_list(export_types, "export_types") or ()
    unknown = [t for t in types if t not in EXPORT_TYPES]
    if unknown:
        raise ConfigurationError(f"unknown export type(s) {unknown}; choose from {', '.join(EXPORT_TYPES)}")
    if export_format not in EXPORT_FORMATS:
        raise ConfigurationError(
            f"export_format={export_format!r} is unknown; choose from {', '.join(EXPORT_FORMATS)}"
        )
    now = now or datetime.now(UTC)
    start = (
        parse_time(start_date, "start_date") if start_date else now - timedelta(days=DEFAULT_LOOKBACK_DAYS)
    )
    end = parse_time(end_date, "end_date") if end_date else None
    delay = parse_duration(export_delay, "export_delay")
    if delay < timedelta(0):
        raise ConfigurationError(f"export_delay={export_delay!r} is negative")
    if start_date and end and start >= end:  # a contradiction whatever the cursors say
        check_initial_start(start, end, None)
    return Settings(
        base_url=resolve_base_url(base_url, region, api_key or ""),
        dialect=DIALECTS[api_flavor],
        segment_ids=as_list(segment_ids, "segment_ids"),
        export_types=types,
        export_format=export_format,
        start_date=start,
        end_date=end,
        window=parse_window(window),
        export_delay=delay,
        lookback=_lookback(lookback),
        request_extras=request_extras(fields, timezone, segment_time_range),
        download_dir=Path(download_dir) if download_dir else Path(tempfile.gettempdir()) / "fullstory-dlt",
    )


def check_initial_start(start: datetime, end: datetime, export_delay: timedelta | None) -> None:
    """The initial start is only used where a (segment, type) has no cursor yet: checked there."""
    if start >= end:
        raise ConfigurationError(
            f"start {start:%Y-%m-%dT%H:%M:%SZ} is not before the end {end:%Y-%m-%dT%H:%M:%SZ}"
            + ("" if export_delay is None else f" (now minus export_delay {format_duration(export_delay)})")
            + "; pick an earlier start or a later end"
        )


def format_duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _lookback(value: Any) -> timedelta:
    lookback = parse_duration(value or 0, "lookback")
    if lookback < timedelta(0):
        raise ConfigurationError(f"lookback={value!r} is negative; use 0 to turn it off, or e.g. '24h'")
    return lookback


def request_extras(
    fields: str | Sequence[str] | None, timezone: str | None, segment_time_range: dict[str, Any] | None
) -> dict[str, Any]:
    extras: dict[str, Any] = {}
    names = as_list(fields, "fields")
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
        unknown = set(segment_time_range) - {"start", "end"}
        if unknown or not segment_time_range.get("start") or not segment_time_range.get("end"):
            raise ConfigurationError(
                f"segment_time_range={dict(segment_time_range)!r} needs exactly 'start' and 'end' "
                "(RFC 3339 times)"
            )
        start = parse_time(segment_time_range["start"], "segment_time_range.start")
        end = parse_time(segment_time_range["end"], "segment_time_range.end")
        if start >= end:
            raise ConfigurationError("segment_time_range.start must be before segment_time_range.end")
        extras["segmentTimeRange"] = {"start": format_time(start), "end": format_time(end)}
    return extras
