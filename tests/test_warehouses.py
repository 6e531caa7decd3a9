"""BigQuery and Snowflake without a warehouse: dlt builds their clients without connecting, so the
real pipeline (sandbox -> source -> warehouse hints -> extract -> normalize) runs as far as the load
step, and the tests check what the load step would send: the load files, the CREATE/ALTER TABLE
statements and the merge statements. The merge statements are also run, translated by sqlglot,
against DuckDB tables built from the same DDL, to check which rows they replace.

The opt-in tests at the end load into a real warehouse (marker `live_warehouse`); they run only
when that warehouse's credentials are in the environment and are reported as skipped otherwise.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import tomllib
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import dlt
import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlglot
from dlt.common.destination.exceptions import UnsupportedDataType
from dlt.common.utils import uniq_id
from dlt.destinations.exceptions import DestinationConnectionError
from dlt.pipeline.exceptions import PipelineStepFailed
from sqlglot import exp

from fullstory_sandbox import Sandbox
from fullstory_source.runs import RUNS_TABLE
from fullstory_source.warehouses import warehouse_of
from pipelines.fullstory_pipeline import build_parser, main, make_pipeline

from .support import API_KEY, DAY1, DAY2, source

SEGMENT = "everyone"
END = DAY1 + timedelta(hours=12)  # two 6h windows per export type
LIVE_SEGMENTS = ["everyone", "power-users"]
# Well-formed but fake: dlt resolves its configuration from these, nothing connects.
FAKE_CREDENTIALS = {
    "DESTINATION__BIGQUERY__CREDENTIALS__PROJECT_ID": "test-project",
    "DESTINATION__BIGQUERY__CREDENTIALS__CLIENT_EMAIL": "loader@test-project.iam.gserviceaccount.com",
    "DESTINATION__BIGQUERY__CREDENTIALS__PRIVATE_KEY": (
        "-----BEGIN PRIVATE KEY-----\nnot-a-key\n-----END PRIVATE KEY-----\n"
    ),
    "DESTINATION__SNOWFLAKE__CREDENTIALS__HOST": "kgiotue-wn98412",
    "DESTINATION__SNOWFLAKE__CREDENTIALS__USERNAME": "LOADER",
    "DESTINATION__SNOWFLAKE__CREDENTIALS__PASSWORD": "not-a-password",
    "DESTINATION__SNOWFLAKE__CREDENTIALS__DATABASE": "FULLSTORY_DB",
    "DESTINATION__SNOWFLAKE__CREDENTIALS__WAREHOUSE": "LOADING",
    "DESTINATION__SNOWFLAKE__CREDENTIALS__ROLE": "LOADER",
}


@pytest.fixture
def fake_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(("DESTINATION__BIGQUERY__", "DESTINATION__SNOWFLAKE__", "GOOGLE_APPLICATION")):
            monkeypatch.delenv(name)
    for name, value in FAKE_CREDENTIALS.items():
        monkeypatch.setenv(name, value)


def extract(sb: Sandbox, destination: Any, staging: Any = None, **overrides: Any) -> dlt.Pipeline:
    """Extract and normalize 12 hours of two segments for `destination`, as a user's own dlt
    pipeline does: no call of ours besides `fullstory_source`, whose resources apply their table
    design for the pipeline's destination when they start."""
    pipeline = dlt.pipeline(
        "fullstory_wh", destination=destination, staging=staging, dataset_name="fullstory"
    )
    src = source(sb, segment_ids=[SEGMENT], start_date=DAY1, end_date=END)
    for name, hints in overrides.items():
        src.resources[name].apply_hints(**hints)
    pipeline.extract(src)
    pipeline.normalize()
    return pipeline


def new_jobs(pipeline: dlt.Pipeline) -> list[Any]:
    (load_id,) = pipeline.list_normalized_load_packages()
    return pipeline.get_load_package_info(load_id).jobs["new_jobs"]


