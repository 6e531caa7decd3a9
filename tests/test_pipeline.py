"""The `fullstory-pipeline` command, run in-process and (for the demo) as a real subprocess."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import dlt
import duckdb
import pytest

from fullstory_sandbox import Sandbox
from fullstory_source.windows import parse_time
from pipelines.fullstory_pipeline import main

from .support import API_KEY, DAY1, DAY2, DAY3, make_pipeline, query, source, tables

REPO = Path(__file__).resolve().parents[1]


def run_args(sb: Sandbox, *extra: str) -> list[str]:
    return [
        "run",
        "--base-url", sb.base_url,
        "--api-flavor", sb.flavor,
        "--window", "6h",
        "--start", "2026-10-01T00:00:00Z",
        "--end", "2026-10-02T00:00:00Z",
        *extra,
    ]  # fmt: skip


def test_run_loads_and_prints_a_summary(
    live_sandbox: Sandbox, command_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        run_args(live_sandbox, "--segment", "everyone", "--segment", "power-users", "--types", "events")
    )
    out = capsys.readouterr().out
    assert code == 0
    expected = sum(
        len(live_sandbox.expected_rows("events", s, DAY1, DAY2)) for s in ("everyone", "power-users")
    )
    assert query(command_env, "SELECT count(*) FROM fullstory.events")[0][0] == expected
    assert re.search(rf"events\s+{expected:,} rows", out)
    assert re.search(r"windows\s+8 loaded", out)
    assert "individuals" not in out


def test_a_failed_window_exits_1_and_the_others_load(
    live_sandbox: Sandbox, command_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    live_sandbox.faults.fail_operations(error_details="export quota exceeded", segment_id="everyone")
    code = main(
        run_args(live_sandbox, "--segment", "everyone", "--segment", "power-users", "--types", "events")
    )
    out = capsys.readouterr().out
    assert code == 1
    assert "export quota exceeded" in out
    # windows run concurrently: the failed window has no rows, the 7 others loaded
    failed = re.search(r"FAILED segment 'everyone', events, window \[(\S+), ", out)
    assert failed
    loaded = query(command_env, "SELECT DISTINCT segment_id, window_start FROM fullstory.events")
    assert len(loaded) == 7
    assert ("everyone", parse_time(failed.group(1), "start")) not in loaded


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--types", "events,bogus"], "unknown export type(s) ['bogus']"),
        (["--window", "5h"], "does not divide 24 hours"),
        (["--segment", "nope"], "unknown segment id(s) ['nope']"),
    ],
)
def test_bad_input_exits_with_a_clear_message(
    live_sandbox: Sandbox,
    command_env: Path,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    message: str,
) -> None:
    code = main(run_args(live_sandbox, *extra))
    err = capsys.readouterr().err
    assert code in (1, 2)
    assert message in err
    assert "Traceback" not in err
    assert live_sandbox.created_exports() == []


BAD_INPUT: list[tuple[list[str], dict[str, str], str]] = [
    (["--types", "events,events"], {}, "export_types lists ['events'] more than once; name each once"),
    (["--types", ""], {}, "export_types is empty"),
    (["--segment", "everyone", "--segment", "everyone"], {}, "segment_ids lists ['everyone'] more than once"),
    (["--end", "2026-10-01T05:00:00Z"], {}, "end 2026-10-01T05:00:00Z leaves no whole 6h window after start "
     "2026-10-01T00:00:00Z: the first window ends at 2026-10-01T06:00:00Z; pick a later end"),
    (["--start", "9999-12-31T00:00:00Z", "--end", "9999-12-31T12:00:00Z"], {}, "is outside 1970-2999"),
    (["--start", "0001-01-01T00:00:00Z"], {}, "start_date='0001-01-01T00:00:00Z' is outside 1970-2999"),
    ([], {"SOURCES__FULLSTORY__SEGMENT_IDS": "everyone"}, "config value segment_ids "
     "(SOURCES__FULLSTORY__SEGMENT_IDS or [sources.fullstory] segment_ids) cannot be read as a list"),
    ([], {"SOURCES__FULLSTORY__REQUEST_TIMEOUT": "0"}, "request_timeout=0.0 must be greater than 0"),
    ([], {"SOURCES__FULLSTORY__POLL_INTERVAL": "0"}, "poll_interval=0.0 must be greater than 0"),
    ([], {"SOURCES__FULLSTORY__POLL_INTERVAL": "-1"}, "poll_interval=-1.0 must be greater than 0"),
    ([], {"SOURCES__FULLSTORY__DOWNLOAD_ATTEMPTS": "0"}, "download_attempts=0 must be a whole number"),
    (["backfill", "--end", "2026-10-01T13:00:00Z"], {}, "backfill end 2026-10-01T13:00:00Z is not on the 6h "
     "window grid; use 2026-10-01T12:00:00Z or 2026-10-01T18:00:00Z"),
]  # fmt: skip


@pytest.mark.parametrize(("extra", "environment", "message"), BAD_INPUT)
def test_bad_input_is_one_line_exit_2_and_nothing_happens(
    live_sandbox: Sandbox,
    command_env: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    extra: list[str],
    environment: dict[str, str],
    message: str,
) -> None:
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    if extra[:1] == ["backfill"]:  # on a fresh destination: nothing was ever loaded
        args = ["backfill", *run_args(live_sandbox, *extra[1:])[1:]]
    else:
        args = run_args(live_sandbox, *extra)
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert live_sandbox.created_exports() == []
    assert not command_env.exists() or tables(command_env) <= {
        "_dlt_loads",
        "_dlt_pipeline_state",
        "_dlt_version",
    }


def test_a_pending_load_is_finished_before_new_windows(
    live_sandbox: Sandbox, command_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pipeline = make_pipeline(command_env, name="fullstory_pipeline")
    args = {"segment_ids": ["everyone"], "export_types": ["events"], "start_date": "2026-10-01T00:00:00Z"}
    pipeline.run(source(live_sandbox, **args, end_date="2026-10-02T00:00:00Z"))
    # the next run extracted and normalized two windows of day 2, then died before loading them
    pipeline.extract(source(live_sandbox, **args, end_date="2026-10-02T12:00:00Z"))
    pipeline.normalize()
    assert pipeline.has_pending_data
    live_sandbox.clear_log()

    code = main(
        run_args(live_sandbox, "--segment", "everyone", "--types", "events", "--end", "2026-10-03T00:00:00Z")
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "finished a load package left pending" in out
    ranges = sorted(c["timeRange"]["start"] for c in live_sandbox.created_exports())
    assert ranges == ["2026-10-02T12:00:00Z", "2026-10-02T18:00:00Z"]  # pending windows not exported again
    expected = len(live_sandbox.expected_rows("events", "everyone", DAY1, DAY3))
    assert query(command_env, "SELECT count(*) FROM fullstory.events")[0][0] == expected


def test_segments_command_lists_segments(
    sandbox: Sandbox, command_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["segments", "--base-url", sandbox.base_url, "--api-flavor", sandbox.flavor])
    out = capsys.readouterr().out
    assert code == 0
    for segment in sandbox.segments:
        assert segment["id"] in out
    assert "(built-in)" in out  # 'everyone' has no created time


def test_the_key_appears_in_no_output_and_no_file(
    live_sandbox: Sandbox,
    command_env: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("DEBUG")
    assert main(["-v", *run_args(live_sandbox, "--segment", "everyone")]) == 0
    captured = capsys.readouterr()
    assert API_KEY not in captured.out + captured.err + caplog.text
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.suffix == ".duckdb" for p in written)
    leaking = [p for p in written if API_KEY.encode() in p.read_bytes()]
    assert leaking == []
    # the key reached the API, but never the download host
    downloads = live_sandbox.requests(path_prefix="/download")
    assert downloads and all("Authorization" not in r.headers for r in downloads)


def test_demo_runs_offline_as_a_command(tmp_path: Path) -> None:
    env = {**os.environ, "DLT_DATA_DIR": str(tmp_path / "dlt")}
    result = subprocess.run(
        [sys.executable, "-m", "pipelines.fullstory_pipeline", "demo",
         "--output", str(tmp_path / "demo.duckdb")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Summary" in result.stdout and "Sample events" in result.stdout
    events = query(
        tmp_path / "demo.duckdb", "SELECT count(*), count(DISTINCT segment_id) FROM fullstory.events"
    )
    assert events[0][0] > 1000 and events[0][1] == 4
    assert dlt.__version__.startswith("1.31")
    # a second demo replaces the first one's database without asking
    assert main(["demo", "--output", str(tmp_path / "demo.duckdb")]) == 0


@pytest.mark.parametrize("content", ["text", "duckdb"])
def test_demo_does_not_replace_a_file_it_did_not_write(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str
) -> None:
    precious = tmp_path / "warehouse.duckdb"
    if content == "text":
        precious.write_text("not a demo\n")
    else:
        with duckdb.connect(str(precious)) as con:
            con.execute("CREATE TABLE orders AS SELECT 1 AS id")
    before = precious.read_bytes()
    assert main(["demo", "--output", str(precious)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {precious} exists and is not a demo database: choose another --output, "
                   "or pass --overwrite to replace it"]  # fmt: skip
    assert precious.read_bytes() == before


def test_the_command_has_arrow_allocate_with_malloc_unless_told_otherwise(
    live_sandbox: Sandbox, command_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pyarrow as pa

    initial = pa.default_memory_pool()
    try:
        monkeypatch.setenv("ARROW_DEFAULT_MEMORY_POOL", "jemalloc")
        pa.set_memory_pool(pa.jemalloc_memory_pool())
        assert main(run_args(live_sandbox, "--types", "events", "--segment", "everyone")) == 0
        assert pa.default_memory_pool().backend_name == "jemalloc"  # the user's choice stays

        monkeypatch.delenv("ARROW_DEFAULT_MEMORY_POOL")
        assert main(run_args(live_sandbox, "--types", "events", "--segment", "everyone")) == 0
        assert pa.default_memory_pool().backend_name == "system"
    finally:
        pa.set_memory_pool(initial)


def test_a_run_of_too_many_windows_asks_for_yes_before_creating_any(
    live_sandbox: Sandbox, command_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["run", "--base-url", live_sandbox.base_url, "--segment", "everyone", "--types", "events",
            "--start", "1970-01-01T00:00:00Z", "--window", "1h"]  # fmt: skip
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: this run would export 49"), err
    assert "1h events windows for one segment, more than max_windows_per_run=5,000" in err[0]
    assert err[0].endswith("pass --yes (SOURCES__FULLSTORY__MAX_WINDOWS_PER_RUN=0) to go ahead")
    assert live_sandbox.created_exports() == []
