"""What one extract of the source shares, created when its first resource starts extracting.

Building `fullstory_source(...)` only checks the configuration: no thread, file, clock reading
or connection. `ExportRun.start()` creates the rest once per extract, inside the pipeline that
runs the source: the API client, the journal in that pipeline's working dir, the export pool
and token bucket, the download directory, the run log for `export_runs`, and the newest window
end (from the clock at that moment).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dlt

from .client import FullStoryClient, download_session
from .config import SourceConfig
from .download_dirs import new_run_dir
from .errors import ConfigurationError
from .events import EventSink
from .exports import ExportApi
from .journal import OperationJournal
from .lifecycle import ExportServices
from .plans import Backfill
from .readers import read_export
from .runs import RunLog
from .scheduler import ExportPool, TokenBucket
from .stopping import StopSignal
from .windows import newest_window_end


@dataclass
class Started:
    client: FullStoryClient
    services: ExportServices
    pool: ExportPool
    run_log: RunLog
    newest: datetime
    download_dir: Path
    segment_ids: tuple[str, ...] | None = None


class ExportRun:
    def __init__(
        self, config: SourceConfig, api_key: str, events: EventSink, backfill: Backfill | None
    ) -> None:
        self.config = config
        self.api_key = api_key
        self.events = events
        self.backfill = backfill
        self.backfill_id = backfill.id(config.windows.window) if backfill else None
        self._lock = threading.Lock()  # the resources start at the same time
        self._segments_lock = threading.Lock()
        self._configured_lock = threading.Lock()
        self._configured: list[dict[str, Any]] | None = None
        self._started: Started | None = None
        self._producers = 0

    def start(self) -> Started:
        with self._lock:
            if self._started is None:
                self._started = self._start()
            return self._started

    def segment_ids(self) -> tuple[str, ...]:
        """The configured segments (each checked to exist, so a typo fails before any export
        starts), or every segment the key can see. Resolved once per extract."""
        started = self.start()
        with self._segments_lock:
            if started.segment_ids is None:
                wanted = self.config.exports.segment_ids
                if wanted:
                    self._configured_segments()
                else:
                    wanted = tuple(str(s["id"]) for page in self.segment_pages() for s in page)
                started.segment_ids = wanted
            return started.segment_ids

    def segment_pages(self) -> Iterator[list[dict[str, Any]]]:
        """The `segments` table: the configured segments, else every segment the key sees."""
        if self.config.exports.segment_ids:
            yield self._configured_segments()
            return
        yield from self.start().client.segment_pages(self.config.connection.dialect.segments_cursor_param)

    def _configured_segments(self) -> list[dict[str, Any]]:
        """Each configured segment with `GET /segments/v1/{id}`: paging every segment of a large
        org runs into 429 (FullStory's own CLI has `--skip` for that). Fetched once."""
        with self._configured_lock:
            if self._configured is None:
                client = self.start().client
                found = {
                    segment_id: client.get_segment(segment_id)
                    for segment_id in self.config.exports.segment_ids or ()
                }
                unknown = [segment_id for segment_id, segment in found.items() if segment is None]
                if unknown:
                    raise ConfigurationError(
                        f"unknown segment id(s) {unknown}: FullStory answered 404 for them; "
                        "`fullstory-pipeline segments` lists the segments this API key can see"
                    )
                self._configured = [segment for segment in found.values() if segment is not None]
            return self._configured

    def lazy_client(self) -> Any:
        """The API client, for resources built now and extracted later (batch imports)."""
        run = self

        class _Lazy:
            def __getattr__(self, name: str) -> Any:
                return getattr(run.start().client, name)

        return _Lazy()

    def producer_done(self) -> None:
        """An export resource finished: the last one closes the run log and removes the files."""
        started = self.start()
        started.run_log.close_one()
        with self._lock:
            self._producers -= 1
            last = self._producers == 0
        if last:
            shutil.rmtree(started.download_dir, ignore_errors=True)

    def _start(self) -> Started:
        c = self.config
        selected = dlt.current.source().selected_resources
        self._producers = sum(1 for name in c.exports.export_types if name in selected)
        client = FullStoryClient(
            self.api_key,
            c.connection.base_url,
            timeout=c.connection.request_timeout,
            max_attempts=c.retries.max_attempts,
            backoff_factor=c.retries.backoff_factor,
            max_retry_delay=c.retries.max_retry_delay,
        )
        base = c.exports.download_dir or Path(tempfile.gettempdir()) / "fullstory-dlt"
        download_dir = new_run_dir(base)  # created by the first download
        stop = StopSignal()
        api = ExportApi(
            client,
            download_session(
                c.connection.request_timeout,
                c.retries.max_attempts,
                c.retries.backoff_factor,
                c.retries.max_retry_delay,
            ),
            c.connection.dialect,
            c.exports.export_format,
            download_dir,
            c.exports.create_fields,
            stop,
        )
        services = ExportServices(
            api,
            self._journal(),
            self.events,
            TokenBucket(c.exports.creates_per_minute, c.exports.create_burst, sleep=stop.sleep),
            c.polling,
            c.retries.download_attempts,
            extract_id=uuid.uuid4().hex[:12],
            stop=stop,
            read=read_export,
        )
        newest = newest_window_end(
            datetime.now(UTC), c.windows.export_delay, c.windows.window, c.windows.end_date
        )
        return Started(
            client,
            services,
            ExportPool(c.exports.max_concurrent),
            RunLog(self._producers),
            newest,
            download_dir,
        )

    def _journal(self) -> OperationJournal:
        """In the working dir of the pipeline that runs us, unless configured elsewhere."""
        directory = self.config.exports.journal_dir or Path(dlt.current.pipeline().working_dir)
        request = {
            "base_url": self.config.connection.base_url,
            "api_flavor": self.config.connection.dialect.name,
            "format": self.config.exports.export_format,
            **self.config.exports.create_fields.identity(),
        }
        return OperationJournal(directory, json.dumps(request, sort_keys=True))