def formats(pipeline: dlt.Pipeline) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for job in new_jobs(pipeline):
        out.setdefault(job.job_file_info.table_name, set()).add(job.job_file_info.file_format)
    return out


def create_sql(client: Any, table: str) -> str:
    columns = list(client.schema.get_table_columns(table).values())
    (sql,) = client._get_table_update_sql(table, columns, False)
    return sql


def merge_sql(client: Any, table: str) -> list[str]:
    """The statements the loader runs after the staging tables are loaded: one per line of the
    followup job file, exactly as dlt writes it."""
    (job,) = client._create_merge_followup_jobs([client.prepare_load_table(table)])
    path = Path(job.new_file_path())
    try:
        return path.read_text().splitlines()
    finally:
        path.unlink()


def table_properties(sql: str, dialect: str) -> tuple[exp.Create, list[str] | None, exp.Expression | None]:
    """(parsed statement, cluster columns, partition expression) of a CREATE TABLE."""
    create = sqlglot.parse_one(sql, read=dialect)
    assert isinstance(create, exp.Create)
    cluster = create.find(exp.ClusterProperty)
    partition = create.find(exp.PartitionedByProperty)
    columns = [c.name for c in cluster.expressions] if cluster else None
    return create, columns, partition.this if partition else None


def column_types(create: exp.Create, dialect: str) -> dict[str, str]:
    return {c.name: c.args["kind"].sql(dialect) for c in create.find_all(exp.ColumnDef)}


def warehouse_keys(table: dict[str, Any]) -> set[str]:
    keys = {k for k in table if k.startswith("x-bigquery") or k == "file_format"}
    for column in table["columns"].values():
        keys |= {k for k in column if k.startswith("x-bigquery") or k == "cluster"}
    return keys


def test_destinations_are_recognised() -> None:
    assert warehouse_of("bigquery") == "bigquery"
    assert warehouse_of("dlt.destinations.snowflake") == "snowflake"
    assert warehouse_of(dlt.destinations.bigquery()) == "bigquery"
    assert warehouse_of(dlt.destinations.snowflake(destination_name="prod")) == "snowflake"
    assert warehouse_of(dlt.destinations.duckdb()) is None
    assert warehouse_of("postgres") is None
    assert warehouse_of(None) is None


def test_duckdb_gets_no_warehouse_hints(live_sandbox: Sandbox, database: Path) -> None:
    pipeline = extract(live_sandbox, dlt.destinations.duckdb(str(database)))
    for table in ("events", "individuals", RUNS_TABLE):
        assert warehouse_keys(pipeline.default_schema.tables[table]) == set()


def test_bigquery_hints_files_and_schema_check(live_sandbox: Sandbox, fake_credentials: None) -> None:
    pipeline = extract(live_sandbox, "bigquery")
    tables = pipeline.default_schema.tables
    events, individuals = tables["events"], tables["individuals"]
    assert events["columns"]["event_start"]["x-bigquery-partition"] is True
    assert events["x-bigquery-cluster-columns"] == ["segment_id", "event_type"]
    assert individuals["x-bigquery-cluster-columns"] == ["segment_id"]
    assert not any(c.get("x-bigquery-partition") for c in individuals["columns"].values())
    # the keys of the window replace are untouched
    assert [c for c, col in events["columns"].items() if col.get("merge_key")] == [
        "segment_id",
        "event_bucket",
    ]
    assert {c for c, col in individuals["columns"].items() if col.get("primary_key")} == {
        "segment_id",
        "indv_id",
    }
    assert individuals["columns"]["window_end"]["dedup_sort"] == "desc"
    # export_runs is written by the same resources but keeps none of their table design
    assert warehouse_keys(tables[RUNS_TABLE]) == set()
    # list-typed custom variables are json columns: BigQuery gets them from JSONL files
    assert events["columns"]["evt_tags_strs"]["data_type"] == "json"
    assert formats(pipeline)["events"] == formats(pipeline)["individuals"] == {"jsonl"}
    client = pipeline.destination_client()
    client.verify_schema(None, [job.job_file_info for job in new_jobs(pipeline)])  # what `load` checks first


