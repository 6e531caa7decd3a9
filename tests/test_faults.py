"""Every fault ends exact: after the faults (and, where a window failed, one more run) the tables
hold exactly the sandbox's rows of every window, and the request log shows how many exports
FullStory was asked to build per window."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest

from fullstory_sandbox import Fault, Sandbox, events
from fullstory_source.windows import format_time
from pipelines.fullstory_pipeline import main

from .support import API_KEY, DAY1, DAY2, loaded_multiset, query
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
    """The command's environment (conftest.command_env), for subprocesses too; downloads wait in
    `downloads` beside the DuckDB file."""
    monkeypatch.setenv("SOURCES__FULLSTORY__API_FLAVOR", "live")
    monkeypatch.setenv("SOURCES__FULLSTORY__DOWNLOAD_DIR", str(command_env.parent / "downloads"))
    return dict(os.environ)


def download_dirs(env: dict[str, str]) -> list[str]:
    return sorted(p.name for p in Path(env["SOURCES__FULLSTORY__DOWNLOAD_DIR"]).glob("*"))


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


@pytest.mark.parametrize("export_format", ["ndjson", "csv"])
def test_a_truncated_download_sent_with_content_encoding_gzip_is_caught(
    live_sandbox: Sandbox, database: Path, env: dict[str, str], export_format: str
) -> None:
    live_sandbox.download_content_encoding = "gzip"  # storage that transcodes (GCS, S3 metadata)
    live_sandbox.faults.truncate_downloads(times=2)
    assert main([*RUN, "--format", export_format, "--base-url", live_sandbox.base_url]) == 0
    assert_exact(live_sandbox, database)
    assert creates_per_window(live_sandbox) == dict.fromkeys(WINDOW_STARTS, 1)
    assert len(live_sandbox.requests("GET", "/download/")) == 4 + 2  # the two truncated ones again


def test_a_failed_operation_is_retried_by_the_next_run(
    live_sandbox: Sandbox, database: Path, env: dict[str, str]
) -> None:
    live_sandbox.faults.fail_operations(times=1, error_details="temporary failure", segment_id=SEGMENT)
    assert main([*RUN, "--base-url", live_sandbox.base_url]) == 1
    assert main([*RUN, "--base-url", live_sandbox.base_url]) == 0
    assert_exact(live_sandbox, database)
    counts = creates_per_window(live_sandbox)
    assert sorted(counts.values()) == [1, 1, 1, 2]  # the failed window was created again, once


# Gzip files that hold no readable export. (A `_real` value "N/A" and fields that differ only in
# case are not errors any more: the reader loads NULL with a warning, and `export_<name>`.)
BAD_EXPORTS = {
    "truncated JSON": b'[{"EventStart": "2026-10-01T01:00:00Z", "EventType": "cli',
    "an HTML error page": b"<html><body><h1>502 Bad Gateway</h1></body></html>",
    "a row without EventStart": b'[{"EventType": "click", "IndvId": 1, "SessionId": 2, "PageId": 3}]',
}


@pytest.mark.parametrize("bad", list(BAD_EXPORTS))
def test_one_unreadable_export_fails_only_its_window_and_is_exported_again(
    live_sandbox: Sandbox, database: Path, env: dict[str, str], capsys: pytest.CaptureFixture[str], bad: str
) -> None:
    live_sandbox.faults.serve_instead(BAD_EXPORTS[bad])  # the first download, whichever window
    assert main([*RUN, "--base-url", live_sandbox.base_url]) == 1
    failed = query(database, "SELECT start_at, error FROM fullstory.export_runs WHERE status = 'Failed'")
    assert len(failed) == 1, failed
    start = failed[0][0]
    loaded = {w for (w,) in query(database, "SELECT DISTINCT window_start FROM fullstory.events")}
    assert start not in loaded and len(loaded) == 3  # the other three windows loaded
    assert "FAILED segment 'everyone', events, window" in capsys.readouterr().out

    assert main([*RUN, "--base-url", live_sandbox.base_url]) == 0
    assert_exact(live_sandbox, database)
    counts = creates_per_window(live_sandbox)
    assert counts[format_time(start)] == 2 and sorted(counts.values()) == [1, 1, 1, 2]  # a fresh export


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


def journaled(env: dict[str, str]) -> int:
    """How many operations the command's runs (pipeline 'fullstory_pipeline') have in their journal."""
    path = Path(env["DLT_DATA_DIR"]) / "pipelines" / "fullstory_pipeline" / "fullstory_operations.json"
    try:
        return len(json.loads(path.read_text())["operations"])
    except (OSError, ValueError):
        return 0


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


