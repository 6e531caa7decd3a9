"""Progress of a run, for the person or the log that watches it.

On a terminal: a live display (rich) with one bar per running export (FullStory's
estimatePctComplete, then bytes downloaded, then rows loaded), redrawn in place, with log lines
printed above it. Elsewhere (CI logs): one line per window outcome, every failure in full; the
steps in between only with `-v` (DEBUG). The command prints the summary after either.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TextIO

from rich.console import Console, Group, RenderableType
from rich.filesize import decimal
from rich.live import Live
from rich.logging import RichHandler
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from fullstory_source.events import ExportEvent
from fullstory_source.exports import ExportJob
from fullstory_source.report import LiveState, RunReport

logger = logging.getLogger("fullstory_pipeline")

ACTIVE = ("Starting", "Running", "Downloading", "Loading")
SHOWN = 12  # running exports shown at once; the rest are counted
PLAIN_FORMAT = "%(asctime)s %(levelname)-7s %(message)s"


def make_console(stream: TextIO | None = None) -> Console:
    """The console both the live display and the log handler write to (one object, so that
    log lines print above the display): stderr, so that stdout keeps only the summary."""
    global _stderr_console
    if stream is not None:
        return Console(file=stream)
    if _stderr_console is None:
        _stderr_console = Console(stderr=True)  # follows sys.stderr as it is replaced
    return _stderr_console


_stderr_console: Console | None = None

# Every write to the console while the live display is on goes through this lock. rich positions
# the cursor for a print from the display's last height, read under its own lock but written out
# after it: a log line from a worker thread racing a redraw made the cursor climb past the display
# and erase log lines above it (seen under load, 5 of 8 outcome lines left).
_OUTPUT_LOCK = threading.RLock()


class _SerializedRichHandler(RichHandler):
    def emit(self, record: logging.LogRecord) -> None:
        with _OUTPUT_LOCK:
            super().emit(record)


def log_handler(console: Console, verbose: bool) -> logging.Handler:
    """On a terminal, log through rich so that lines print above the live display instead of
    through it; elsewhere plain timestamped lines. Without -v only the command's own lines
    and warnings/errors pass."""
    if console.is_terminal:
        handler: logging.Handler = _SerializedRichHandler(
            console=console, show_path=False, markup=False, rich_tracebacks=False, log_time_format="[%X]"
        )
        handler.setFormatter(logging.Formatter("%(message)s"))  # time and level are columns
    else:
        handler = logging.StreamHandler(console.file)
        handler.setFormatter(logging.Formatter(PLAIN_FORMAT))
    if not verbose:
        handler.addFilter(_quiet)
    return handler


def setup_logging(console: Console, verbose: bool) -> None:
    """Like logging.basicConfig, does nothing when the process already configured logging."""
    level = logging.DEBUG if verbose else logging.INFO
    logging.basicConfig(level=level, handlers=[log_handler(console, verbose)])


def _quiet(record: logging.LogRecord) -> bool:
    """The details of every export step are DEBUG material unless they are warnings."""
    return record.levelno >= logging.WARNING or record.name.startswith("fullstory_pipeline")


class ProgressDisplay:
    """An event sink (fullstory_source.events) that shows the live states the RunReport
    collects. Pass it after the report to `fan_out`; use it as a context manager around the run."""

    def __init__(
        self, report: RunReport, console: Console | None = None, interactive: bool | None = None
    ) -> None:
        self.report = report
        self.console = console or make_console()
        self.interactive = self.console.is_terminal if interactive is None else interactive
        self._logged: dict[ExportJob, tuple[str, float]] = {}
        self._live: Live | None = None
        self._stop_ticking = threading.Event()
        self._ticker: threading.Thread | None = None

    def __enter__(self) -> ProgressDisplay:
        if self.interactive:
            # transient: the outcome lines above it and the summary after it are what stays.
            # Our own ticker rather than rich's refresh thread, so that redraws take _OUTPUT_LOCK.
            self._live = Live(
                console=self.console, get_renderable=self.render, auto_refresh=False, transient=True
            )
            with _OUTPUT_LOCK:
                self._live.start(refresh=True)
            self._stop_ticking.clear()
            self._ticker = threading.Thread(target=self._tick, name="progress-display", daemon=True)
            self._ticker.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._ticker is not None:
            self._stop_ticking.set()
            self._ticker.join()
            self._ticker = None
        if self._live is not None:
            with _OUTPUT_LOCK:
                self._live.stop()
            self._live = None

    def _tick(self) -> None:
        while not self._stop_ticking.wait(0.25):
            self.refresh()

    def refresh(self) -> None:
        """Redraw now rather than at the next tick."""
        with _OUTPUT_LOCK:
            if self._live is not None:
                self._live.refresh()

    def __call__(self, event: ExportEvent) -> None:
        if event.outcome is not None:
            self._logged.pop(event.job, None)
            self._outcome(event)
            return
        job, live = event.job, self.report.live[event.job]
        # the steps between: at most one line per state, and progress every 30 s
        last_state, last_time = self._logged.get(job, ("", 0.0))
        now = time.monotonic()
        if live.state == last_state and now - last_time < 30:
            return
        self._logged[job] = (live.state, now)
        logger.debug("%s: %s%s", job, live.state, _detail(live))

    def _outcome(self, event: ExportEvent) -> None:
        outcome = event.outcome
        assert outcome is not None
        if outcome.status == "failed":
            logger.error("FAILED %s: %s", event.job, outcome.error)
            return
        late = f", {outcome.rows_delta:+,} since last load" if outcome.rows_delta else ""
        kind = f" ({outcome.kind})" if outcome.kind != "new" else ""
        logger.info(
            "loaded %s%s: %s rows, %s in %.1f s%s",
            event.job,
            kind,
            f"{outcome.rows:,}",
            decimal(outcome.bytes_downloaded),
            outcome.seconds,
            late,
        )

    def render(self) -> RenderableType:
        live = dict(self.report.live)
        states = [v.state for v in live.values()]
        done, failed = self.report.windows_loaded, len(self.report.failures)
        rows = self.report.rows_loaded + sum(v.rows for v in live.values())
        header = Text.assemble(
            ("exports ", "bold"),
            f"{done} done",
            *((f" · {n} {name.lower()}") for name in ACTIVE if (n := states.count(name))),
            (f" · {failed} failed", "bold red") if failed else "",
            f" · {rows:,} rows",
        )
        table = Table.grid(padding=(0, 1))
        for _ in range(7):
            table.add_column(no_wrap=True)
        active = sorted(
            ((job, v) for job, v in live.items() if v.state in ACTIVE),
            key=lambda item: (item[0].window.start, item[0].segment_id, item[0].export_type),
        )
        for job, v in active[:SHOWN]:
            table.add_row(
                job.segment_id[:24],
                job.export_type,
                f"{job.window.start:%Y-%m-%d %H:%M}",
                v.state,
                _bar(v),
                _detail(v).strip(),
                f"{v.rows:,} rows" if v.rows else "",
            )
        parts: list[RenderableType] = [header, table]
        if len(active) > SHOWN:
            parts.append(Text(f"  ... and {len(active) - SHOWN} more running"))
        return Group(*parts)


def _bar(live: LiveState) -> ProgressBar:
    """FullStory's estimate while the export runs; a moving bar while bytes and rows arrive
    (neither has a known total)."""
    if live.state == "Running" and live.percent is not None:
        return ProgressBar(total=100, completed=live.percent, width=24)
    return ProgressBar(total=None if live.state != "Starting" else 100, completed=0, width=24)


def _detail(live: LiveState) -> str:
    if live.state == "Running" and live.percent is not None:
        return f" {live.percent:.0f}%"
    if live.state in ("Downloading", "Loading") and live.bytes_downloaded:
        return f" {decimal(live.bytes_downloaded)}"
    return ""