def test_bigquery_refuses_json_columns_in_parquet(live_sandbox: Sandbox, fake_credentials: None) -> None:
    """Why BigQuery tables load from JSONL: from Parquet, dlt stops the load before it starts."""
    pipeline = extract(live_sandbox, "bigquery", events={"file_format": "parquet"})  # a user choice is kept
    assert formats(pipeline)["events"] == {"parquet"}
    client = pipeline.destination_client()
    with pytest.raises(UnsupportedDataType, match="evt_"):
        client.verify_schema(None, [job.job_file_info for job in new_jobs(pipeline)])


def test_bigquery_ddl(live_sandbox: Sandbox, fake_credentials: None) -> None:
    client = extract(live_sandbox, "bigquery").destination_client()
    create, cluster, partition = table_properties(create_sql(client, "events"), "bigquery")
    assert create.this.this.sql("bigquery") == "`test-project`.`fullstory`.`events`"
    assert partition is not None and partition.sql("bigquery") == "DATE(`event_start`)"
    assert cluster == ["segment_id", "event_type"]
    types = column_types(create, "bigquery")
    assert types["event_start"] == types["event_bucket"] == "TIMESTAMP"
    assert types["indv_id"] == "INT64" and types["user_ltv_real"] == "FLOAT64"
    assert types["evt_tags_strs"] == types["evt_codes_ints"] == "JSON"
    not_null = {c.name for c in create.find_all(exp.ColumnDef) if c.find(exp.NotNullColumnConstraint)}
    assert {"event_start", "segment_id", "event_bucket", "window_start", "window_end"} <= not_null

    _, cluster, partition = table_properties(create_sql(client, "individuals"), "bigquery")
    assert (cluster, partition) == (["segment_id"], None)
    _, cluster, partition = table_properties(create_sql(client, RUNS_TABLE), "bigquery")
    assert (cluster, partition) == (None, None)
    # a custom variable seen later: BigQuery cannot change partitioning or clustering in ALTER
    new_column = {"name": "evt_plan_str", "data_type": "text", "nullable": True}
    (alter,) = client._get_table_update_sql("events", [new_column], True)
    assert alter.startswith("ALTER TABLE") and "ADD COLUMN `evt_plan_str` STRING" in alter
    assert "CLUSTER" not in alter and "PARTITION" not in alter


def test_snowflake_hints_files_and_ddl(live_sandbox: Sandbox, fake_credentials: None) -> None:
    pipeline = extract(live_sandbox, "snowflake")
    tables = pipeline.default_schema.tables
    assert warehouse_keys(tables[RUNS_TABLE]) == set()
    # Snowflake loads json columns from Parquet (VARIANT): arrow batches stay Parquet
    assert formats(pipeline)["events"] == formats(pipeline)["individuals"] == {"parquet"}
    client = pipeline.destination_client()
    client.verify_schema(None, [job.job_file_info for job in new_jobs(pipeline)])

    create, cluster, partition = table_properties(create_sql(client, "events"), "snowflake")
    assert create.this.this.sql("snowflake") == '"FULLSTORY"."EVENTS"'
    # dlt writes the key in the table's column order
    assert (cluster, partition) == (["EVENT_TYPE", "SEGMENT_ID", "EVENT_BUCKET"], None)
    types = column_types(create, "snowflake")
    assert types["EVENT_START"] == types["EVENT_BUCKET"] == "TIMESTAMPLTZ"
    assert types["INDV_ID"] == "DECIMAL(19, 0)" and types["EVT_TAGS_STRS"] == "VARIANT"
    _, cluster, _ = table_properties(create_sql(client, "individuals"), "snowflake")
    assert cluster == ["SEGMENT_ID"]
    _, cluster, _ = table_properties(create_sql(client, RUNS_TABLE), "snowflake")
    assert cluster is None
    # dlt sets the cluster key again whenever it alters the table: a key set by hand is replaced
    new_column = {"name": "evt_plan_str", "data_type": "text", "nullable": True}
    add, recluster = client._get_table_update_sql("events", [new_column], True)
    assert "ADD COLUMN" in add and '"EVT_PLAN_STR" VARCHAR' in add
    assert (
        recluster == 'ALTER TABLE "FULLSTORY"."EVENTS"\nCLUSTER BY ("EVENT_TYPE","SEGMENT_ID","EVENT_BUCKET")'
    )


