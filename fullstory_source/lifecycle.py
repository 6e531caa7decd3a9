"""One window's export, top to bottom: resume-or-create -> wait -> link -> download -> read -> outcome.

`WindowExport.fetch()` runs in a pool thread (scheduler.py) and does everything FullStory does:
it resumes the operation an interrupted run left in the journal, or creates a new one (paced by
the token bucket), polls it to COMPLETED, and downloads the file (a fresh link per attempt).
`WindowExport.rows()` then runs in the dlt resource: it reads the file into typed Arrow batches
and deletes it. `outcome()` is what the run reports. Every step tells the event sink.

Production and the tests run exactly this path.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from .config import Polling
from .errors import (
    DownloadError,
    FullStoryAPIError,
    FullStoryError,
    OperationFailedError,
    OperationTimeoutError,
    RetryableDownloadError,
)
from .events import EventSink, ExportEvent, WindowOutcome
from .exports import DownloadedExport, ExportApi, ExportJob
from .journal import OperationJournal
from .polling import poll_waits
from .registry import EXPORT_TYPES
from .scheduler import TokenBucket

logger = logging.getLogger(__name__)

Reader = Callable[..., Iterator[Any]]  # readers.read_export


@dataclass
class ExportServices:
    """What every window of a run shares."""

    api: ExportApi
    journal: OperationJournal
    events: EventSink
    creates: TokenBucket
    polling: Polling
    download_attempts: int


class WindowExport:
    def __init__(self, job: ExportJob, services: ExportServices) -> None:
        self.job = job
        self.s = services
        self.operation_id: str | None = None
        self.download: DownloadedExport | None = None
        self.error: FullStoryError | None = None
        self.seconds = 0.0
        self.rows_read = 0

    # -- in a pool thread: everything FullStory does --------------------------------------------
    def fetch(self) -> WindowExport:
        """Never raises: a failure is kept in `error`, for the error policy to decide."""
        started = time.monotonic()
        try:
            self._emit("Starting")
            operation = self._resume() or self._create_and_wait()
            self._emit("Downloading", percent=100.0)
            self.download = self._download(operation)
        except FullStoryError as error:
            self.error = error
        except Exception as error:  # a bug or an unexpected library error: report it with the job
            self.error = FullStoryError(f"export of {self.job} failed unexpectedly: {error!r}")
            self.error.__cause__ = error
        self.seconds = time.monotonic() - started
        return self

    def _resume(self) -> dict[str, Any] | None:
        """The operation an interrupted run created for this window, if it can still be used.
        One that is gone (404) or FAILED is forgotten, and a new one is created (once)."""
        operation_id = self.s.journal.get(self.job)
        if not operation_id:
            return None
        logger.info("resuming %s: operation %s from an interrupted run", self.job, operation_id)
        self.operation_id = operation_id
        try:
            return self._wait(operation_id)
        except (OperationFailedError, FullStoryAPIError) as error:
            if isinstance(error, FullStoryAPIError) and error.status != 404:
                raise
            logger.warning(
                "operation %s of %s cannot be resumed (%s); creating a new export",
                operation_id,
                self.job,
                error,
            )
            self.s.journal.forget(self.job)
            return None

    def _create_and_wait(self) -> dict[str, Any]:
        self.s.creates.take()
        self.operation_id = self.s.api.create(self.job)
        self.s.journal.record(self.job, self.operation_id)
        try:
            return self._wait(self.operation_id)
        except OperationFailedError:
            self.s.journal.forget(self.job)  # the next run creates a new one
            raise

    def _wait(self, operation_id: str) -> dict[str, Any]:
        """Poll until COMPLETED; FAILED and running out of `poll_timeout` raise."""
        polling = self.s.polling
        waits = poll_waits(polling.interval, polling.max_interval, time.monotonic() + polling.timeout)
        while True:
            operation = self.s.api.operation(self.job, operation_id)
            state = operation["state"]
            if state == "COMPLETED":
                return operation
            if state == "FAILED":
                details = operation.get("errorDetails") or "no errorDetails given"
                raise OperationFailedError(
                    f"FullStory export FAILED for {self.job} (operation {operation_id}): {details}. "
                    "Its cursor did not move; the next run retries this window."
                )
            self._emit("Running", percent=float(operation.get("estimatePctComplete") or 0))
            if next(waits, None) is None:
                raise OperationTimeoutError(
                    f"Export for {self.job} (operation {operation_id}) is still {state} after "
                    f"{polling.timeout:g} s (poll_timeout). Its cursor did not move; the "
                    "next run resumes this operation."
                )

    def _download(self, operation: dict[str, Any]) -> DownloadedExport:
        """On an expired link, a broken connection or a damaged gzip, start again from the
        beginning with a fresh link."""
        assert self.operation_id is not None
        attempts, problems = self.s.download_attempts, []
        for attempt in range(1, attempts + 1):
            if attempt > 1:
                operation = self.s.api.operation(self.job, self.operation_id)
            try:
                export = self.s.api.fetch(self.job, self.operation_id, self.s.api.link(self.job, operation))
            except RetryableDownloadError as problem:
                problems.append(str(problem))
                logger.warning("download of %s, attempt %d/%d: %s", self.job, attempt, attempts, problem)
                continue
            self._emit("Downloading", bytes_downloaded=export.bytes_downloaded)
            return export
        raise DownloadError(
            f"Could not download the export for {self.job} (operation {self.operation_id}) after "
            f"{attempts} attempts: {'; '.join(problems)}. Nothing was loaded for this window and "
            "its cursor did not move; run again."
        )

    # -- in the dlt resource: the rows -------------------------------------------------------
    def rows(self, read: Reader, load_id: str) -> Iterator[Any]:
        """The window's rows as typed Arrow batches, ready for dlt; deletes the file after.
        Every row carries `_dlt_load_id` (dlt adds it only to rows it normalizes itself)."""
        export = self.download
        assert export is not None
        export_type = EXPORT_TYPES[self.job.export_type]
        try:
            if export.empty:
                return
            constants = {
                "segment_id": self.job.segment_id,
                "window_start": self.job.window.start,
                "window_end": self.job.window.end,
                "_dlt_load_id": load_id,
            }
            batches = read(
                export.path,
                export.export_format,
                constants,
                what=str(self.job),
                required=export_type.required_fields,
            )
            for batch in batches:
                self.rows_read += batch.num_rows
                self._emit("Loading", rows=self.rows_read)
                yield export_type.prepare_batch(batch)
        finally:
            export.path.unlink(missing_ok=True)

    def extracted(self) -> None:
        """Its rows are in the load package: a later run must not resume its operation."""
        self.s.journal.forget(self.job)

    # -- the outcome ---------------------------------------------------------------------------
    def outcome(self, kind: str, rows_delta: int | None = None) -> WindowOutcome:
        if self.error is not None:
            outcome = WindowOutcome(
                self.job, "failed", kind=kind, seconds=self.seconds, error=str(self.error)
            )
        else:
            outcome = WindowOutcome(
                self.job,
                "loaded",
                self.rows_read,
                self.bytes_downloaded,
                self.seconds,
                kind=kind,
                rows_delta=rows_delta,
            )
        state = "Completed" if outcome.status == "loaded" else "Failed"
        self._emit(state, rows=outcome.rows, outcome=outcome)
        return outcome

    @property
    def bytes_downloaded(self) -> int:
        return self.download.bytes_downloaded if self.download else 0

    def _emit(self, state: str, **details: Any) -> None:
        self.s.events(ExportEvent(self.job, state, **details))


def export_window(job: ExportJob, services: ExportServices) -> DownloadedExport:
    """One window through `WindowExport.fetch` outside a run (tests, benchmarks): the file, or
    the error the window would have been recorded with."""
    export = WindowExport(job, services).fetch()
    if export.error is not None:
        raise export.error
    assert export.download is not None
    return export.download
