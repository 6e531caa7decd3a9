"""Batch import answers -> rows: a job's status, and each imported or refused event with its
nested objects flattened into query-friendly columns (batch_tables.py has their types)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


def job_row(job_id: str, body: dict[str, Any]) -> dict[str, Any]:
    job = body.get("job") or {}
    return {
        "job_id": job_id,
        "status": job.get("status"),
        "created": timestamp(job.get("created")),
        "finished": timestamp(job.get("finished")),
        "imports": count(body.get("imports")),
        "errors": count(body.get("errors")),
    }


def imported_event_row(result: dict[str, Any]) -> dict[str, Any]:
    row = _event_columns(result)
    row["schema"] = result.get("schema")
    return row


def import_error_row(result: dict[str, Any]) -> dict[str, Any]:
    event = _object(result.get("event"))
    return {
        **_event_columns(event),
        "message": _text(result.get("message")),
        "code": _text(result.get("code")),
        "event": result.get("event"),
        "shared": result.get("shared"),
    }


def _event_columns(event: dict[str, Any]) -> dict[str, Any]:
    user = _object(event.get("user"))
    session = _object(event.get("session"))
    context = _object(event.get("context"))
    browser = _object(context.get("browser"))
    location = _object(context.get("location"))
    return {
        "user_id": _text(user.get("id")),
        "user_uid": _text(user.get("uid")),
        "session_id": _text(session.get("id")),
        "session_uid": _text(session.get("uid")),
        "context_browser_url": _text(browser.get("url")),
        "context_browser_user_agent": _text(browser.get("user_agent")),
        "context_browser_initial_referrer": _text(browser.get("initial_referrer")),
        "location_country": _text(location.get("country")),
        "location_region": _text(location.get("region")),
        "location_city": _text(location.get("city")),
        "location_latitude": _float(location.get("latitude")),
        "location_longitude": _float(location.get("longitude")),
        "location_ip_address": _text(location.get("ip_address")),
        "context_mobile": context.get("mobile"),
        "context_device": context.get("device"),
        "name": _text(event.get("name")),
        "timestamp": timestamp(event.get("timestamp")),
        "properties": event.get("properties"),
    }


def count(value: Any) -> int | None:
    """FullStory writes counts as numbers or as strings (int64 in JSON)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


def timestamp(value: Any) -> datetime | None:
    """An ISO 8601 time as an aware UTC datetime; a time without an offset is taken as UTC.
    Anything else is None (a refused event's raw value stays in the `event` column)."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _float(value: Any) -> float | None:
    """A double, from a JSON number or a numeric string; anything else is no coordinate."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None