# destination -> (catalog, table name template, staging table name template) in its SQL
QUALIFIED = {
    "bigquery": (
        "test-project",
        "`test-project`.`fullstory`.`{}`",
        "`test-project`.`fullstory_staging`.`{}`",
    ),
    "snowflake": (None, '"FULLSTORY"."{}"', '"FULLSTORY_STAGING"."{}"'),
}


@pytest.mark.parametrize("destination", ["bigquery", "snowflake"])
def test_merge_sql_is_the_window_replace(
    live_sandbox: Sandbox, fake_credentials: None, destination: str
) -> None:
    dialect = destination  # sqlglot's dialect names are dlt's destination names
    dataset, table, staging = QUALIFIED[destination]
    client = extract(live_sandbox, destination).destination_client()

    def name(t: str) -> str:
        return t.upper() if destination == "snowflake" else t

    def q(column: str) -> str:
        return client.sql_client.escape_column_name(name(column))

    events = merge_sql(client, "events")
    target, staged = table.format(name("events")), staging.format(name("events"))
    # delete every row of the staged (segment, bucket) keys, then insert all staged rows as they are:
    # events have no unique key, so identical events must both stay
    assert events[0] == (
        f"DELETE FROM {target} AS d WHERE EXISTS (SELECT 1 FROM {staged} AS s WHERE "
        f"d.{q('segment_id')} = s.{q('segment_id')} AND d.{q('event_bucket')} = s.{q('event_bucket')})"
    )
    assert events[1].startswith(f"INSERT INTO {target}(") and events[1].endswith(f"FROM {staged} WHERE 1 = 1")
    assert len(events) == 2 and "ROW_NUMBER" not in events[1]

    individuals = merge_sql(client, "individuals")
    target, staged = table.format(name("individuals")), staging.format(name("individuals"))
    # the newest window wins (tables.py): delete only the rows not newer than the incoming one...
    alias = client.sql_client.make_qualified_table_name_path(name("individuals"))[-1]
    assert individuals[0] == (
        f"DELETE FROM {target} WHERE EXISTS (SELECT 1 FROM {staged} AS s WHERE "
        f"s.segment_id = {alias}.segment_id AND s.indv_id = {alias}.indv_id AND "
        f"s.window_end >= {alias}.window_end);"
    )
    # ...and insert only the incoming rows for which no newer row stayed
    person = "CONCAT(segment_id, '/', CAST(indv_id AS STRING))"
    assert (
        individuals[1]
        .rstrip()
        .endswith(
            f"NOT IN (SELECT {person} FROM {target} WHERE segment_id IS NOT NULL AND indv_id IS NOT NULL)))"
        )
    )
    assert (
        f"ROW_NUMBER() OVER (partition BY {q('indv_id')}, {q('segment_id')} ORDER BY {q('window_end')} DESC)"
        in individuals[1]
    )
    assert len(individuals) == 2

    for statement in events + individuals:
        sqlglot.parse_one(statement, read=dialect)  # valid in the warehouse's dialect
    replay_in_duckdb(client, dialect, dataset, events, individuals)


