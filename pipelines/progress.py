"""Progress of a run: a live table on a terminal, plain log lines elsewhere (CI logs)."""

from __future__ import annotations

import logging
import sys
import threading
import time
from typing import TextIO

from fullstory_source.events import ExportEvent
from fullstory_source.exports import ExportJob
from fullstory_source.report import RunReport

logger = logging.getLogger("fullstory_pipeline")

_ACTIVE = ("Starting", "Running", "Downloading", "Loading")


class ProgressDisplay:
    """An event sink (fullstory_source.events) that shows the live states the RunReport
    collects. Pass it after the report to `fan_out`; use it as a context manager around the run."""

    def __init__(
        self, report: RunReport, stream: TextIO | None = None, interactive: bool | None = None
    ) -> None:
        self.report = report
        self.stream = stream or sys.stderr
        self.interactive = self.stream.isatty() if interactive is None else interactive
        self._logged: dict[ExportJob, tuple[str, float]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._drawn_lines = 0

    def __enter__(self) -> ProgressDisplay:
        if self.interactive:
            self._thread = threading.Thread(target=self._redraw_loop, name="progress", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()
            self._draw()

    def __call__(self, event: ExportEvent) -> None:
        if self.interactive:
            return  # the redraw loop shows it
        job, live = event.job, self.report.live[event.job]
        # plain lines: every change of state, and progress at most every 30 s per export
        last_state, last_time = self._logged.get(job, ("", 0.0))
        now = time.monotonic()
        if live.state == last_state and (live.state not in ("Running", "Loading") or now - last_time < 30):
            return
        self._logged[job] = (live.state, now)
        detail = f" {live.percent:.0f}%" if live.state == "Running" and live.percent is not None else ""
        rows = f" {live.rows:,} rows" if live.state in ("Loading", "Completed") else ""
        logger.info("%s: %s%s%s", job, live.state, detail, rows)

    def _redraw_loop(self) -> None:
        while not self._stop.wait(0.5):
            self._draw()

    def _draw(self) -> None:
        live = dict(self.report.live)
        counts = {s: sum(1 for v in live.values() if v.state == s) for s in (*_ACTIVE, "Completed", "Failed")}
        lines = [
            f"exports: {len(live)}  " + "  ".join(f"{name.lower()} {n}" for name, n in counts.items() if n)
        ]
        active = [(job, v) for job, v in live.items() if v.state in _ACTIVE][:12]
        for job, v in sorted(active, key=lambda item: (item[0].segment_id, item[0].window)):
            percent = f"{v.percent:5.0f}%" if v.percent is not None else "     "
            lines.append(
                f"  {job.segment_id[:24]:<24} {job.export_type:<11} {job.window.start:%Y-%m-%d %H:%M} "
                f"{v.state:<11} {percent} {v.rows:>12,} rows"
            )
        up = f"\x1b[{self._drawn_lines}F" if self._drawn_lines else ""
        self.stream.write(up + "".join(f"\x1b[2K{line}\n" for line in lines) + "\x1b[J")
        self.stream.flush()
        self._drawn_lines = len(lines)
