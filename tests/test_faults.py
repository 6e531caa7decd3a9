"""Every fault ends exact: after the faults (and, where a window failed, one more run) the tables
hold exactly the sandbox's rows of every window, and the request log shows how many exports
FullStory was asked to build per window."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from fullstory_sandbox import Fault, Sandbox
from pipelines.fullstory_pipeline import main

from .support import API_KEY, DAY1, DAY2, loaded_multiset
from .test_source import expected_events

REPO = Path(__file__).resolve().parents[1]
SEGMENT = "everyone"
RUN = [
    "run", "--segment", SEGMENT, "--types", "events", "--window", "6h",
    "--start", "2026-10-01T00:00:00Z", "--end", "2026-10-02T00:00:00Z",
]  # fmt: skip
WINDOW_STARTS = [f"2026-10-01T{hour:02d}:00:00Z" for hour in (0, 6, 12, 18)]


@pytest.fixture
def env(command_env: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The command's environment (conftest.command_env), for subprocesses too."""
    monkeypatch.setenv("SOURCES__FULLSTORY__API_FLAVOR", "live")
    return dict(os.environ)


def creates_per_window(sb: Sandbox) -> dict[str, int]:
    return dict(Counter(c["timeRange"]["start"] for c in sb.created_exports()))


def assert_exact(sb: Sandbox, database: Path) -> None:
    assert loaded_multiset(database, "events") == expected_events(sb, SEGMENT, DAY1, DAY2)


Setup = Callable[[Sandbox], None]
FAULTS: dict[str, Setup] = {
    "429 storm with Retry-After": lambda sb: [
        sb.faults.add(Fault(endpoint, status=429, times=2, retry_after=1))
        for endpoint in ("segment", "create", "operation", "link")
    ],
    "500 and 503": lambda sb: [
        sb.faults.add(Fault(endpoint, status=status, times=2))
        for endpoint in ("segment", "create", "operation", "link", "download")
        for status in (500, 503)
    ],
    "connection resets": lambda sb: [
        sb.faults.add(Fault(endpoint, status=0, times=2))
        for endpoint in ("segment", "create", "operation", "download")
    ],
    "truncated download": lambda sb: sb.faults.truncate_downloads(times=2),
    "corrupt download": lambda sb: sb.faults.corrupt_downloads(times=2),
    "expired link": lambda sb: sb.faults.add(Fault("download", status=403, times=3)),
    "create rate limit": lambda sb: sb.faults.add(Fault("create", status=429, times=4, retry_after=1)),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_a_fault_that_retries_absorb(
    live_sandbox: Sandbox, database: Path, env: dict[str, str], fault: str
) -> None:
    FAULTS[fault](live_sandbox)
    assert main(["--verbose", *RUN, "--base-url", live_sandbox.base_url]) == 0
    assert_exact(live_sandbox, database)
    assert creates_per_window(live_sandbox) == dict.fromkeys(WINDOW_STARTS, 1)


def test_a_failed_operation_is_retried_by_the_next_run(
    live_sandbox: Sandbox, database: Path, env: dict[str, str]
) -> None:
    live_sandbox.faults.fail_operations(times=1, error_details="temporary failure", segment_id=SEGMENT)
    assert main([*RUN, "--base-url", live_sandbox.base_url]) == 1
    assert main([*RUN, "--base-url", live_sandbox.base_url]) == 0
    assert_exact(live_sandbox, database)
    counts = creates_per_window(live_sandbox)
    assert sorted(counts.values()) == [1, 1, 1, 2]  # the failed window was created again, once


def test_a_429_storm_beyond_the_budget_fails_clearly(
    live_sandbox: Sandbox, database: Path, env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    # a configured segment is read with GET /segments/v1/{id} ("segment"), not the list
    live_sandbox.faults.add(Fault("segment", status=429, times=50, retry_after=1))
    os.environ["SOURCES__FULLSTORY__MAX_ATTEMPTS"] = "2"
    try:
        assert main([*RUN, "--base-url", live_sandbox.base_url]) == 1
    finally:
        del os.environ["SOURCES__FULLSTORY__MAX_ATTEMPTS"]
    err = capsys.readouterr().err
    assert "HTTP 429" in err and "retry budget ran out (FullStory asked to wait 1 s)" in err
    assert live_sandbox.created_exports() == []


def command(sb: Sandbox, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "pipelines.fullstory_pipeline", *RUN, "--base-url", sb.base_url],
        cwd=REPO, env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def kill(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL


@pytest.fixture
def slow_sandbox(tmp_path: Path) -> Sandbox:
    with Sandbox(api_key=API_KEY, flavor="live", operation_polls=1, operation_seconds=600,
                 workdir=str(tmp_path / "sb")) as sb:  # fmt: skip
        yield sb


def test_kill_9_while_polling_resumes_the_same_operations(
    slow_sandbox: Sandbox, database: Path, env: dict[str, str]
) -> None:
    process = command(slow_sandbox, env)
    polled = lambda: len({r.path for r in slow_sandbox.requests("GET", "/operations/v1/")}) == 4  # noqa: E731
    wait_for(polled, "all four operations to be polled")
    kill(process)
    slow_sandbox.finish_operations()

    assert main([*RUN, "--base-url", slow_sandbox.base_url]) == 0
    assert_exact(slow_sandbox, database)
    assert creates_per_window(slow_sandbox) == dict.fromkeys(WINDOW_STARTS, 1)


def test_kill_9_then_operations_gone_are_created_again_once(
    slow_sandbox: Sandbox, database: Path, env: dict[str, str]
) -> None:
    process = command(slow_sandbox, env)
    wait_for(lambda: len(slow_sandbox.created_exports()) == 4, "four exports to be created")
    kill(process)
    slow_sandbox.forget_operations()
    slow_sandbox.operation_seconds = 0

    assert main([*RUN, "--base-url", slow_sandbox.base_url]) == 0
    assert_exact(slow_sandbox, database)
    assert creates_per_window(slow_sandbox) == dict.fromkeys(WINDOW_STARTS, 2)


def test_kill_9_while_downloading_resumes_the_same_operations(
    live_sandbox: Sandbox, database: Path, env: dict[str, str]
) -> None:
    live_sandbox.download_chunk_delay = 5.0  # downloads stall
    process = command(live_sandbox, env)
    wait_for(lambda: live_sandbox.requests("GET", "/download/"), "a download to start")
    kill(process)
    live_sandbox.download_chunk_delay = 0.0

    assert main([*RUN, "--base-url", live_sandbox.base_url]) == 0
    assert_exact(live_sandbox, database)
    assert creates_per_window(live_sandbox) == dict.fromkeys(WINDOW_STARTS, 1)


@pytest.mark.parametrize("delay", [0.0, 0.05, 0.2])
def test_kill_9_while_loading_is_finished_by_the_next_run(
    live_sandbox: Sandbox, database: Path, env: dict[str, str], delay: float
) -> None:
    # an earlier run has loaded before (on a first-ever load dlt would discard the package instead)
    assert main(["run", "--resources", "segments", "--base-url", live_sandbox.base_url]) == 0
    crashed = subprocess.run(
        [sys.executable, "-m", "tests.crash_runner", live_sandbox.base_url, str(delay)],
        cwd=REPO, env={**os.environ, **env}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert crashed.returncode == -signal.SIGKILL, crashed.stdout + crashed.stderr
    assert "LOADING" in crashed.stdout
    live_sandbox.clear_log()

    assert main([*RUN, "--base-url", live_sandbox.base_url]) == 0
    assert_exact(live_sandbox, database)
    assert live_sandbox.created_exports() == []  # the extracted windows were not exported again