def replay_in_duckdb(
    client: Any, dialect: str, catalog: str | None, events_sql: list[str], individuals_sql: list[str]
) -> None:
    """Run the warehouse's merge statements, translated by sqlglot, on DuckDB tables created from the
    warehouse's own DDL, and check the rows they leave."""
    con = duckdb.connect()
    if catalog:
        con.execute(f"ATTACH ':memory:' AS \"{catalog}\"")
        con.execute(f'USE "{catalog}"')
    for dataset in ("fullstory", "fullstory_staging"):
        con.execute(f'CREATE SCHEMA "{dataset}"')
    for table in ("events", "individuals"):
        for staging in (False, True):
            if staging:
                with client.sql_client.with_staging_dataset():
                    ddl = create_sql(client, table)
            else:
                ddl = create_sql(client, table)
            create = sqlglot.parse_one(ddl, read=dialect)
            create.set("properties", None)  # no partitioning or clustering in DuckDB
            con.execute(create.sql("duckdb"))

    def insert(table: str, staging: bool, rows: list[dict[str, Any]]) -> None:
        schema = "fullstory_staging" if staging else "fullstory"
        for row in rows:
            names = ", ".join(f'"{k}"' for k in row)
            marks = ", ".join("?" for _ in row)
            con.execute(f'INSERT INTO "{schema}"."{table}" ({names}) VALUES ({marks})', list(row.values()))

    positions = itertools.count()

    def event(segment: str, minute: int, label: str, window_hours: int = 6) -> dict[str, Any]:
        start = DAY1 + timedelta(minutes=minute)
        return {
            "window_row": next(positions),
            "event_start": start,
            "event_type": label,
            "segment_id": segment,
            "event_bucket": start.replace(minute=start.minute // 15 * 15),
            "window_start": DAY1,
            "window_end": DAY1 + timedelta(hours=window_hours),
            "_dlt_load_id": "load-1",
        }

    # loaded before, with 1d windows: segment a has buckets 00:00 and 00:15, segment b 00:00
    insert(
        "events",
        False,
        [event("a", 1, "old-a-0", 24), event("a", 16, "old-a-15", 24), event("b", 2, "old-b-0", 24)],
    )
    # a re-export of segment a holding only bucket 00:00, with two identical events
    insert("events", True, [event("a", 3, "new-a-0"), event("a", 3, "new-a-0")])
    for statement in events_sql:
        con.execute(sqlglot.transpile(statement, read=dialect, write="duckdb")[0])
    left = Counter(r[0] for r in con.execute('SELECT event_type FROM "fullstory"."events"').fetchall())
    assert left == Counter({"new-a-0": 2, "old-a-15": 1, "old-b-0": 1})

    def person(segment: str, indv_id: int, window_end_hour: int, label: str) -> dict[str, Any]:
        return {
            "indv_id": indv_id,
            "segment_id": segment,
            "display_name": label,
            "window_start": DAY1,
            "window_end": DAY1 + timedelta(hours=window_end_hour),
            "_dlt_load_id": "load-1",
        }

    insert(
        "individuals",
        False,
        [person("a", 1, 6, "old-a1"), person("a", 2, 6, "old-a2"), person("b", 1, 6, "old-b1"),
         person("a", 5, 18, "a5-from-18h")],
    )  # fmt: skip
    # one run loaded two windows in which person a/1 appears: the newest window wins; a/5 is
    # already loaded from a newer window than this load's (it loads out of order): that row stays
    insert(
        "individuals",
        True,
        [person("a", 1, 6, "new-a1-06h"), person("a", 1, 12, "new-a1-12h"), person("a", 5, 12, "a5-from-12h"),
         person("a", 6, 12, "new-a6")],
    )  # fmt: skip
    for statement in individuals_sql:
        con.execute(sqlglot.transpile(statement, read=dialect, write="duckdb")[0])
    rows = con.execute(
        'SELECT segment_id, indv_id, display_name FROM "fullstory"."individuals" ORDER BY 1, 2'
    ).fetchall()
    assert rows == [
        ("a", 1, "new-a1-12h"), ("a", 2, "old-a2"), ("a", 5, "a5-from-18h"), ("a", 6, "new-a6"),
        ("b", 1, "old-b1"),
    ]  # fmt: skip


@pytest.mark.parametrize(("destination", "events_format"), [("snowflake", "parquet"), ("bigquery", "jsonl")])
def test_staged_load_files(
    live_sandbox: Sandbox,
    fake_credentials: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    destination: str,
    events_format: str,
) -> None:
    """With filesystem staging the warehouse copies these files from the bucket: their format,
    columns and types."""
    # a local bucket: with gs:// or s3:// the client of the bucket would need real credentials
    monkeypatch.setenv("DESTINATION__FILESYSTEM__BUCKET_URL", (tmp_path / "bucket").as_uri())
    pipeline = extract(live_sandbox, destination, staging="filesystem")
    assert pipeline.staging is not None and pipeline.staging.destination_type.endswith("filesystem")
    assert formats(pipeline)["events"] == {events_format}
    pipeline.destination_client().verify_schema(None, [job.job_file_info for job in new_jobs(pipeline)])
    if events_format != "parquet":
        return
    expected = len(live_sandbox.expected_rows("events", SEGMENT, DAY1, END))
    files = [Path(job.file_path) for job in new_jobs(pipeline) if job.job_file_info.table_name == "events"]
    table = pa.concat_tables(pq.read_table(f) for f in files)
    assert table.num_rows == expected
    check_event_file_schema(table.schema)


def check_event_file_schema(schema: pa.Schema) -> None:
    utc = pa.timestamp("us", tz="UTC")
    assert schema.field("event_start").type == schema.field("event_bucket").type == utc
    assert schema.field("segment_id").type == pa.string()
    assert schema.field("indv_id").type == pa.int64()
    assert schema.field("user_ltv_real").type == pa.float64()
    assert pa.types.is_list(schema.field("evt_tags_strs").type)
    assert pa.types.is_list(schema.field("evt_codes_ints").type)
    # the load that wrote each row (dlt adds it to Arrow data at extract); no per-row _dlt_id
    load_id = schema.field("_dlt_load_id").type
    assert pa.types.is_string(getattr(load_id, "value_type", load_id))  # plain or dictionary-encoded
    assert [n for n in schema.names if n.startswith("_dlt")] == ["_dlt_load_id"]


def test_staged_load_copies_parquet_into_the_bucket(live_sandbox: Sandbox, tmp_path: Path) -> None:
    """A complete staged load with a local bucket: dlt's filesystem staging copies the load files
    into the bucket and hands their URLs to the destination. The destination here is dlt's `dummy`
    (BigQuery and Snowflake cannot run here), with Parquet as its file format."""
    bucket = tmp_path / "bucket"
    pipeline = dlt.pipeline(
        "fullstory_staged",
        destination=dlt.destinations.dummy(loader_file_format="parquet", completed_prob=1.0),
        staging=dlt.destinations.filesystem(bucket.as_uri()),
        dataset_name="fullstory",
    )
    src = source(live_sandbox, segment_ids=[SEGMENT], start_date=DAY1, end_date=END)
    info = pipeline.run(src)
    assert not info.has_failed_jobs
    staged = sorted((bucket / "fullstory" / "events").glob("*.parquet"))
    assert staged, sorted(p.relative_to(bucket) for p in bucket.rglob("*"))
    table = pa.concat_tables(pq.read_table(f) for f in staged)
    assert table.num_rows == len(live_sandbox.expected_rows("events", SEGMENT, DAY1, END))
    check_event_file_schema(table.schema)
    assert sorted((bucket / "fullstory" / "individuals").glob("*.parquet"))


def test_staging_option_of_the_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DESTINATION__FILESYSTEM__BUCKET_URL", "gs://fullstory-staging/dlt")
    args = build_parser().parse_args(["run", "--destination", "bigquery", "--staging", "filesystem"])
    pipeline = make_pipeline(args)
    assert pipeline.destination.destination_type == "dlt.destinations.bigquery"
    assert pipeline.staging.destination_type == "dlt.destinations.filesystem"
    assert make_pipeline(build_parser().parse_args(["status", "--destination", "snowflake"])).staging is None
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "--staging", "s3"])


