"""What a user configures: the source's options as dlt configuration specs, one per group.

dlt resolves these (arguments, env vars `SOURCES__FULLSTORY__<NAME>`, `.dlt/config.toml` and
`secrets.toml` under `[sources.fullstory]`), coerces each value to its type and reports a
missing or unreadable one before any of our code runs. Every option is documented, with its
default, in `.dlt/config.toml`; tests/test_config.py keeps both in step.

`FullStorySourceConfiguration` combines the groups by inheritance, not as nested specs: a
nested spec is its own config section ([sources.fullstory.polling]), which would change every
key users have written. config.py checks the resolved values, once, before any request.
"""

from __future__ import annotations

from typing import Any, Literal

from dlt.common.configuration import configspec
from dlt.common.configuration.specs import BaseConfiguration
from dlt.common.typing import TSecretStrValue

ErrorPolicy = Literal["raise", "record"]


@configspec
class ConnectionConfiguration(BaseConfiguration):
    # a secret: dlt leaves it out of traces; a spec's repr shows no values at all
    api_key: TSecretStrValue = None
    base_url: str | None = None
    region: str | None = None
    api_flavor: str = "live"
    request_timeout: float = 60.0


@configspec
class RetriesConfiguration(BaseConfiguration):
    max_attempts: int = 5
    backoff_factor: float = 1.0
    max_retry_delay: float = 300.0
    download_attempts: int = 3


@configspec
class PollingConfiguration(BaseConfiguration):
    poll_interval: float = 1.0
    poll_max_interval: float = 30.0
    poll_timeout: float = 3 * 3600.0


@configspec
class WindowsConfiguration(BaseConfiguration):
    # times and durations stay text here: config.py reads them (RFC 3339, "1d", "24h")
    start_date: str | None = None
    end_date: str | None = None
    window: str = "1d"
    export_delay: str = "24h"
    lookback: str = "0"


@configspec
class ExportsConfiguration(BaseConfiguration):
    max_windows_per_run: int = 5000  # per segment and type; 0: no limit
    segment_ids: list[str] | None = None
    export_types: list[str] | None = None  # None: every type in registry.py
    export_format: str = "json"
    fields: list[str] | None = None
    timezone: str | None = None
    segment_time_range: Any = "all"  # "all", "window", or a {start, end} table / JSON object
    event_scope: str | None = "SCOPE_SESSIONS"
    max_concurrent_exports: int = 8
    max_creates_per_minute: float = 60.0
    create_burst: int = 8
    download_dir: str | None = None
    operations_journal_dir: str | None = None
    on_window_error: ErrorPolicy = "raise"


@configspec
class BatchImportsConfiguration(BaseConfiguration):
    batch_import_job_ids: list[str] | None = None
    batch_import_include_schema: bool = False
    batch_import_wait_timeout: float = 600.0


@configspec
class FullStorySourceConfiguration(
    BatchImportsConfiguration,
    ExportsConfiguration,
    WindowsConfiguration,
    PollingConfiguration,
    RetriesConfiguration,
    ConnectionConfiguration,
):
    """Every option of `fullstory_source`, flat under [sources.fullstory]."""
