"""FullStory segment exports as a dlt source.

Resources:
- `segments`: every segment the key can see, merged on `id`.
- `events` / `individuals`: one FullStory export per (segment, window), all run concurrently
  (scheduler.py). Each window replaces exactly the rows of its time span for its segment
  (tables.py says how); individuals merge on (segment_id, indv_id).
- Each window also writes a row to `export_runs` (runs.py): status, rows, bytes, errors.
- `batch_import_jobs`, `batch_imported_events`, `batch_import_errors` (batch_imports.py): the
  results of FullStory v2 batch event imports, when `batch_import_job_ids` are given.

The cursor of each (segment, export type) is the end of the last window loaded without a gap,
kept in dlt resource state (plans.py): it is committed together with the data of those windows
in one load package, so it never runs ahead of what the destination holds.
"""

from __future__ import annotations

import json
import logging
import tempfile
import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dlt
from dlt.sources import DltResource

from .batch_imports import batch_import_resources
from .client import FullStoryClient, download_session
from .errors import (
    ConfigurationError,
    DownloadError,
    ExportFailedError,
    FullStoryAPIError,
    FullStoryError,
    UnexpectedResponseError,
)
from .exports import Exporter, ExportOptions
from .journal import OperationJournal
from .plans import Backfill, WindowPlan, pending_windows
from .readers import read_export
from .report import RunReport, WindowOutcome
from .runs import run_record
from .scheduler import ExportScheduler, Finished
from .settings import Settings, build_settings
from .tables import (
    REQUIRED_FIELDS,
    TABLE_HINTS,
    add_load_id_to_arrow_rows,
    allow_columns_to_differ_between_windows,
    mark_batch,
)
from .windows import newest_window_end

__all__ = [
    "Backfill",
    "ConfigurationError",
    "DownloadError",
    "ExportFailedError",
    "FullStoryAPIError",
    "FullStoryError",
    "RunReport",
    "UnexpectedResponseError",
    "fullstory_source",
    "pending_windows",
]

logger = logging.getLogger(__name__)


@dlt.source(name="fullstory", max_table_nesting=0)
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
    export_delay: str = "3h",
    lookback: str = "0",
    max_concurrent_exports: int = 8,
    max_creates_per_minute: float = 60.0,
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
    segment_time_range: dict[str, str] | None = None,
    batch_import_job_ids: list[str] | None = None,
    batch_import_include_schema: bool = False,
    batch_import_wait_timeout: float = 600.0,
    operations_journal_dir: str | None = None,
    report: RunReport | None = None,
    backfill: Backfill | None = None,
) -> Sequence[DltResource]:
    """FullStory segments and segment exports. Every argument but the last two is also a
    config value under [sources.fullstory] (.dlt/config.toml lists them with their defaults).

    `report`: collect window outcomes and live progress; with it, a failed window is recorded
    instead of failing the whole run. `backfill`: export [start, end) again instead of the
    windows after the cursors (the `backfill` command)."""
    settings = build_settings(
        api_key=api_key,
        base_url=base_url,
        region=region,
        api_flavor=api_flavor,
        segment_ids=segment_ids,
        export_types=export_types or ["events", "individuals"],
        export_format=export_format,
        start_date=start_date,
        end_date=end_date,
        window=window,
        export_delay=export_delay,
        lookback=lookback,
        download_dir=download_dir,
        fields=fields,
        timezone=timezone,
        segment_time_range=segment_time_range,
    )
    allow_columns_to_differ_between_windows()
    add_load_id_to_arrow_rows()
    if max_concurrent_exports < 1:
        raise ConfigurationError(f"max_concurrent_exports={max_concurrent_exports} must be at least 1")
    client = FullStoryClient(
        api_key,
        settings.base_url,
        timeout=request_timeout,
        max_attempts=max_attempts,
        backoff_factor=backoff_factor,
        max_retry_delay=max_retry_delay,
    )
    settings.download_dir.mkdir(parents=True, exist_ok=True)
    exporter = Exporter(
        client,
        download_session(request_timeout, max_attempts, backoff_factor),
        ExportOptions(
            dialect=settings.dialect,
            export_format=settings.export_format,
            download_dir=Path(tempfile.mkdtemp(prefix="run-", dir=settings.download_dir)),
            poll_interval=poll_interval,
            poll_max_interval=poll_max_interval,
            poll_timeout=poll_timeout,
            download_attempts=download_attempts,
            extra_body=settings.request_extras,
        ),
    )
    listener = report.update if report else None
    run = _Run(
        settings=settings,
        scheduler=ExportScheduler(exporter, max_concurrent_exports, max_creates_per_minute, listener),
        selection=_SegmentSelection(client, settings),
        report=report,
        backfill=backfill,
        journal_dir=Path(operations_journal_dir) if operations_journal_dir else None,
    )
    resources: list[DltResource] = [segments(client, settings)]
    for export_type in settings.export_types:
        resource = dlt.resource(
            _export_windows, name=export_type, parallelized=True, **TABLE_HINTS[export_type]
        )
        resources.append(resource(export_type, run))
    if batch_import_job_ids:
        resources += batch_import_resources(
            client,
            batch_import_job_ids,
            include_schema=batch_import_include_schema,
            wait_timeout=batch_import_wait_timeout,
            poll_interval=poll_interval,
            poll_max_interval=poll_max_interval,
        )
    return resources


