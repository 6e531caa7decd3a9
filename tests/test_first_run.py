"""A new user's first real run, as the README tells it: the command and the library snippet with
nothing but the API key and the base URL set (no DuckDB path), in an empty working directory."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import Counter
from datetime import timedelta
from pathlib import Path

import dlt
import pytest

from fullstory_sandbox import Sandbox
from pipelines.fullstory_pipeline import main

from .support import API_KEY, DAY1, DAY2, DAY3, expected_multiset, loaded_multiset, query

REPO = Path(__file__).resolve().parents[1]
DAY4 = DAY3 + timedelta(days=1)
COMMAND = Path(sys.executable).with_name("fullstory-pipeline")  # the installed entry point


def only_key_and_base_url(sb: Sandbox) -> dict[str, str]:
    """The environment of a user who followed "Use with your FullStory account" (conftest has
    removed every other FullStory and DuckDB setting; DLT_DATA_DIR isolates the test)."""
    return {**os.environ, "SOURCES__FULLSTORY__API_KEY": API_KEY, "SOURCES__FULLSTORY__BASE_URL": sb.base_url}


def command(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(COMMAND), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


@pytest.fixture
def quick_sandbox(tmp_path: Path) -> Sandbox:
    with Sandbox(api_key=API_KEY, flavor="live", operation_polls=1, workdir=str(tmp_path / "sb")) as sb:
        yield sb


def test_the_documented_run_works_with_defaults(quick_sandbox: Sandbox, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    env = only_key_and_base_url(quick_sandbox)
    readme_run = [
        "run",
        "--segment",
        "everyone",
        "--types",
        "events,individuals",
        "--start",
        "2026-10-01T00:00:00Z",
    ]
    result = command(work, env, *readme_run, "--end", "2026-10-03T00:00:00Z")
    assert result.returncode == 0, result.stderr[-3000:]
    database = work / "fullstory_pipeline.duckdb"  # the default file, named apart from the dataset
    assert sorted(p.name for p in work.iterdir()) == ["fullstory_pipeline.duckdb"]

    # the query the README shows works on the default file
    events = len(quick_sandbox.expected_rows("events", "everyone", DAY1, DAY3))
    assert query(database, "SELECT count(*) FROM fullstory.events")[0][0] == events
    # every row says which load wrote it (dlt adds it to Arrow rows only when told to)
    for table in ("events", "individuals"):
        load_ids = query(database, f"SELECT DISTINCT _dlt_load_id FROM fullstory.{table}")
        loads = query(database, "SELECT load_id FROM fullstory._dlt_loads WHERE status = 0")
        assert load_ids and {row[0] for row in load_ids} <= {row[0] for row in loads}

    # later: `--end` alone, with cursors in place, exports only the next day
    quick_sandbox.clear_log()
    result = command(work, env, "run", "--segment", "everyone", "--end", "2026-10-04T00:00:00Z")
    assert result.returncode == 0, result.stderr[-3000:]
    created = sorted((c["type"], c["timeRange"]["start"]) for c in quick_sandbox.created_exports())
    assert created == [("TYPE_EVENT", "2026-10-03T00:00:00Z"), ("TYPE_INDIVIDUAL", "2026-10-03T00:00:00Z")]
    events = len(quick_sandbox.expected_rows("events", "everyone", DAY1, DAY4))
    assert query(database, "SELECT count(*) FROM fullstory.events")[0][0] == events

    status = command(work, env, "status")
    assert status.returncode == 0, status.stderr[-3000:]
    assert re.search(r"everyone\s+events\s+2026-10-04T00:00:00Z\s+Completed", status.stdout)


def readme_snippet() -> str:
    text = (REPO / "README.md").read_text()
    section = text.split("## Using the source in your own pipeline", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_readme_snippet_works_and_reads_back_through_dataset(
    quick_sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    env = only_key_and_base_url(quick_sandbox)
    result = subprocess.run(
        [sys.executable, "-c", readme_snippet()],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    expected = quick_sandbox.expected_rows("events", "everyone", DAY1, DAY2)
    assert f"{len(expected)} events" in result.stdout

    # and in this process, the way an analyst reads it: dlt's pipeline.dataset()
    monkeypatch.chdir(work)
    pipeline = dlt.pipeline("fullstory_pipeline", destination="duckdb", dataset_name="fullstory")
    dataset = pipeline.dataset()
    assert {"segments", "events", "export_runs"} <= set(dataset.tables)
    rows = dataset.events.select("event_start", "indv_id", "_dlt_load_id").fetchall()
    assert len(rows) == len(expected)
    assert all(load_id for *_, load_id in rows)
    # the configured segment, read with GET /segments/v1/{id} (no paging through every segment)
    assert [r[0] for r in dataset.segments.select("id").fetchall()] == ["everyone"]
    assert [r.path for r in quick_sandbox.requests("GET", "/segments/v1")] == ["/segments/v1/everyone"]


def window_rows(sb: Sandbox, windows: list[tuple[str, str]]) -> Counter[str]:
    out: Counter[str] = Counter()
    for start, end in windows:
        lo, hi = (DAY1 + timedelta(minutes=int(m)) for m in (start, end))
        extra = {"segment_id": "everyone", "window_start": lo, "window_end": hi}
        out += expected_multiset(sb.expected_rows("events", "everyone", lo, hi), extra)
    return out


def test_windows_of_any_accepted_length_stay_exact_over_several_runs(
    live_sandbox: Sandbox, command_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Events are replaced per 15-minute bucket: consecutive runs with windows of different
    lengths (and a bridging window) must neither lose nor duplicate a row."""
    base = ["run", "--base-url", live_sandbox.base_url, "--segment", "everyone", "--types", "events"]
    first = ["--start", "2026-10-01T00:00:00Z", "--end", "2026-10-01T01:00:00Z"]
    assert main([*base, "--window", "30m", *first]) == 0
    assert main([*base, "--window", "15m", "--end", "2026-10-01T01:30:00Z"]) == 0
    assert main([*base, "--window", "1h", "--end", "2026-10-01T03:00:00Z"]) == 0
    windows = [("0", "30"), ("30", "60"), ("60", "75"), ("75", "90"), ("90", "120"), ("120", "180")]
    assert loaded_multiset(command_env, "events") == window_rows(live_sandbox, windows)
    assert len(live_sandbox.created_exports()) == 6

    # a window shorter than a bucket is refused before anything is exported
    live_sandbox.clear_log()
    capsys.readouterr()
    assert main([*base, "--window", "5m", "--end", "2026-10-01T04:00:00Z"]) == 2
    err = capsys.readouterr().err
    assert "window='5m'" in err and "15-minute buckets" in err and "Traceback" not in err
    assert live_sandbox.created_exports() == []


