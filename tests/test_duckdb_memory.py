"""The command's cap on DuckDB's memory while loading, and the raise when a merge needs more:
real pipelines into real DuckDB files, loads that really run out of memory."""

from __future__ import annotations

import json
import logging
import os
from datetime import timedelta
from pathlib import Path

import dlt
import duckdb
import pytest
from dlt.pipeline.exceptions import PipelineStepFailed

from fullstory_sandbox import Sandbox
from fullstory_source import ConfigurationError
from pipelines.duckdb_memory import (
    GLOBAL_CONFIG_ENV,
    RETRIES_ENV,
    DuckDBMemory,
    duckdb_memory,
    out_of_memory,
    parse_size,
)
from pipelines.fullstory_pipeline import main

from .support import DAY1, DAY2, loaded_multiset, make_pipeline
from .test_source import expected_events

SEGMENT = "everyone"


def connection(sb: Sandbox) -> list[str]:
    return ["--base-url", sb.base_url, "--api-flavor", sb.flavor, "--segment", SEGMENT, "--types", "events"]


def duckdb_setting(pipeline: dlt.Pipeline, name: str) -> object:
    with pipeline.sql_client() as client, client.execute_query(f"SELECT current_setting('{name}')") as cursor:
        return cursor.fetchone()[0]


def test_the_command_caps_duckdb_while_it_runs_and_restores_the_config_after(database: Path) -> None:
    pipeline = make_pipeline(database)
    memory = duckdb_memory(pipeline)
    assert memory.limit == 128 * 1000**2
    with memory.applied():
        assert duckdb_setting(pipeline, "memory_limit") == "122.0 MiB"  # DuckDB shows MiB
        assert duckdb_setting(pipeline, "threads") == 1
        assert os.environ[RETRIES_ENV] == "1"  # one failed load per cap level, not dlt's 5
    assert GLOBAL_CONFIG_ENV not in os.environ
    assert RETRIES_ENV not in os.environ
    assert duckdb_setting(pipeline, "memory_limit") != "122.0 MiB"  # DuckDB's default again


def test_dlt_retries_configured_by_the_user_stay(database: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(RETRIES_ENV, "3")
    with duckdb_memory(make_pipeline(database)).applied():
        assert os.environ[RETRIES_ENV] == "3"
    assert os.environ[RETRIES_ENV] == "3"


def test_the_cap_is_raised_at_most_to_duckdbs_own_default(database: Path) -> None:
    memory = duckdb_memory(make_pipeline(database))
    assert memory.ceiling > 128 * 1000**2
    with duckdb.connect() as con:
        default = con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]
    assert memory.ceiling == parse_size(default)


