"""RFC 3339 timestamps the way FullStory writes them: always UTC with a trailing 'Z'."""

from __future__ import annotations

from datetime import UTC, datetime


def format_ts(moment: datetime) -> str:
    """Whole seconds when there is no sub-second part, else milliseconds (both occur in real exports)."""
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    # An f-string rather than strftime: this runs several times per generated row.
    date = f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}"
    text = f"{date}T{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}"
    if moment.microsecond:
        text += f".{moment.microsecond // 1000:03d}"
    return text + "Z"


def parse_ts(text: str) -> datetime:
    """Parse an RFC 3339 timestamp into an aware UTC datetime; raise ValueError otherwise.

    A naive timestamp is rejected rather than guessed: the API cannot know the caller's zone.
    """
    if not isinstance(text, str) or "T" not in text:
        raise ValueError(f"not an RFC 3339 timestamp: {text!r}")
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"timestamp has no timezone: {text!r}")
    return moment.astimezone(UTC)


def require_utc(moment: datetime) -> datetime:
    """Normalise an aware datetime to UTC; naive ones would silently mean local time, so refuse them."""
    if moment.tzinfo is None:
        raise ValueError("datetime must be timezone-aware")
    return moment.astimezone(UTC)
