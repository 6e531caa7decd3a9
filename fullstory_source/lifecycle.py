"""One window's export, top to bottom: resume-or-create -> wait -> link -> download -> read -> outcome.

`WindowExport.fetch()` runs in a pool thread (scheduler.py) and does everything FullStory does:
it resumes the operation an interrupted run left in the journal, or creates a new one (paced by
the token bucket), polls it to COMPLETED, and downloads the file (a fresh link per attempt).
`WindowExport.rows()` then runs in the dlt resource: it reads the file into typed Arrow batches
and deletes it. `outcome()` is what the run reports. Every step tells the event sink.

Production and the tests run exactly this path.
"""

from __future__ import annotations

import errno
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from .config import Polling
from .errors import (
    DownloadError,
    ExportFileGoneError,
    ExportParseError,
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
from .read_ahead import batches_of, read_ahead
from .registry import EXPORT_TYPES
from .scheduler import TokenBucket
from .stopping import StoppedError, StopSignal

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
    extract_id: str = ""  # names this run's extract in the journal (journal.mark_extracted)
    stop: StopSignal = field(default_factory=StopSignal)  # Ctrl-C / SIGTERM (stopping.py)
    # set: each file is read into Arrow in the pool thread (`_read_ahead`), at most
    # `read_slots` DuckDB passes at a time (a read, or the key scan beside one: read_ahead.py),
    # each holding a DuckDB connection and a batch in memory
    read: Reader | None = None
    read_slots: threading.Semaphore = field(default_factory=lambda: threading.BoundedSemaphore(2))


class WindowExport:
    def __init__(self, job: ExportJob, services: ExportServices, load_id: str = "") -> None:
        """`load_id`: the load package the rows go to (every row carries it as `_dlt_load_id`)."""
        self.job = job
        self.load_id = load_id
        self.s = services
        self.operation_id: str | None = None
        self.download: DownloadedExport | None = None
        self.error: FullStoryError | None = None
        self.seconds = 0.0
        self.rows_read = 0
        self.parsed: Path | None = None  # the rows read ahead, as an Arrow IPC stream file
        self.parsed_columns: list[str] = []  # its columns, in the order to read them back

    # -- in a pool thread: everything FullStory does --------------------------------------------
    def fetch(self) -> WindowExport:
        """Never raises: a failure is kept in `error`, for the error policy to decide."""
        started = time.monotonic()
        try:
            self._emit("Starting")
            operation = self._resume() or self._create_and_wait()
            self._emit("Downloading", percent=100.0)
            self.download = self._download_or_export_again(operation)
            if self.s.read is not None:
                self._read_ahead(self.s.read)
        except FullStoryError as error:
            self.error = error
        except Exception as error:  # a bug or an unexpected library error: report it with the job
            self.error = FullStoryError(self._unexpected(error))
            self.error.__cause__ = error
        self.seconds = time.monotonic() - started
        return self

    def _unexpected(self, error: Exception) -> str:
        if isinstance(error, OSError) and error.errno == errno.ENOSPC:
            return (
                f"export of {self.job}: the disk is full ({error.filename or 'download directory'}): "
                "free space, or set download_dir (SOURCES__FULLSTORY__DOWNLOAD_DIR) to a larger disk, "
                "and run again; the window is held until then"
            )
        return f"export of {self.job} failed unexpectedly: {error!r}"

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
        self.s.stop.check()  # no new export once a stop is requested
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
        deadline = time.monotonic() + polling.timeout
        waits = poll_waits(polling.interval, polling.max_interval, deadline, self.s.stop.sleep)
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

    def _download_or_export_again(self, operation: dict[str, Any]) -> DownloadedExport:
        """A COMPLETED operation whose file storage no longer has (404/410: results expire,
        or a resumed operation outlived its file) is exported again, once."""
        try:
            return self._download(operation)
        except ExportFileGoneError as gone:
            logger.warning("%s; exporting it again", gone)
            self.s.journal.forget(self.job)
            return self._download(self._create_and_wait())

    def _download(self, operation: dict[str, Any]) -> DownloadedExport:
        """On an expired link, a broken connection or a damaged gzip, start again from the
        beginning with a fresh link."""
        assert self.operation_id is not None
        attempts, problems = self.s.download_attempts, []
        for attempt in range(1, attempts + 1):
            if attempt > 1:
                operation = self.s.api.operation(self.job, self.operation_id)
            try:
                url = self.s.api.link(self.job, operation)
                export = self.s.api.fetch(self.job, self.operation_id, url, on_bytes=self._downloaded)
            except ExportFileGoneError:
                raise
            except RetryableDownloadError as problem:
                problems.append(str(problem))
                logger.warning("download of %s, attempt %d/%d: %s", self.job, attempt, attempts, problem)
                continue
            self._emit("Downloading", bytes_downloaded=export.bytes_downloaded)
            return export
        self.s.journal.forget(self.job)  # its file keeps failing: the next run exports again
        raise DownloadError(
            f"Could not download the export for {self.job} (operation {self.operation_id}) after "
            f"{attempts} attempts: {'; '.join(problems)}. Nothing was loaded for this window and "
            "its cursor did not move; run again."
        )

    def _downloaded(self, received: int) -> None:
        """Bytes so far, for progress displays (called per received chunk)."""
        self._emit("Downloading", bytes_downloaded=received)

    def _read_ahead(self, read: Reader) -> None:
        """Read the whole file into typed Arrow batches here, before any of its rows reach dlt,
        and keep them in an Arrow IPC file beside it. A file that cannot be read (truncated
        JSON, an error page, a value that does not fit its type, two fields that become one
        column) then fails this window only, like a failed export: recorded, its cursor held,
        the other windows loaded. Its operation is forgotten: the next run exports it again
        instead of resuming the same unreadable file for ever."""
        export = self.download
        assert export is not None
        if export.empty:
            return
        parsed = export.path.with_name(export.path.name + ".arrow")
        try:
            with self.s.read_slots:
                columns = read_ahead(
                    read,
                    export.path,
                    export.export_format,
                    self._constants(),
                    parsed,
                    what=str(self.job),
                    required=EXPORT_TYPES[self.job.export_type].required_fields,
                    each_batch=self.s.stop.check,
                    spare=self.s.read_slots,
                )
            self.parsed, self.parsed_columns = (parsed, columns) if columns else (None, [])
        except BaseException as error:
            parsed.unlink(missing_ok=True)
            if not isinstance(error, StoppedError):
                self.s.journal.forget(self.job)
            if isinstance(error, FullStoryError) or not isinstance(error, Exception):
                raise
            raise ExportParseError(f"Could not read the export of {self.job}: {error}") from error
        finally:
            export.path.unlink(missing_ok=True)

    def _constants(self) -> dict[str, Any]:
        return {
            "segment_id": self.job.segment_id,
            "window_start": self.job.window.start,
            "window_end": self.job.window.end,
            "_dlt_load_id": self.load_id,
        }

    # -- in the dlt resource: the rows -------------------------------------------------------
    def rows(self, read: Reader, load_id: str) -> Iterator[Any]:
        """The window's rows as typed Arrow batches, ready for dlt; deletes the file after.
        Every row carries `_dlt_load_id` (dlt adds it only to rows it normalizes itself)."""
        export = self.download
        assert export is not None
        export_type = EXPORT_TYPES[self.job.export_type]
        self.load_id = self.load_id or load_id
        try:
            if self.parsed is not None:
                batches: Iterator[pa.RecordBatch] = batches_of(self.parsed, self.parsed_columns)
            elif export.empty or self.s.read is not None:
                return  # empty, or read ahead and nothing in it
            else:
                batches = read(
                    export.path,
                    export.export_format,
                    self._constants(),
                    what=str(self.job),
                    required=export_type.required_fields,
                )
            for batch in batches:
                first_row, self.rows_read = self.rows_read, self.rows_read + batch.num_rows
                self._emit("Loading", rows=self.rows_read)
                yield export_type.prepare_batch(batch, first_row)
        except ExportParseError:
            self.s.journal.forget(self.job)  # a file that cannot be read: export again next run
            raise
        finally:
            export.path.unlink(missing_ok=True)
            if self.parsed is not None:
                self.parsed.unlink(missing_ok=True)

    def extracted(self) -> None:
        """Its rows are in this extract. Once the extract is committed a later run must not
        resume its operation (journal.forget_committed); until then, it must."""
        self.s.journal.mark_extracted(self.job, self.s.extract_id)

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
