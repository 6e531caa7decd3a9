"""The source's configuration checked, once, before any request, into six groups.

dlt resolves the options users write (config_specs.py: `[sources.fullstory]` in config.toml,
env vars `SOURCES__FULLSTORY__<NAME>`, arguments) and coerces each to its type. `configure`
then checks what a type cannot say (a window that divides the day, a start before the end, a
known export type, a key that can be an HTTP header...) and returns one `SourceConfig` of
connection, retries, polling, windows, exports and batch imports, holding the values the code
uses (times, durations, paths, the API dialect). Nothing else reads raw config values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from .batch_imports import validate_job_ids
from .client import require_api_key, resolve_base_url
from .config_specs import ErrorPolicy, FullStorySourceConfiguration
from .errors import ConfigurationError
from .registry import DIALECTS, EXPORT_FORMATS, EXPORT_TYPES, Dialect
from .request_fields import CreateFields, create_fields
from .windows import align_down, format_time, parse_duration, parse_time, parse_window

DEFAULT_LOOKBACK_DAYS = 30
Values = Mapping[str, Any]  # a resolved FullStorySourceConfiguration, or its values by name


@dataclass(frozen=True)
class Connection:
    base_url: str
    dialect: Dialect
    request_timeout: float = 60.0


@dataclass(frozen=True)
class Retries:
    max_attempts: int = 5
    backoff_factor: float = 1.0
    max_retry_delay: float = 300.0
    download_attempts: int = 3


@dataclass(frozen=True)
class Polling:
    interval: float = 1.0
    max_interval: float = 30.0
    timeout: float = 3 * 3600.0


@dataclass(frozen=True)
class Windows:
    start_date: datetime
    end_date: datetime | None
    window: timedelta
    export_delay: timedelta
    lookback: timedelta = timedelta(0)


@dataclass(frozen=True)
class Exports:
    segment_ids: tuple[str, ...] | None
    export_types: tuple[str, ...]
    export_format: str
    create_fields: CreateFields  # what every create request sends besides the window (request_fields.py)
    max_windows: int = 5000  # per segment and type in one run; 0: no limit
    max_concurrent: int = 8
    creates_per_minute: float = 60.0
    create_burst: int = 8
    download_dir: Path | None = None  # None: the system temp dir, at run time
    journal_dir: Path | None = None  # None: the pipeline's working dir
    on_window_error: ErrorPolicy = "raise"


@dataclass(frozen=True)
class BatchImports:
    job_ids: tuple[str, ...] = ()
    include_schema: bool = False
    wait_timeout: float = 600.0


@dataclass(frozen=True)
class SourceConfig:
    connection: Connection
    retries: Retries
    polling: Polling
    windows: Windows
    exports: Exports
    batch_imports: BatchImports


def as_list(value: str | Sequence[str] | None, name: str) -> tuple[str, ...] | None:
    """Lists come from TOML, env vars (JSON lists) or the command line ('a,b')."""
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else list(value)
    cleaned = tuple(str(item).strip() for item in items if str(item).strip())
    if not cleaned:
        raise ConfigurationError(f"{name} is empty; leave it unset or name at least one value")
    repeated = sorted({item for item in cleaned if cleaned.count(item) > 1})
    if repeated:
        raise ConfigurationError(f"{name} lists {repeated} more than once; name each once")
    return cleaned


def configure(spec: FullStorySourceConfiguration, now: datetime | None = None) -> SourceConfig:
    """`spec`: the options as dlt resolved them; raises ConfigurationError on the first bad one."""
    v = spec
    require_api_key(v["api_key"])
    flavor = v["api_flavor"]
    if flavor not in DIALECTS:
        raise ConfigurationError(f"api_flavor={flavor!r} is unknown; use 'live' or 'spec'")
    return SourceConfig(
        connection=Connection(
            resolve_base_url(v["base_url"], v["region"], v["api_key"] or ""),
            DIALECTS[flavor],
            _positive(v, "request_timeout"),
        ),
        retries=Retries(
            _at_least_one(v, "max_attempts"),
            _not_negative(v, "backoff_factor"),
            _not_negative(v, "max_retry_delay"),
            _at_least_one(v, "download_attempts"),
        ),
        polling=Polling(
            _positive(v, "poll_interval"), _positive(v, "poll_max_interval"), _positive(v, "poll_timeout")
        ),
        windows=windows(v, now or datetime.now(UTC)),
        exports=_exports(v),
        batch_imports=BatchImports(
            validate_job_ids(v["batch_import_job_ids"]),
            bool(v["batch_import_include_schema"]),
            _positive(v, "batch_import_wait_timeout"),
        ),
    )


def windows(v: Values, now: datetime) -> Windows:
    start_date, end_date, export_delay = v["start_date"], v["end_date"], v["export_delay"]
    start = (
        parse_time(start_date, "start_date") if start_date else now - timedelta(days=DEFAULT_LOOKBACK_DAYS)
    )
    end = parse_time(end_date, "end_date") if end_date else None
    delay = parse_duration(export_delay, "export_delay")
    if delay < timedelta(0):
        raise ConfigurationError(f"export_delay={export_delay!r} is negative")
    if start_date and end and start >= end:  # a contradiction whatever the cursors say
        check_initial_start(start, end, None)
    grid = parse_window(v["window"])
    if start_date and end is not None and align_down(start, grid) + grid > end:
        # before the end of the first window: nothing could ever be exported, cursors or not
        raise ConfigurationError(
            f"end {format_time(end)} leaves no whole {v['window']} window after start "
            f"{format_time(start)}: the first window ends at {format_time(align_down(start, grid) + grid)}; "
            "pick a later end"
        )
    lookback = parse_duration(v.get("lookback") or 0, "lookback")
    if lookback < timedelta(0):
        raise ConfigurationError(
            f"lookback={v['lookback']!r} is negative; use 0 to turn it off, or e.g. '24h'"
        )
    return Windows(start, end, grid, delay, lookback)


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


def _exports(v: Values) -> Exports:
    given = v["export_types"]
    types = as_list(list(EXPORT_TYPES) if given is None else given, "export_types") or ()
    unknown = [t for t in types if t not in EXPORT_TYPES]
    if unknown:
        raise ConfigurationError(f"unknown export type(s) {unknown}; choose from {', '.join(EXPORT_TYPES)}")
    export_format = v["export_format"]
    if export_format not in EXPORT_FORMATS:
        raise ConfigurationError(
            f"export_format={export_format!r} is unknown; choose from {', '.join(EXPORT_FORMATS)}"
        )
    policy = v["on_window_error"]
    if policy not in ("raise", "record"):
        raise ConfigurationError(f"on_window_error={policy!r} is unknown; use 'raise' or 'record'")
    return Exports(
        segment_ids=as_list(v["segment_ids"], "segment_ids"),
        export_types=types,
        export_format=export_format,
        create_fields=create_fields(
            as_list(v["fields"], "fields"), v["timezone"], v["segment_time_range"], v["event_scope"]
        ),
        max_windows=_whole_not_negative(v, "max_windows_per_run"),
        max_concurrent=_at_least_one(v, "max_concurrent_exports"),
        creates_per_minute=_positive(v, "max_creates_per_minute"),
        create_burst=_at_least_one(v, "create_burst"),
        download_dir=Path(v["download_dir"]) if v["download_dir"] else None,
        journal_dir=Path(v["operations_journal_dir"]) if v["operations_journal_dir"] else None,
        on_window_error=policy,
    )


def _number(v: Values, name: str) -> float:
    try:
        return float(v[name])
    except (TypeError, ValueError):
        raise ConfigurationError(f"{name}={v[name]!r} is not a number") from None


def _positive(v: Values, name: str) -> float:
    if _number(v, name) <= 0:
        raise ConfigurationError(f"{name}={v[name]!r} must be greater than 0")
    return _number(v, name)


def _not_negative(v: Values, name: str) -> float:
    if _number(v, name) < 0:
        raise ConfigurationError(f"{name}={v[name]!r} must not be negative")
    return _number(v, name)


def _at_least_one(v: Values, name: str) -> int:
    if _number(v, name) < 1 or int(_number(v, name)) != _number(v, name):
        raise ConfigurationError(f"{name}={v[name]!r} must be a whole number, at least 1")
    return int(_number(v, name))


def _whole_not_negative(v: Values, name: str) -> int:
    if _number(v, name) < 0 or int(_number(v, name)) != _number(v, name):
        raise ConfigurationError(f"{name}={v[name]!r} must be a whole number, 0 or more")
    return int(_number(v, name))
