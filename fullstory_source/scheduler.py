"""Runs many exports at once.

FullStory exports spend most of their time waiting on the server, so all selected
(segment, type, window) exports are created and polled concurrently, up to
`max_concurrent_exports` at a time and no faster than `max_creates_per_minute`; each finished
download is handed to its resource as it completes, and the resource parses and loads it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any

from .errors import FullStoryAPIError, FullStoryError, OperationFailedError
from .exports import DownloadedExport, Exporter, ExportJob
from .journal import OperationJournal

logger = logging.getLogger(__name__)

# (job, state, percent, *, bytes_downloaded=None): RunReport.update
Listener = Callable[..., None]


@dataclass
class Finished:
    job: ExportJob
    export: DownloadedExport | None = None
    error: FullStoryError | None = None
    operation_id: str | None = None
    seconds: float = 0.0


class CreateRateLimit:
    """Spaces export creations evenly so a burst of windows does not trip FullStory's limits."""

    def __init__(self, per_minute: float | None) -> None:
        self._interval = 60.0 / per_minute if per_minute else 0.0
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        if not self._interval:
            return
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next)
            self._next = slot + self._interval
        time.sleep(max(0.0, slot - now))


class ExportScheduler:
    def __init__(
        self,
        exporter: Exporter,
        max_concurrent: int,
        creates_per_minute: float | None = None,
        listener: Listener | None = None,
    ) -> None:
        self.exporter = exporter
        self.listener = listener or (lambda job, state, pct, **progress: None)
        self._pool = ThreadPoolExecutor(max_workers=max(1, max_concurrent), thread_name_prefix="fullstory")
        self._rate = CreateRateLimit(creates_per_minute)
        self._closed = threading.Event()
        self.journal: OperationJournal | None = None
        self._journal_lock = threading.Lock()

    def run(self, jobs: Sequence[ExportJob]) -> Iterator[Finished]:
        """Start every job now; yield each as it finishes, in completion order. Closing the
        iterator early (an error downstream) cancels the jobs that have not started."""
        futures: list[Future[Finished]] = [self._pool.submit(self._export, job) for job in jobs]
        try:
            for future in as_completed(futures):
                yield future.result()
        finally:
            for future in futures:
                future.cancel()

    def close(self) -> None:
        self._closed.set()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def use_journal(self, journal: OperationJournal) -> None:
        with self._journal_lock:
            if self.journal is None:
                self.journal = journal

    def forget(self, job: ExportJob) -> None:
        if self.journal:
            self.journal.forget(job)

    def _export(self, job: ExportJob) -> Finished:
        started = time.monotonic()
        finished = Finished(job)
        try:
            if self._closed.is_set():
                raise FullStoryError(f"export of {job} was not started: the run is shutting down")
            self.listener(job, "Starting", None)
            resumed = self._resume(job)
            if resumed:
                finished.operation_id, operation = resumed
            else:
                finished.operation_id, operation = self._create_and_wait(job)
            self.listener(job, "Downloading", 100.0)
            finished.export = self.exporter.download(
                job,
                finished.operation_id,
                operation,
                on_bytes=lambda received: self.listener(job, "Downloading", None, bytes_downloaded=received),
            )
        except FullStoryError as error:
            finished.error = error
        except Exception as error:  # a bug or an unexpected library error: report it with the job
            finished.error = FullStoryError(f"export of {job} failed unexpectedly: {error!r}")
            finished.error.__cause__ = error
        finished.seconds = time.monotonic() - started
        return finished

    def _progress(self, job: ExportJob) -> Callable[[str, float], None]:
        return lambda state, percent: self.listener(job, "Running", percent)

    def _create_and_wait(self, job: ExportJob) -> tuple[str, dict[str, Any]]:
        self._rate.wait()
        operation_id = self.exporter.create(job)
        if self.journal:
            self.journal.record(job, operation_id)
        self.listener(job, "Running", 0.0)
        try:
            return operation_id, self.exporter.wait(job, operation_id, self._progress(job))
        except OperationFailedError:
            self.forget(job)  # the next run creates a new one
            raise

    def _resume(self, job: ExportJob) -> tuple[str, dict[str, Any]] | None:
        """The operation an interrupted run created for this window, if it can still be used.
        One that is gone or FAILED is forgotten, and the caller creates a new one (once)."""
        operation_id = self.journal.get(job) if self.journal else None
        if not operation_id:
            return None
        logger.info("resuming %s: operation %s from an interrupted run", job, operation_id)
        self.listener(job, "Running", None)
        try:
            return operation_id, self.exporter.wait(job, operation_id, self._progress(job))
        except (OperationFailedError, FullStoryAPIError) as error:
            if isinstance(error, FullStoryAPIError) and error.status != 404:
                raise
            logger.warning(
                "operation %s of %s cannot be resumed (%s); creating a new export", operation_id, job, error
            )
            if self.journal:
                self.journal.forget(job)
            return None