def test_a_configured_limit_and_off(database: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pipeline = make_pipeline(database)
    monkeypatch.setenv("FULLSTORY_PIPELINE__DUCKDB_MEMORY_LIMIT", "256MB")
    assert duckdb_memory(pipeline).limit == 256 * 1000**2
    monkeypatch.setenv("FULLSTORY_PIPELINE__DUCKDB_MEMORY_LIMIT", "off")
    memory = duckdb_memory(pipeline)
    assert memory.limit is None
    with memory.applied():
        assert GLOBAL_CONFIG_ENV not in os.environ


def test_duckdb_settings_of_the_user_win(database: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mine = json.dumps({"memory_limit": "300MB", "threads": 2})
    monkeypatch.setenv(GLOBAL_CONFIG_ENV, mine)
    pipeline = make_pipeline(database)
    memory = duckdb_memory(pipeline)
    assert memory.limit is None
    with memory.applied():
        assert os.environ[GLOBAL_CONFIG_ENV] == mine
        assert duckdb_setting(pipeline, "threads") == 2
    assert os.environ[GLOBAL_CONFIG_ENV] == mine


def test_other_destinations_are_left_alone(tmp_path: Path) -> None:
    pipeline = dlt.pipeline("fs", destination=dlt.destinations.filesystem(str(tmp_path / "bucket")))
    assert duckdb_memory(pipeline).limit is None


@pytest.mark.parametrize(
    ("text", "size"), [("64MB", 64_000_000), ("1.5GiB", 1_610_612_736), ("2000 KB", 2_000_000)]
)
def test_sizes_are_read_like_duckdb_writes_them(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["0MB", "512KB", "lots", "64 apples", "-5MB"])
def test_sizes_that_cannot_be_a_cap_are_refused(text: str) -> None:
    with pytest.raises(ConfigurationError, match="is not a size of at least 1MB"):
        parse_size(text)


def test_a_bad_limit_is_a_clear_error_and_loads_nothing(
    live_sandbox: Sandbox,
    command_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("FULLSTORY_PIPELINE__DUCKDB_MEMORY_LIMIT", "lots")
    day = ["--start", "2026-10-01T00:00:00Z", "--end", "2026-10-02T00:00:00Z"]
    code = main(["run", *connection(live_sandbox), *day])
    assert code == 2
    assert "fullstory_pipeline.duckdb_memory_limit = 'lots' is not a size" in capsys.readouterr().err
    assert live_sandbox.created_exports() == []
    assert not command_env.exists()


def test_a_merge_that_outgrows_the_cap_is_loaded_again_with_more_memory_exactly_once(
    live_sandbox: Sandbox,
    command_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # 1 MB is too little for DuckDB to load or merge even this small window, and to read the
    # pipeline state once there is one: each command has to grow the cap, step by step
    monkeypatch.setenv("FULLSTORY_PIPELINE__DUCKDB_MEMORY_LIMIT", "1MB")
    day = ["--start", "2026-10-01T00:00:00Z", "--end", "2026-10-02T00:00:00Z"]
    with caplog.at_level(logging.WARNING, logger="fullstory_pipeline"):
        assert main(["run", *connection(live_sandbox), "--window", "6h", *day]) == 0
        assert main(["backfill", *connection(live_sandbox), "--window", "1d", "--force", *day]) == 0
    messages = [r.getMessage() for r in caplog.records if r.getMessage().startswith("DuckDB needed more")]
    assert any("loading the same package again" in m for m in messages), messages
    assert any("to read the pipeline state; starting again" in m for m in messages), messages
    assert any(m.endswith("with 2000KB") for m in messages), messages
    assert len(live_sandbox.created_exports()) == 5  # 4 windows + the backfill's one, none twice
    # the 1d window replaced the four 6h windows' rows: each event once, none lost
    expected = expected_events(live_sandbox, SEGMENT, DAY1, DAY2, timedelta(days=1))
    assert loaded_multiset(command_env, "events") == expected
    assert GLOBAL_CONFIG_ENV not in os.environ


def test_running_out_of_memory_while_committing_is_known_as_such() -> None:
    """The cap hit at commit is a TransactionException, wrapped by dlt, not an "Out of Memory
    Error": the full suite once failed on it at 7.6 MiB."""
    commit = duckdb.TransactionException(
        "TransactionContext Error: Failed to commit: could not allocate block of size 1.9 KiB "
        "(7.6 MiB/7.6 MiB used)"
    )
    try:
        raise RuntimeError("Job with job_id=events.sql had 1 retries") from commit
    except RuntimeError as wrapped:
        assert out_of_memory(wrapped)
    assert not out_of_memory(duckdb.TransactionException("TransactionContext Error: Conflict on update"))


def test_a_failure_other_than_running_out_of_memory_is_not_retried(database: Path) -> None:
    memory = DuckDBMemory(1_000_000)
    pipeline = make_pipeline(database)
    calls: list[int] = []

    def failing_step() -> None:
        calls.append(1)
        pipeline.run([{"id": 1}], table_name="t", columns={"id": {"data_type": "not-a-type"}})  # type: ignore[dict-item]

    with memory.applied(), pytest.raises(PipelineStepFailed) as failed:
        memory.run(pipeline, failing_step)
    assert "Out of Memory" not in str(failed.value)
    assert calls == [1]
    assert memory.limit == 1_000_000
