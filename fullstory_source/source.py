"""`fullstory_source`: FullStory segments and segment exports as a dlt source.

Resources:
- `segments`: every segment the key can see, merged on `id`.
- `events` / `individuals` (one per export type in registry.py): one FullStory export per
  (segment, window), all run concurrently. Each window replaces exactly the rows of its time
  span for its segment (tables.py); individuals merge on (segment_id, indv_id).
- `export_runs`: one row per window exported: status, rows, bytes, errors (runs.py).
- `batch_import_jobs`, `batch_imported_events`, `batch_import_errors` (batch_imports.py): the
  results of FullStory v2 batch event imports, when `batch_import_job_ids` are given.

The cursor of each (segment, export type) is the end of the last window loaded without a gap,
kept in dlt resource state (plans.py): it is committed together with the data of those windows
in one load package, so it never runs ahead of what the destination holds.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Sequence
from typing import Any

import dlt
from dlt.sources import DltResource

from .batch_imports import batch_import_resources
from .config import configure
from .config_specs import ErrorPolicy, FullStorySourceConfiguration
from .events import EventSink, ignore
from .plans import Backfill
from .resources import export_resource, segments_resource
from .run import ExportRun
from .runs import export_runs_resource
from .windows import check_on_grid


@dlt.source(name="fullstory", max_table_nesting=0, spec=FullStorySourceConfiguration)
def fullstory_source(
    api_key: str = dlt.secrets.value,
    base_url: str | None = None,
    region: str | None = None,
    api_flavor: str = "live",
    segment_ids: list[str] | None = None,
    export_types: list[str] | None = None,
    export_format: str = "json",
    start_date: str | None = None,
    end_date: str | None = None,
    window: str = "1d",
    export_delay: str = "24h",
    lookback: str = "0",
    max_windows_per_run: int = 5000,
    max_concurrent_exports: int = 8,
    max_creates_per_minute: float = 60.0,
    create_burst: int = 8,
    poll_interval: float = 1.0,
    poll_max_interval: float = 30.0,
    poll_timeout: float = 3 * 3600.0,
    request_timeout: float = 60.0,
    max_attempts: int = 5,
    backoff_factor: float = 1.0,
    max_retry_delay: float = 300.0,
    download_attempts: int = 3,
    download_dir: str | None = None,
    fields: list[str] | None = None,
    timezone: str | None = None,
    segment_time_range: Any = "all",
    event_scope: str | None = "SCOPE_SESSIONS",
    batch_import_job_ids: list[str] | None = None,
    batch_import_include_schema: bool = False,
    batch_import_wait_timeout: float = 600.0,
    operations_journal_dir: str | None = None,
    on_window_error: ErrorPolicy = "raise",
    events: EventSink | None = None,
    backfill: Backfill | None = None,
    config: FullStorySourceConfiguration = dlt.config.value,
) -> Sequence[DltResource]:
    """FullStory segments and segment exports. Every argument but the last three is also a
    config value under [sources.fullstory] (.dlt/config.toml lists them with their defaults),
    declared, with the same defaults, by `FullStorySourceConfiguration` (config_specs.py),
    which dlt resolves; config.py checks them all, and groups them, before anything else.

    `on_window_error`: "raise" (a failed window fails the extract) or "record" (it is recorded in
    `export_runs` and reported as a Failed event; its cursor stays before it; the other windows
    load). `events`: a sink called with every window's state changes (events.py; `RunReport` is
    one). `backfill`: export [start, end) again instead of the windows after the cursors.
    `config`: the resolved options; dlt fills it in (a spec given here is its starting point)."""
    settings = configure(config)
    if backfill is not None:
        check_on_grid(backfill.start, backfill.end, settings.windows.window, "backfill")
    run = ExportRun(settings, api_key, events or ignore, backfill)
    import_thread_unsafe_modules()
    resources = [segments_resource(run)]
    resources += [export_resource(name, run) for name in settings.exports.export_types]
    resources.append(export_runs_resource(lambda: run.start().run_log))
    if settings.batch_imports.job_ids:
        batch = settings.batch_imports
        resources += batch_import_resources(
            run.lazy_client(),
            batch.job_ids,
            include_schema=batch.include_schema,
            wait_timeout=batch.wait_timeout,
            poll_interval=settings.polling.interval,
            poll_max_interval=settings.polling.max_interval,
        )
    return resources


def import_thread_unsafe_modules() -> None:
    """pandas, if installed, imported here in the thread that builds the source: its first
    import is not thread-safe, and in the export threads the BigQuery and Snowflake clients
    import it while dlt's extract checks it ("partially initialized module 'pandas'")."""
    if importlib.util.find_spec("pandas") is not None:
        importlib.import_module("pandas")