def test_kill_9_while_extracting_resumes_the_windows_already_extracted(
    live_sandbox: Sandbox, database: Path, env: dict[str, str]
) -> None:
    # two of the four windows are in the extract, which is not committed yet
    crashed = crash_runner(live_sandbox, "extracted:2", env)
    assert crashed.returncode == -signal.SIGKILL, crashed.stdout + crashed.stderr

    assert main([*RUN, "--base-url", live_sandbox.base_url]) == 0
    assert_exact(live_sandbox, database)
    assert creates_per_window(live_sandbox) == dict.fromkeys(WINDOW_STARTS, 1)  # all four resumed
    # once that run is committed, its windows are done: a refresh would export them again
    journal = json.loads(next((Path(env["DLT_DATA_DIR"])).rglob("fullstory_operations.json")).read_text())
    assert len(journal["operations"]) == 4  # kept until the next run sees the commit
    assert main([*RUN, "--end", "2026-10-02T06:00:00Z", "--base-url", live_sandbox.base_url]) == 0
    journal = json.loads(next((Path(env["DLT_DATA_DIR"])).rglob("fullstory_operations.json")).read_text())
    assert len(journal["operations"]) == 1  # the four were dropped, the new window is kept


def test_a_second_run_of_the_same_pipeline_stops_at_once_with_one_line(
    slow_sandbox: Sandbox, database: Path, env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    first = command(slow_sandbox, env)
    try:
        wait_for(lambda: journaled(env) == 4, "the first run to create and journal its exports", 180)
        with pytest.MonkeyPatch.context() as patch:  # without the lock, this run would stop here
            patch.setenv("SOURCES__FULLSTORY__POLL_TIMEOUT", "3")
            assert main([*RUN, "--base-url", slow_sandbox.base_url]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(
            f"error: another run of pipeline 'fullstory_pipeline' is in progress (pid {first.pid}, lock "
        ), err
        assert len(slow_sandbox.created_exports()) == 4  # the second run created nothing
    finally:
        kill(first)
    # the lock went with the killed process: the next run goes ahead and resumes its operations
    slow_sandbox.finish_operations()
    assert main([*RUN, "--base-url", slow_sandbox.base_url]) == 0
    assert_exact(slow_sandbox, database)
    assert creates_per_window(slow_sandbox) == dict.fromkeys(WINDOW_STARTS, 1)


@pytest.mark.parametrize("signal_number", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_or_sigterm_stops_at_once_with_one_line_and_the_next_run_resumes(
    slow_sandbox: Sandbox, database: Path, env: dict[str, str], signal_number: int
) -> None:
    process = command(slow_sandbox, env)
    polled = lambda: len({r.path for r in slow_sandbox.requests("GET", "/operations/v1/")}) == 4  # noqa: E731
    wait_for(polled, "all four operations to be polled")
    process.send_signal(signal_number)
    try:
        out, _ = process.communicate(timeout=60)  # without a prompt stop: polls for 600 s
    finally:
        process.kill()
    assert process.returncode == 128 + signal_number, out[-3000:]
    assert "Traceback" not in out and "generator already executing" not in out, out[-3000:]
    assert "error:" not in out and "KeyboardInterrupt" not in out, out[-3000:]  # the one line below only
    assert out.strip().splitlines()[-1] == (
        f"stopped by {signal.Signals(signal_number).name}: nothing of this run's extract was committed; "
        "the next run resumes the exports in flight and finishes any load left pending"
    )
    assert download_dirs(env) == []
    slow_sandbox.finish_operations()

    assert main([*RUN, "--base-url", slow_sandbox.base_url]) == 0
    assert_exact(slow_sandbox, database)
    assert creates_per_window(slow_sandbox) == dict.fromkeys(WINDOW_STARTS, 1)


def test_kill_9_then_the_files_of_completed_operations_are_gone_exports_again_once(
    slow_sandbox: Sandbox, database: Path, env: dict[str, str]
) -> None:
    process = command(slow_sandbox, env)
    wait_for(lambda: journaled(env) == 4, "four exports to be created and journaled", 180)
    kill(process)
    slow_sandbox.finish_operations()  # COMPLETED, but storage lost their files
    slow_sandbox.faults.add(Fault("download", status=404, times=4))
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
    left = download_dirs(env)  # the killed run's partial downloads
    assert len(left) == 1 and left[0].startswith(f"run-{process.pid}-"), left

    assert main([*RUN, "--base-url", live_sandbox.base_url]) == 0
    assert_exact(live_sandbox, database)
    assert creates_per_window(live_sandbox) == dict.fromkeys(WINDOW_STARTS, 1)
    assert download_dirs(env) == []  # removed: the killed run's and this run's


# The download directory on a tmpfs of its own, 64 kB, in a mount namespace the test makes with
# unshare (no privileges needed): the command meets a real ENOSPC from the kernel. The script
# reports what is left on that disk after the command, before the namespace goes.
FULL_DISK = """
mount -t tmpfs -o size=64k fullstory-test "$1" || exit 97
disk="$1"; shift
"$@"; code=$?
used=$(df --output=used -k "$disk" | tail -1 | tr -d ' ')
echo "left on the full disk: $(ls -A "$disk" | wc -l) entries, $used kB"
exit $code
"""


def test_a_full_disk_fails_its_windows_cleans_up_and_the_next_run_is_exact(
    tmp_path: Path, database: Path, env: dict[str, str]
) -> None:
    downloads = Path(env["SOURCES__FULLSTORY__DOWNLOAD_DIR"])
    downloads.mkdir(parents=True)
    with Sandbox(api_key=API_KEY, flavor="live", events_per_hour=400, workdir=str(tmp_path / "sb")) as sb:
        command = [sys.executable, "-m", "pipelines.fullstory_pipeline", *RUN, "--base-url", sb.base_url]
        result = subprocess.run(
            ["unshare", "--user", "--map-root-user", "--mount",
             "sh", "-c", FULL_DISK, "sh", str(downloads), *command],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert result.returncode == 1, result.stdout[-2000:] + result.stderr[-3000:]
        assert result.stdout.strip().splitlines()[-1] == "left on the full disk: 0 entries, 0 kB"
        full = [line for line in result.stderr.splitlines() if "FAILED" in line]
        assert len(full) == 4 and all(
            "the disk is full" in line and "DOWNLOAD_DIR" in line for line in full
        ), full
        assert "Traceback" not in result.stderr
        assert creates_per_window(sb) == dict.fromkeys(WINDOW_STARTS, 1)
        assert query(database, "SELECT count(*) FROM fullstory.export_runs WHERE status = 'Failed'") == [(4,)]

        assert main([*RUN, "--base-url", sb.base_url]) == 0  # the disk has room again
        assert_exact(sb, database)
        assert download_dirs(env) == []


# A day of ~75,000 events in 6 h windows: one load package big enough that a kill lands inside
# a copy or a merge, not only between them.
BIG = 3000  # events per hour

# Where the load is killed. `commit:events`: the events file is in the table but dlt has not
# recorded that yet, so the next run loads it again. `sql:N`: after the N-th of the load's 21
# statements (its jobs run in threads, so N is "the N-th to finish"; in a typical order 4 tables
# created, 12 staging emptied, 16 / 18 / 20 the events job's two deletes and its insert, inside
# its transaction, 21 the load recorded). A timed kill lands wherever the load happens to be.
KILL_MOMENTS = ["commit:events", "sql:4", "sql:12", "sql:16", "sql:18", "sql:20", "sql:21", "0.5"]


def crash_runner(sb: Sandbox, moment: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tests.crash_runner", sb.base_url, moment],
        cwd=REPO, env={**os.environ, **env}, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def differing_rows(database: Path, reference: Path, table: str) -> tuple[int, int]:
    """(rows only in `database`, rows only in `reference`), as multisets, dlt's own columns aside."""
    with duckdb.connect(str(database), read_only=True) as con:
        con.execute(f"ATTACH '{reference}' AS ref (READ_ONLY)")
        columns = ", ".join(
            f'"{name}"'
            for (name,) in con.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_catalog = current_database() "
                "AND table_schema = 'fullstory' AND table_name = ? AND column_name NOT LIKE '_dlt%' "
                "ORDER BY column_name",
                [table],
            ).fetchall()
        )
        ours, theirs = (
            f"SELECT {columns} FROM fullstory.{table}",
            f"SELECT {columns} FROM ref.fullstory.{table}",
        )
        extra = con.execute(f"SELECT count(*) FROM ({ours} EXCEPT ALL {theirs})").fetchone()
        missing = con.execute(f"SELECT count(*) FROM ({theirs} EXCEPT ALL {ours})").fetchone()
    return int(extra[0]), int(missing[0])  # type: ignore[index]


def test_kill_9_while_loading_is_finished_exactly_by_the_next_run_whatever_the_moment(
    tmp_path: Path, database: Path, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with Sandbox(api_key=API_KEY, flavor="live", events_per_hour=BIG, workdir=str(tmp_path / "sb")) as sb:
        # an earlier run has loaded before (on a first-ever load dlt would discard the package instead)
        assert main(["run", "--resources", "segments", "--base-url", sb.base_url]) == 0
        prepared = crash_runner(sb, "prepare", env)
        assert prepared.returncode == 0, prepared.stdout + prepared.stderr
        snapshot = tmp_path / "snapshot"
        shutil.copytree(tmp_path / "dlt", snapshot / "dlt")
        shutil.copy(database, snapshot / database.name)

        def resume_from_snapshot(name: str, moment: str | None) -> Path:
            here = tmp_path / name
            shutil.copytree(snapshot, here)
            moment_env = {**env, "DLT_DATA_DIR": str(here / "dlt"),
                          "DESTINATION__DUCKDB__CREDENTIALS": str(here / database.name)}  # fmt: skip
            for variable, value in moment_env.items():
                monkeypatch.setenv(variable, value)
            if moment is not None:
                crashed = crash_runner(sb, f"load:{moment}", moment_env)
                assert crashed.returncode == -signal.SIGKILL, (moment, crashed.stdout + crashed.stderr)
            sb.clear_log()
            assert main([*RUN, "--base-url", sb.base_url]) == 0, moment
            assert sb.created_exports() == [], moment  # the extracted windows were not exported again
            return here / database.name

        # the same package loaded without a crash holds exactly the sandbox's events
        reference = resume_from_snapshot("reference", None)
        expected = sum(1 for _ in events(SEGMENT, DAY1, DAY2, events_per_hour=BIG))
        assert expected > 70_000
        assert query(reference, "SELECT count(*) FROM fullstory.events") == [(expected,)]

        for moment in KILL_MOMENTS:
            loaded = resume_from_snapshot(moment.replace(":", "_"), moment)
            assert differing_rows(loaded, reference, "events") == (0, 0), moment
            assert differing_rows(loaded, reference, "export_runs") == (0, 0), moment
