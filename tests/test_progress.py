"""The progress display: a live view redrawn in place on a terminal (checked on an emulated
screen, in-process and under a real pseudo-terminal), plain outcome lines in CI logs."""

from __future__ import annotations

import codecs
import io
import logging
import os
import pty
import subprocess
import sys
from pathlib import Path

import pyte
import pytest
from rich.console import Console

from fullstory_sandbox import Sandbox
from fullstory_source import ExportEvent, RunReport, WindowOutcome, fan_out
from fullstory_source.exports import ExportJob
from fullstory_source.windows import Window
from pipelines.progress import ProgressDisplay, log_handler

from .support import API_KEY, DAY1, DAY2, DAY3

JOB = ExportJob("everyone", "events", Window(DAY1, DAY2))
OTHER = ExportJob("power-users", "individuals", Window(DAY1, DAY2))
DONE = ExportJob("everyone", "events", Window(DAY2, DAY3))
COMMAND = Path(sys.executable).with_name("fullstory-pipeline")


class Terminal:
    """What a person sees: the bytes written to a terminal, played on an emulated screen."""

    def __init__(self, columns: int = 140, lines: int = 200, newline_mode: bool = False) -> None:
        self.screen = pyte.Screen(columns, lines)
        if newline_mode:  # bytes that did not pass a tty driver: "\n" also returns the carriage
            self.screen.set_mode(pyte.modes.LNM)
        self.stream = pyte.Stream(self.screen)

    def feed(self, text: str) -> None:
        self.stream.feed(text)

    def lines(self) -> list[str]:
        return [line.rstrip() for line in self.screen.display if line.strip()]

    def count(self, text: str) -> int:
        return sum(text in line for line in self.lines())


def test_the_terminal_display_redraws_in_place_with_log_lines_above_it() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=140, height=200)
    handler = log_handler(console, verbose=False)
    logger = logging.getLogger("fullstory_pipeline")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    report = RunReport()
    display = ProgressDisplay(report, console=console)
    send = fan_out(report, display)
    try:
        with display:
            for percent in (10.0, 42.0):
                send(ExportEvent(JOB, "Running", percent))
                display.refresh()
            send(ExportEvent(OTHER, "Downloading", bytes_downloaded=2_500_000))
            display.refresh()
            send(ExportEvent(DONE, "Loading", rows=120, bytes_downloaded=9_000))
            outcome = WindowOutcome(DONE, "loaded", rows=120, bytes_downloaded=9_000, seconds=1.5)
            send(ExportEvent(DONE, "Completed", rows=120, outcome=outcome))
            for _ in range(3):
                display.refresh()
            during_output = out.getvalue()
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    terminal = Terminal(newline_mode=True)
    terminal.feed(during_output)
    during = terminal.lines()
    # one display, redrawn in place: not a copy per refresh
    assert terminal.count("exports ") == 1, "\n".join(during)
    header = next(i for i, line in enumerate(during) if "exports " in line)
    loaded = next(i for i, line in enumerate(during) if f"loaded {DONE}" in line)
    assert loaded < header  # the log line is printed above the display, not through it
    assert "120 rows" in during[loaded] and "9.0 kB" in during[loaded]
    assert "1 done · 1 running · 1 downloading · 120 rows" in during[header]
    running = next(line for line in during if "everyone" in line and "Running" in line)
    assert "42%" in running and "━" in running  # a bar at FullStory's estimate
    assert any("power-users" in line and "2.5 MB" in line for line in during)

    # when the run ends the display goes; the outcome lines stay
    final = Terminal(newline_mode=True)
    final.feed(out.getvalue())
    assert final.count("exports ") == 0
    assert final.count(f"loaded {DONE}") == 1


