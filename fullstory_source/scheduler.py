"""Runs many exports at once.

FullStory exports spend most of their time waiting on the server, so all selected
(segment, type, window) exports are created and polled concurrently, up to
`max_concurrent_exports` at a time and no faster than `max_creates_per_minute`; each finished
download is handed to its resource as it completes, and the resource parses and loads it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass

from .errors import FullStoryError
from .exports import DownloadedExport, Exporter, ExportJob

Listener = Callable[[ExportJob, str, "float | None"], None]


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
        self.listener = listener or (lambda job, state, pct: None)
        self._pool = ThreadPoolExecutor(max_workers=max(1, max_concurrent), thread_name_prefix="fullstory")
        self._rate = CreateRateLimit(creates_per_minute)
        self._closed = threading.Event()

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

    def _export(self, job: ExportJob) -> Finished:
        started = time.monotonic()
        finished = Finished(job)
        try:
            if self._closed.is_set():
                raise FullStoryError(f"export of {job} was not started: the run is shutting down")
            self.listener(job, "Starting", None)
            self._rate.wait()
            finished.operation_id = self.exporter.create(job)
            self.listener(job, "Running", 0.0)
            operation = self.exporter.wait(
                job, finished.operation_id, lambda state, pct: self.listener(job, "Running", pct)
            )
            self.listener(job, "Downloading", 100.0)
            finished.export = self.exporter.download(job, finished.operation_id, operation)
        except FullStoryError as error:
            finished.error = error
        except Exception as error:  # a bug or an unexpected library error: report it with the job
            finished.error = FullStoryError(f"export of {job} failed unexpectedly: {error!r}")
            finished.error.__cause__ = error
        finished.seconds = time.monotonic() - started
        return finished
