"""The command's DuckDB destination (duckdb_destination.py): events replaced from their files in
one write, with the same rows as dlt's own DuckDB destination (staging, then merge), whatever the
sequence of loads, and never twice when a job runs again."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import dlt
import pytest
from dlt.destinations.impl.duckdb.sql_client import DuckDbSqlClient
from dlt.pipeline.exceptions import PipelineStepFailed

from fullstory_sandbox import Sandbox
from fullstory_sandbox.data import events
from fullstory_source import duckdb_destination
from fullstory_source.duckdb_destination import BucketReplaceJob

from .support import API_KEY, DAY1, DAY2, query, source

SEGMENT = "everyone"
COLUMNS = "event_start, event_type, segment_id, event_bucket, window_start, window_end, window_row"


def pipeline_into(database: Path, destination: Callable[[str], Any], name: str) -> dlt.Pipeline:
    return dlt.pipeline(pipeline_name=name, destination=destination(str(database)), dataset_name="fullstory")


def load(pipeline: dlt.Pipeline, sb: Sandbox, file_format: str | None = None, **args: Any) -> None:
    args = {
        "segment_ids": [SEGMENT],
        "export_types": ["events"],
        "start_date": DAY1,
        "end_date": DAY2,
        **args,
    }
    pipeline.run(source(sb, **args), loader_file_format=file_format)


def sandbox_rows(per_hour: int = 6) -> int:
    return sum(1 for _ in events(SEGMENT, DAY1, DAY2, per_hour))


def test_events_load_without_the_staging_table(live_sandbox: Sandbox, tmp_path: Path) -> None:
    database = tmp_path / "ours.duckdb"
    statements: list[str] = []
    pipeline = pipeline_into(database, duckdb_destination.duckdb, "ours")
    assert pipeline.destination.client_class is duckdb_destination.BucketReplaceClient
    original = DuckDbSqlClient.execute_sql

    def recorded(self: Any, sql: Any, *args: Any, **kwargs: Any) -> Any:
        statements.append(str(sql))
        return original(self, sql, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(DuckDbSqlClient, "execute_sql", recorded)
        load(pipeline, live_sandbox)
    assert query(database, "SELECT count(*) FROM fullstory.events") == [(sandbox_rows(),)]
    staged = query(
        database,
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'fullstory_staging' "
        "AND table_name = 'events'",
    )
    assert staged == [(0,)]
    writes = [s for s in statements if "INSERT INTO" in s and '"events"' in s]
    # one INSERT per load file (windows whose columns differ go to files of their own)
    assert writes and all('INTO "fullstory"."events"' in s and "read_parquet" in s for s in writes), writes
    assert not [s for s in statements if '"fullstory_staging"."events"' in s]


def test_the_same_rows_as_dlts_merge_through_a_sequence_of_loads(
    live_sandbox: Sandbox, tmp_path: Path
) -> None:
    """Into one dataset, by three pipelines (runners without each other's state): a day in 6h
    windows, the day again in one 1d window, its first half again in 1h windows. The same rows
    as dlt's staging and merge, each event once."""
    databases = {}
    for name, destination in (("ours", duckdb_destination.duckdb), ("dlt", dlt.destinations.duckdb)):
        database = tmp_path / f"{name}.duckdb"
        load(pipeline_into(database, destination, f"{name}_6h"), live_sandbox, window="6h")
        load(pipeline_into(database, destination, f"{name}_1d"), live_sandbox, window="1d")
        half = {"window": "1h", "end_date": "2026-10-01T12:00:00Z"}
        load(pipeline_into(database, destination, f"{name}_1h"), live_sandbox, **half)
        databases[name] = database
    ours = query(databases["ours"], f"SELECT {COLUMNS} FROM fullstory.events ORDER BY ALL")
    theirs = query(databases["dlt"], f"SELECT {COLUMNS} FROM fullstory.events ORDER BY ALL")
    assert len(ours) == sandbox_rows()
    assert ours == theirs


def test_a_job_that_runs_again_loads_its_rows_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The job's work committed, the process killed before dlt recorded it: dlt runs it again.
    And a window bigger than a file: its files share a bucket, and each keeps the other's rows."""
    per_hour = 600  # 14,400 rows a day: two reader batches, so two files with a bucket in common
    for setting in ("BUFFER_MAX_ITEMS", "FILE_MAX_ITEMS"):
        monkeypatch.setenv(f"DATA_WRITER__{setting}", "10000")
    database = tmp_path / "ours.duckdb"
    run = BucketReplaceJob.run
    runs: list[str] = []

    def twice(self: BucketReplaceJob) -> None:
        run(self)
        run(self)
        runs.append(self._file_path)

    with Sandbox(
        api_key=API_KEY, flavor="live", events_per_hour=per_hour, workdir=str(tmp_path / "sb")
    ) as sb:
        load(pipeline_into(database, duckdb_destination.duckdb, "earlier"), sb, window="6h")
        monkeypatch.setattr(BucketReplaceJob, "run", twice)
        load(pipeline_into(database, duckdb_destination.duckdb, "ours"), sb, window="1d")
    assert len(runs) == 2
    expected = sandbox_rows(per_hour)
    assert query(database, "SELECT count(*), count(DISTINCT window_row) FROM fullstory.events") == [
        (expected, expected)
    ]
    loads = query(database, "SELECT count(DISTINCT _dlt_load_id) FROM fullstory.events")
    assert loads == [(1,)]  # the second load replaced the first's buckets


def test_jsonl_load_files_replace_the_same_way(live_sandbox: Sandbox, tmp_path: Path) -> None:
    """A pipeline that asks dlt for JSONL load files: the same job, read with read_json."""
    database = tmp_path / "ours.duckdb"
    for name in ("first", "again"):  # the second runner re-exports the day: its rows replace
        load(pipeline_into(database, duckdb_destination.duckdb, name), live_sandbox, "jsonl", window="6h")
    assert query(database, "SELECT count(*), count(DISTINCT _dlt_load_id) FROM fullstory.events") == [
        (sandbox_rows(), 1)
    ]


def test_a_file_format_it_cannot_replace_from_fails_the_load(live_sandbox: Sandbox, tmp_path: Path) -> None:
    pipeline = pipeline_into(tmp_path / "ours.duckdb", duckdb_destination.duckdb, "ours")
    with pytest.raises(PipelineStepFailed, match="cannot load from insert_values files"):
        load(pipeline, live_sandbox, "insert_values", window="6h")
