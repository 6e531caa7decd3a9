"""FullStory segment exports as a dlt source.

Resources:
- `segments`: every segment the key can see, merged on `id`.
- `events` / `individuals`: one FullStory export per (segment, window). Each window is loaded by
  replacing that whole window for that segment (merge, delete-insert on segment + window start):
  events have no unique key, so replacing whole windows is what keeps re-loads exact.
  Individuals are merged on (segment_id, indv_id).

The cursor of each (segment, export type) is the end of the last window that was extracted, kept
in dlt resource state: it is committed together with the data of that window in one load
package, so it never runs ahead of what the destination holds.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dlt
import pyarrow as pa
from dlt.sources import DltResource

from .client import FullStoryClient, download_session
from .errors import (
    ConfigurationError,
    DownloadError,
    ExportFailedError,
    FullStoryAPIError,
    FullStoryError,
    UnexpectedResponseError,
)
from .exports import Exporter, ExportJob, ExportOptions
from .readers import read_export
from .report import RunReport, WindowOutcome
from .settings import Settings, build_settings
from .windows import Window, align_up, format_time, grid_windows, newest_window_end, parse_time

__all__ = [
    "ConfigurationError",
    "DownloadError",
    "ExportFailedError",
    "FullStoryAPIError",
    "FullStoryError",
    "RunReport",
    "UnexpectedResponseError",
    "fullstory_source",
]

logger = logging.getLogger(__name__)

# fields that key the rows of a table (merge keys of individuals)
REQUIRED_FIELDS = {"events": (), "individuals": ("IndvId",)}
WINDOW_REPLACE = {"disposition": "merge", "strategy": "delete-insert"}


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
    poll_interval: float = 1.0,
    poll_max_interval: float = 30.0,
    poll_timeout: float = 3 * 3600.0,
    request_timeout: float = 60.0,
    max_attempts: int = 5,
    backoff_factor: float = 1.0,
    download_attempts: int = 3,
    download_dir: str | None = None,
    fields: list[str] | None = None,
    timezone: str | None = None,
    segment_time_range: dict[str, str] | None = None,
    report: RunReport | None = None,
) -> Sequence[DltResource]:
    """FullStory segments and segment exports. Every argument is also a config value under
    [sources.fullstory] (see .dlt/config.toml for what each one does and its default)."""
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
        download_dir=download_dir,
        fields=fields,
        timezone=timezone,
        segment_time_range=segment_time_range,
    )
    client = FullStoryClient(
        api_key,
        settings.base_url,
        timeout=request_timeout,
        max_attempts=max_attempts,
        backoff_factor=backoff_factor,
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
    selected = _SegmentSelection(client, settings)
    resources: list[DltResource] = [segments(client, settings)]
    if "events" in settings.export_types:
        resources.append(
            dlt.resource(
                _export_windows,
                name="events",
                write_disposition=WINDOW_REPLACE,
                merge_key=["segment_id", "window_start"],
            )("events", exporter, selected, settings, report)
        )
    if "individuals" in settings.export_types:
        resources.append(
            dlt.resource(
                _export_windows,
                name="individuals",
                write_disposition=WINDOW_REPLACE,
                primary_key=["segment_id", "indv_id"],
                # an individual seen in several windows of one run keeps its newest row
                columns={"window_end": {"dedup_sort": "desc"}},
            )("individuals", exporter, selected, settings, report)
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

    def ids(self) -> tuple[str, ...]:
        if self._ids is None:
            self._ids = self.settings.segment_ids or self._all()
            if self.settings.segment_ids:
                known = set(self._all())
                unknown = [s for s in self._ids if s not in known]
                if unknown:
                    raise ConfigurationError(
                        f"unknown segment id(s) {unknown}: this API key sees {len(known)} segments; "
                        "`fullstory-pipeline segments` lists them"
                    )
        return self._ids

    def _all(self) -> tuple[str, ...]:
        pages = self.client.segment_pages(self.settings.dialect.segments_cursor_param)
        return tuple(str(segment["id"]) for page in pages for segment in page)


def _export_windows(
    export_type: str,
    exporter: Exporter,
    selection: _SegmentSelection,
    settings: Settings,
    report: RunReport | None,
) -> Iterator[pa.RecordBatch]:
    cursors: dict[str, str] = dlt.current.resource_state().setdefault("cursors", {})
    newest = newest_window_end(datetime.now(UTC), settings.export_delay, settings.window, settings.end_date)
    for segment_id in selection.ids():
        for window in pending_windows(cursors.get(segment_id), settings, newest):
            job = ExportJob(segment_id, export_type, window)
            started = time.monotonic()
            try:
                export = exporter.export(job)
            except FullStoryError as error:
                if report is None:
                    raise
                report.add(WindowOutcome(job, "failed", error=str(error)))
                logger.error("%s", error)
                break  # later windows of this segment wait until this one loads
            rows = 0
            try:
                if not export.empty:
                    constants = {
                        "segment_id": segment_id,
                        "window_start": window.start,
                        "window_end": window.end,
                    }
                    batches = read_export(
                        export.path,
                        export.export_format,
                        constants,
                        what=str(job),
                        required=REQUIRED_FIELDS[export_type],
                    )
                    for batch in batches:
                        rows += batch.num_rows
                        yield batch
            finally:
                export.path.unlink(missing_ok=True)
            cursors[segment_id] = format_time(window.end)
            logger.info("extracted %s: %d rows", job, rows)
            if report is not None:
                report.add(
                    WindowOutcome(job, "loaded", rows, export.bytes_downloaded, time.monotonic() - started)
                )


def pending_windows(cursor: str | None, settings: Settings, newest: datetime) -> Iterator[Window]:
    """Windows after the cursor (or from `start_date` when there is none) up to `newest`.

    A cursor off the current grid (the `window` setting changed since the last run) first gets
    a bridging window up to the next grid line, so nothing is skipped or exported twice."""
    if cursor is None:
        yield from grid_windows(settings.start_date, newest, settings.window)
        return
    start = parse_time(cursor, "cursor")
    grid_start = align_up(start, settings.window)
    if start < grid_start <= newest:
        yield Window(start, grid_start)
    yield from grid_windows(grid_start, newest, settings.window)