def test_no_api_key_is_one_line_and_exit_2(tmp_path: Path) -> None:
    result = command(tmp_path, dict(os.environ), "run", "--segment", "everyone")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "SOURCES__FULLSTORY__API_KEY" in lines[0] and ".dlt/secrets.toml" in lines[0]
    assert list(tmp_path.glob("*.duckdb")) == []


def test_a_duckdb_file_named_like_the_dataset_is_refused(live_sandbox: Sandbox, tmp_path: Path) -> None:
    """DuckDB cannot tell catalog `fullstory` (the file) from schema `fullstory` (the dataset)."""
    result = command(
        tmp_path,
        only_key_and_base_url(live_sandbox),
        "run",
        "--pipeline-name",
        "fullstory",
        "--segment",
        "everyone",
    )
    assert result.returncode == 2
    assert "fullstory.duckdb is named like the dataset 'fullstory'" in result.stderr
    assert "Traceback" not in result.stderr
    assert live_sandbox.requests() == []


def test_status_of_a_pipeline_that_does_not_exist_creates_nothing(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    result = command(work, dict(os.environ), "status")
    assert result.returncode == 2
    assert "no pipeline 'fullstory_pipeline'" in result.stderr and "Traceback" not in result.stderr
    assert list(work.iterdir()) == []
    pipelines = Path(os.environ["DLT_DATA_DIR"]) / "pipelines"
    assert not pipelines.exists() or list(pipelines.iterdir()) == []


def test_status_exits_1_when_the_last_run_had_failed_windows(
    live_sandbox: Sandbox,
    command_env: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    args = [
        "--base-url",
        live_sandbox.base_url,
        "--segment",
        "everyone",
        "--types",
        "events",
        "--window",
        "6h",
    ]
    day1 = ["--start", "2026-10-01T00:00:00Z", "--end", "2026-10-02T00:00:00Z"]
    assert main(["run", *args, *day1]) == 0
    assert main(["status"]) == 0

    live_sandbox.faults.fail_operations(error_details="export quota exceeded", segment_id="everyone")
    assert main(["run", *args, "--end", "2026-10-03T00:00:00Z"]) == 1
    capsys.readouterr()
    assert main(["status"]) == 1
    out = capsys.readouterr().out
    assert "failed window(s)" in out and "export quota exceeded" in out

    # on a fresh machine (no local state) status reads the destination and says the same
    monkeypatch.setenv("DLT_DATA_DIR", str(command_env.parent / "fresh-machine"))
    assert main(["status"]) == 1
    assert "export quota exceeded" in capsys.readouterr().out