def test_the_command_loads_bigquery_with_its_table_design(
    live_sandbox: Sandbox, fake_credentials: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`fullstory-pipeline run --destination bigquery` runs here up to the first statement sent to
    BigQuery, which fails (the key is fake); the load package it leaves is what it would load."""
    monkeypatch.setenv("SOURCES__FULLSTORY__API_KEY", API_KEY)
    monkeypatch.setenv("SOURCES__FULLSTORY__POLL_INTERVAL", "0.01")
    monkeypatch.setenv("RESTORE_FROM_DESTINATION", "false")  # the state sync would fail the same way first
    argv = ["run", "--destination", "bigquery", "--base-url", live_sandbox.base_url, "--window", "6h",
            "--start", "2026-10-01T00:00:00Z", "--end", "2026-10-01T12:00:00Z",
            "--segment", "everyone"]  # fmt: skip
    with pytest.raises(PipelineStepFailed) as failed:
        main(argv)
    assert failed.value.step == "load"
    assert isinstance(failed.value.exception, DestinationConnectionError)
    pipeline = dlt.attach("fullstory_pipeline")
    assert pipeline.has_pending_data  # loaded first by the next run
    tables = pipeline.default_schema.tables
    assert tables["events"]["x-bigquery-cluster-columns"] == ["segment_id", "event_type"]
    assert tables["events"]["columns"]["event_start"]["x-bigquery-partition"] is True
    assert warehouse_keys(tables[RUNS_TABLE]) == set()
    assert formats(pipeline)["events"] == {"jsonl"}


# --- opt-in: a real warehouse --------------------------------------------------------------------

LIVE_CREDENTIALS = {
    "bigquery": (
        "DESTINATION__BIGQUERY__CREDENTIALS",
        "DESTINATION__BIGQUERY__CREDENTIALS__PRIVATE_KEY",
        "GOOGLE_APPLICATION_CREDENTIALS",
    ),
    "snowflake": ("DESTINATION__SNOWFLAKE__CREDENTIALS", "DESTINATION__SNOWFLAKE__CREDENTIALS__HOST"),
}


def live_param(warehouse: str, staging: bool = False) -> Any:
    names = LIVE_CREDENTIALS[warehouse]
    reasons = []
    if not any(os.environ.get(n) for n in names):
        reasons.append(f"no {warehouse} credentials in the environment ({' or '.join(names)})")
    if staging and not os.environ.get("DESTINATION__FILESYSTEM__BUCKET_URL"):
        reasons.append("no staging bucket (DESTINATION__FILESYSTEM__BUCKET_URL)")
    return pytest.param(
        warehouse,
        staging,
        marks=[pytest.mark.live_warehouse, pytest.mark.skipif(bool(reasons), reason="; ".join(reasons))],
        id=f"{warehouse}{'-staged' if staging else ''}",
    )


@pytest.mark.parametrize(
    ("warehouse", "staging"),
    [
        live_param("bigquery"),
        live_param("bigquery", True),
        live_param("snowflake"),
        live_param("snowflake", True),
    ],
)
def test_live_load_replace_and_table_design(
    warehouse: str, staging: bool, live_sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Load a day of two segments into a new dataset, load it again (a forced backfill), and check
    that every row is there exactly once and that the tables have the partitioning and clustering."""
    name = f"fullstory_live_{uniq_id(6)}"
    monkeypatch.setenv("SOURCES__FULLSTORY__API_KEY", API_KEY)
    monkeypatch.setenv("SOURCES__FULLSTORY__POLL_INTERVAL", "0.05")
    common = ["--destination", warehouse, "--dataset-name", name, "--pipeline-name", name,
              "--base-url", live_sandbox.base_url, "--window", "6h", "--start", "2026-10-01T00:00:00Z",
              "--end", "2026-10-02T00:00:00Z", *(f"--segment={s}" for s in LIVE_SEGMENTS),
              *(["--staging", "filesystem"] if staging else [])]  # fmt: skip
    pipeline = dlt.pipeline(name, destination=warehouse, dataset_name=name)
    try:
        assert main(["run", *common]) == 0
        assert main(["backfill", "--force", *common]) == 0
        with pipeline.sql_client() as client:

            def one(sql: str) -> Any:
                with client.execute_query(sql) as cursor:
                    return cursor.fetchall()

            events = client.make_qualified_table_name("events")
            individuals = client.make_qualified_table_name("individuals")
            for segment in LIVE_SEGMENTS:
                expected = len(live_sandbox.expected_rows("events", segment, DAY1, DAY2))
                assert one(f"SELECT count(*) FROM {events} WHERE segment_id = '{segment}'")[0][0] == expected
            assert one(
                f"SELECT count(*) FROM (SELECT segment_id, indv_id FROM {individuals} "
                "GROUP BY 1, 2 HAVING count(*) > 1) AS d"
            )[0][0] == 0  # fmt: skip
            if warehouse == "bigquery":
                dataset = client.fully_qualified_dataset_name()
                design = one(
                    f"SELECT column_name, is_partitioning_column, clustering_ordinal_position "
                    f"FROM {dataset}.INFORMATION_SCHEMA.COLUMNS WHERE table_name = 'events' "
                    "AND (is_partitioning_column = 'YES' OR clustering_ordinal_position IS NOT NULL)"
                )
                assert sorted(design) == [
                    ("event_start", "YES", None),
                    ("event_type", "NO", 2),
                    ("segment_id", "NO", 1),
                ]
            else:
                key = one(
                    "SELECT clustering_key FROM information_schema.tables "
                    f"WHERE table_schema = '{name.upper()}' AND table_name = 'EVENTS'"
                )[0][0]
                assert key.replace('"', "").replace(" ", "") == "LINEAR(EVENT_TYPE,SEGMENT_ID,EVENT_BUCKET)"
    finally:
        with pipeline.sql_client() as client:
            for staging_dataset in (False, True):
                with contextlib.suppress(Exception):
                    if staging_dataset:
                        with client.with_staging_dataset():
                            client.drop_dataset()
                    else:
                        client.drop_dataset()


def test_the_secrets_example_resolves(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each warehouse section of .dlt/secrets.toml.example is complete: dlt resolves the
    destination's configuration from it (given as the environment variables it maps to)."""
    example = tomllib.loads(
        (Path(__file__).resolve().parents[1] / ".dlt" / "secrets.toml.example").read_text()
    )
    for name in [n for n in os.environ if n.startswith(("DESTINATION__", "GOOGLE_APPLICATION"))]:
        monkeypatch.delenv(name)

    def setenv(prefix: str, values: dict[str, Any]) -> None:
        for key, value in values.items():
            if isinstance(value, dict):
                setenv(f"{prefix}__{key.upper()}", value)
            else:
                monkeypatch.setenv(f"{prefix}__{key.upper()}", str(value))

    setenv("DESTINATION", example["destination"])
    bigquery = dlt.destinations.bigquery().configuration(None, accept_partial=True)
    assert bigquery.credentials.is_resolved() and bigquery.location == "US"
    snowflake = dlt.destinations.snowflake().configuration(None, accept_partial=True)
    assert snowflake.credentials.is_resolved()
    assert (
        snowflake.credentials.private_key and snowflake.credentials.warehouse and snowflake.credentials.role
    )
    staging = dlt.destinations.filesystem().configuration(None, accept_partial=True)
    assert staging.bucket_url.startswith("gs://") and staging.credentials.is_resolved()
