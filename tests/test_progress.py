"""The progress display: a redrawn table on a terminal, plain log lines elsewhere."""

from __future__ import annotations

import io
import logging

import pytest

from fullstory_source import ExportEvent, RunReport, WindowOutcome, fan_out
from fullstory_source.exports import ExportJob
from fullstory_source.windows import Window
from pipelines.progress import ProgressDisplay

from .support import DAY1, DAY2

JOB = ExportJob("everyone", "events", Window(DAY1, DAY2))
OTHER = ExportJob("power-users", "individuals", Window(DAY1, DAY2))


def test_terminal_shows_a_live_table() -> None:
    report = RunReport()
    screen = io.StringIO()
    display = ProgressDisplay(report, stream=screen, interactive=True)
    send = fan_out(report, display)
    with display:
        send(ExportEvent(JOB, "Running", 42.0))
        send(ExportEvent(OTHER, "Loading", rows=1234))
    text = screen.getvalue()
    assert "exports: 2" in text and "running 1" in text and "loading 1" in text
    assert "everyone" in text and "42%" in text
    assert "power-users" in text and "1,234 rows" in text
    assert "\x1b[2K" in text  # lines are cleared and redrawn in place


def test_ci_gets_one_log_line_per_state_change(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="fullstory_pipeline")
    report = RunReport()
    screen = io.StringIO()
    display = ProgressDisplay(report, stream=screen, interactive=False)
    send = fan_out(report, display)
    with display:
        send(ExportEvent(JOB, "Starting"))
        for percent in (10.0, 20.0, 30.0):  # within 30 s: one line, not three
            send(ExportEvent(JOB, "Running", percent))
        outcome = WindowOutcome(JOB, "loaded", rows=99)
        send(ExportEvent(JOB, "Completed", rows=99, outcome=outcome))
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        f"{JOB}: Starting",
        f"{JOB}: Running 10%",
        f"{JOB}: Completed 99 rows",
    ]
    assert screen.getvalue() == ""  # no terminal codes in CI logs
