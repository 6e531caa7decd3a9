"""Strict validation of `POST /segments/v1/exports` bodies in the spec and live spellings."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .errors import ApiError
from .segment_rules import SCOPES
from .timefmt import parse_ts

# The spec and the live API spell type and format differently; each flavor knows only its own.
TYPES = {
    "spec": {"events": "events", "individuals": "individuals"},
    "live": {"TYPE_EVENT": "events", "TYPE_INDIVIDUAL": "individuals"},
}
FORMATS = {
    "spec": {"json": "json", "csv": "csv", "ndjson": "ndjson"},  # ndjson: our extension to the spec
    "live": {"FORMAT_JSON": "json", "FORMAT_CSV": "csv", "FORMAT_NDJSON": "ndjson"},
}


# A segmentTimeRange as asked: None for a bound sent as "" ("forever in the past" / "up to the
# time of the request", as FullStory's SDK documents empty strings).
OpenRange = tuple[datetime | None, datetime | None]


@dataclass(frozen=True)
class ExportJob:
    """A validated export request, in flavor-neutral terms."""

    segment_id: str
    export_type: str  # "events" | "individuals"
    fmt: str  # "json" | "ndjson" | "csv"
    start: datetime
    end: datetime
    fields: tuple[str, ...] | None  # live only: restrict rows to these keys (trailing '*' wildcards)
    segment_range: OpenRange | None = None  # segmentTimeRange; None when the request had none
    scope: str | None = None  # eventDetails.scope as segment_rules names it; None when absent
    timezone: str | None = None  # IANA zone for relative segment dates (FullStory: default UTC)


def parse_export_request(body: Any, flavor: str, segment_ids: Collection[str]) -> ExportJob:
    if not isinstance(body, dict):
        raise ApiError(400, "request body must be a JSON object")
    segment_id = body.get("segmentId")
    if not isinstance(segment_id, str) or not segment_id:
        raise ApiError(400, "segmentId is required")
    if segment_id not in segment_ids:
        raise ApiError(400, f"segment not found: {segment_id}")
    export_type = _choice(body.get("type"), TYPES[flavor], "type")
    # The spec leaves format optional (JSON); the live API has no usable default.
    raw_format = body.get("format", "json" if flavor == "spec" else None)
    fmt = _choice(raw_format, FORMATS[flavor], "format")
    if "timeRange" not in body:
        raise ApiError(400, "timeRange is required")
    start, end = _time_range(body["timeRange"], "timeRange")
    segment_range = None
    if body.get("segmentTimeRange") is not None:
        segment_range = _open_range(body["segmentTimeRange"], "segmentTimeRange")
    timezone = body.get("timezone")
    if timezone is not None and (not isinstance(timezone, str) or not timezone):
        raise ApiError(400, "timezone must be a non-empty IANA zone name")
    return ExportJob(
        segment_id,
        export_type,
        fmt,
        start,
        end,
        _fields(body.get("fields"), flavor),
        segment_range,
        _scope(body.get("eventDetails")),
        timezone,
    )


def _choice(value: Any, allowed: dict[str, str], name: str) -> str:
    if value not in allowed:
        raise ApiError(400, f"invalid {name} {value!r}: expected one of {sorted(allowed)}")
    return allowed[value]


def _time_range(value: Any, name: str) -> tuple[datetime, datetime]:
    if not isinstance(value, dict):
        raise ApiError(400, f"{name} must be an object with start and end")
    bounds = []
    for key in ("start", "end"):
        if key not in value:
            raise ApiError(400, f"{name}.{key} is required")
        try:
            bounds.append(parse_ts(value[key]))
        except (TypeError, ValueError):
            raise ApiError(400, f"{name}.{key} is not an RFC 3339 timestamp: {value[key]!r}") from None
    start, end = bounds
    if start >= end:
        raise ApiError(400, f"{name}.start must be before {name}.end")
    return start, end


def _open_range(value: Any, name: str) -> OpenRange:
    """Like _time_range, but either bound may be "" (open), as hauser sends for "all time"."""
    if not isinstance(value, dict):
        raise ApiError(400, f"{name} must be an object with start and end")
    bounds: list[datetime | None] = []
    for key in ("start", "end"):
        raw = value.get(key, "")
        if raw == "":
            bounds.append(None)
            continue
        try:
            bounds.append(parse_ts(raw))
        except (TypeError, ValueError):
            raise ApiError(400, f"{name}.{key} is not an RFC 3339 timestamp: {raw!r}") from None
    start, end = bounds
    if start is not None and end is not None and start >= end:
        raise ApiError(400, f"{name}.start must be before {name}.end")
    return start, end


def _scope(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ApiError(400, "eventDetails must be an object with a scope")
    return _choice(value.get("scope"), SCOPES, "eventDetails.scope")


def _fields(value: Any, flavor: str) -> tuple[str, ...] | None:
    if value is None or flavor != "live":  # the spec has no `fields`; spec mode ignores it
        return None
    if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
        raise ApiError(400, "fields must be a list of field names")
    return tuple(value)