def test_ci_logs_get_one_line_per_window_outcome(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="fullstory_pipeline")
    report = RunReport()
    display = ProgressDisplay(report, console=Console(file=io.StringIO()), interactive=False)
    send = fan_out(report, display)
    with display:
        send(ExportEvent(JOB, "Starting"))
        for percent in (10.0, 20.0, 30.0):  # within 30 s: one line, not three
            send(ExportEvent(JOB, "Running", percent))
        loaded = WindowOutcome(JOB, "loaded", rows=99, bytes_downloaded=2_000, seconds=0.4)
        send(ExportEvent(JOB, "Completed", rows=99, outcome=loaded))
        failed = WindowOutcome(OTHER, "failed", error="FullStory API answered HTTP 500: boom")
        send(ExportEvent(OTHER, "Failed", outcome=failed))
    info = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert info == [
        f"loaded {JOB}: 99 rows, 2.0 kB in 0.4 s",
        f"FAILED {OTHER}: FullStory API answered HTTP 500: boom",
    ]
    debug = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    assert debug == [f"{JOB}: Starting", f"{JOB}: Running 10%"]


def run_args(sb: Sandbox) -> list[str]:
    return [
        "run", "--segment", "everyone", "--segment", "power-users", "--types", "events", "--window", "6h",
        "--start", "2026-10-01T00:00:00Z", "--end", "2026-10-02T00:00:00Z",
    ]  # fmt: skip


def command_env(sb: Sandbox, tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "SOURCES__FULLSTORY__API_KEY": API_KEY,
        "SOURCES__FULLSTORY__BASE_URL": sb.base_url,
        "SOURCES__FULLSTORY__POLL_INTERVAL": "0.05",
        "DESTINATION__DUCKDB__CREDENTIALS": str(tmp_path / "warehouse.duckdb"),
        "COLUMNS": "140",
        "LINES": "200",
    }


def test_without_a_terminal_the_log_has_one_line_per_window_and_the_failures(
    live_sandbox: Sandbox, tmp_path: Path
) -> None:
    live_sandbox.faults.fail_operations(error_details="export quota exceeded", segment_id="everyone")
    result = subprocess.run(
        [str(COMMAND), *run_args(live_sandbox)],
        env=command_env(live_sandbox, tmp_path), cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr[-3000:]
    lines = result.stderr.splitlines()
    assert len(lines) == 8, result.stderr  # 2 segments x 4 windows, nothing else
    assert sum(" INFO    loaded segment " in line for line in lines) == 7
    failed = [line for line in lines if " ERROR   FAILED segment 'everyone'" in line]
    assert len(failed) == 1 and "export quota exceeded" in failed[0]
    assert "\x1b[" not in result.stderr  # no terminal codes in a log file
    assert "Summary" in result.stdout and "FAILED segment 'everyone'" in result.stdout


def test_under_a_real_terminal_the_display_never_shows_two_copies(
    live_sandbox: Sandbox, tmp_path: Path
) -> None:
    live_sandbox.operation_polls = 4  # a few progress steps per export
    main_fd, child_fd = pty.openpty()
    process = subprocess.Popen(
        [str(COMMAND), *run_args(live_sandbox)],
        env=command_env(live_sandbox, tmp_path), cwd=tmp_path, stdin=child_fd, stdout=child_fd,
        stderr=child_fd, close_fds=True,
    )  # fmt: skip
    os.close(child_fd)
    terminal = Terminal()
    most_copies, seen_display = 0, False
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    while True:
        try:
            chunk = os.read(main_fd, 4096)
        except OSError:  # EIO: the command exited and closed the terminal
            break
        if not chunk:
            break
        terminal.feed(decoder.decode(chunk))
        copies = terminal.count("exports ")
        seen_display = seen_display or copies > 0
        most_copies = max(most_copies, copies)
    os.close(main_fd)
    assert process.wait(timeout=60) == 0
    screen = terminal.lines()
    assert seen_display, "\n".join(screen)
    assert most_copies == 1, "\n".join(screen)  # redrawn in place, never stacked
    assert terminal.count("exports ") == 0  # gone at the end: outcome lines and summary remain
    assert terminal.count("loaded segment ") == 8
    assert terminal.count("Summary") == 1
    assert len(screen) == len(set(screen)), "\n".join(screen)  # no line printed twice