def segments(client: FullStoryClient, settings: Settings) -> DltResource:
    @dlt.resource(name="segments", write_disposition="merge", primary_key="id")
    def segment_list() -> Iterator[list[dict[str, Any]]]:
        yield from client.segment_pages(settings.dialect.segments_cursor_param)

    return segment_list


class _SegmentSelection:
    """The segments to export: the configured ids (each checked to exist, so a typo fails
    before any export starts), or every segment the key can see. Resolved once per run."""

    def __init__(self, client: FullStoryClient, settings: Settings) -> None:
        self.client = client
        self.settings = settings
        self._ids: tuple[str, ...] | None = None
        self._lock = threading.Lock()  # the export resources ask at the same time

    def ids(self) -> tuple[str, ...]:
        with self._lock:
            return self._resolve()

    def _resolve(self) -> tuple[str, ...]:
        if self._ids is None:
            known = self._all()
            wanted = self.settings.segment_ids or known
            unknown = [s for s in wanted if s not in known]
            if unknown:
                raise ConfigurationError(
                    f"unknown segment id(s) {unknown}: this API key sees {len(known)} segments; "
                    "`fullstory-pipeline segments` lists them"
                )
            self._ids = wanted
        return self._ids

    def _all(self) -> tuple[str, ...]:
        pages = self.client.segment_pages(self.settings.dialect.segments_cursor_param)
        return tuple(str(segment["id"]) for page in pages for segment in page)


class _Run:
    def __init__(
        self,
        settings: Settings,
        scheduler: ExportScheduler,
        selection: _SegmentSelection,
        report: RunReport | None,
        backfill: Backfill | None,
        journal_dir: Path | None,
    ) -> None:
        self.settings = settings
        self.journal_dir = journal_dir
        self.scheduler = scheduler
        self.selection = selection
        self.report = report
        self.backfill = backfill
        self.backfill_id = backfill.id(settings.window) if backfill else None
        self.newest = newest_window_end(
            datetime.now(UTC), settings.export_delay, settings.window, settings.end_date
        )

    def open_journal(self) -> OperationJournal:
        """In the working dir of the pipeline that runs us (resolved at extract time)."""
        directory = self.journal_dir or Path(dlt.current.pipeline().working_dir)
        request = {
            "base_url": self.settings.base_url,
            "api_flavor": self.settings.dialect.name,
            "format": self.settings.export_format,
            **self.settings.request_extras,
        }
        return OperationJournal(directory, json.dumps(request, sort_keys=True))


def _export_windows(export_type: str, run: _Run) -> Iterator[Any]:
    run.scheduler.use_journal(run.open_journal())
    plan = WindowPlan(
        export_type,
        dlt.current.resource_state(),
        run.settings,
        run.selection.ids(),
        run.newest,
        run.backfill,
    )
    for finished in run.scheduler.run(plan.jobs):
        job, kind = finished.job, plan.kind(finished.job)
        if finished.error is not None:
            if run.report is None:
                raise finished.error
            logger.error("%s", finished.error)
            run.report.add(
                WindowOutcome(job, "failed", kind=kind, seconds=finished.seconds, error=str(finished.error))
            )
            yield _record(finished, run, "Failed", kind)
            continue
        rows = yield from _load_window(finished, run)
        delta = plan.finished(job, rows)
        run.scheduler.forget(job)  # extracted: a later run must not resume it
        logger.info(
            "extracted %s (%s): %d rows%s",
            job,
            kind,
            rows,
            "" if delta is None else f", {delta:+d} since last load",
        )
        if run.report is not None:
            run.report.add(
                WindowOutcome(
                    job,
                    "loaded",
                    rows,
                    finished.export.bytes_downloaded,
                    finished.seconds,
                    kind=kind,
                    rows_delta=delta,
                )
            )
        yield _record(finished, run, "Completed", kind, rows, delta)


def _load_window(finished: Finished, run: _Run) -> Iterator[Any]:
    """Yield the rows of one downloaded window as typed Arrow batches; returns the row count."""
    export, job = finished.export, finished.job
    rows = 0
    try:
        if export.empty:
            return 0
        constants = {
            "segment_id": job.segment_id,
            "window_start": job.window.start,
            "window_end": job.window.end,
        }
        batches = read_export(
            export.path,
            export.export_format,
            constants,
            what=str(job),
            required=REQUIRED_FIELDS[job.export_type],
        )
        for batch in batches:
            rows += batch.num_rows
            if run.report is not None:
                run.report.update(job, "Loading", rows=rows)
            yield mark_batch(job.export_type, batch)
    finally:
        export.path.unlink(missing_ok=True)
    return rows


def _record(
    finished: Finished, run: _Run, status: str, kind: str, rows: int | None = None, delta: int | None = None
) -> Any:
    return run_record(
        finished.job,
        status,
        kind=kind,
        rows_delta=delta,
        operation_id=finished.operation_id,
        seconds=finished.seconds,
        rows=rows,
        bytes_downloaded=finished.export.bytes_downloaded if finished.export else None,
        error=str(finished.error) if finished.error else None,
        backfill_id=run.backfill_id,
    )
