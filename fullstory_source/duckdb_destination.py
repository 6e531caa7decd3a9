"""dlt's DuckDB destination, with one write per events file instead of two.

dlt loads a merge table through its staging dataset: it copies each file into a staging table,
then deletes the replaced rows from the table and inserts the staging rows. Every event is thus
written into DuckDB twice, and a write of 1M events costs ~7 s under the command's memory cap:
half of the load step (docs/performance.md). Events merge on their 15-minute buckets
(tables.py), which the file itself names, so this destination replaces them straight from the
file, in one transaction per file:

1. delete the rows of earlier loads in the file's (segment_id, event_bucket) buckets (what dlt's
   delete-insert deletes; rows of this same load stay, as they would in dlt's staging table: the
   load's other files);
2. delete the rows of this load that the file itself holds, by (segment_id, window_start,
   window_end, window_row): none, unless this file was copied before and dlt did not record it
   (a run killed between the two); so running a job again never loads its rows twice;
3. insert the file's rows.

Everything else (individuals, segments, dlt's own tables) loads
exactly as with `dlt.destinations.duckdb`, whose configuration this takes unchanged
(`DESTINATION__DUCKDB__CREDENTIALS`, `destination.duckdb` in .dlt/). The command loads DuckDB with
it; a pipeline on dlt's own DuckDB destination loads the same rows, slower.
"""

from __future__ import annotations

from typing import Any

from dlt.common.destination.client import LoadJob, PreparedTableSchema
from dlt.common.destination.exceptions import DestinationTerminalException
from dlt.common.schema.utils import get_columns_names_with_prop
from dlt.common.storages.load_package import ParsedLoadJobFileName
from dlt.destinations.impl.duckdb.duck import DuckDbClient, DuckDbCopyJob
from dlt.destinations.impl.duckdb.factory import duckdb as dlt_duckdb

from .sql_text import literal
from .tables import BUCKET_COLUMN, ROW_KEY

BUCKET_KEY = ["segment_id", BUCKET_COLUMN]
DLT_DUCKDB = "dlt.destinations.duckdb"


def replaces_buckets(table: PreparedTableSchema) -> bool:
    """A table whose files this destination loads itself: events, merged on their buckets."""
    columns = table.get("columns", {})
    return (
        table.get("write_disposition") == "merge"
        and table.get("x-merge-strategy", "delete-insert") == "delete-insert"  # type: ignore[typeddict-item]
        and set(get_columns_names_with_prop(table, "merge_key")) == set(BUCKET_KEY)
        and all(name in columns for name in (*ROW_KEY, "_dlt_load_id"))
    )


# How DuckDB reads each load file format dlt may write events in (as dlt's own copy job does)
READERS = {
    "parquet": "read_parquet({file}, union_by_name=true)",
    "jsonl": "read_json({file})",
    "typed-jsonl": "read_json({file})",
}


class BucketReplaceJob(DuckDbCopyJob):
    """Loads one file of events: its buckets replaced, in one transaction."""

    def __init__(self, file_path: str, load_id: str) -> None:
        super().__init__(file_path)
        self._load_id = load_id

    def run(self) -> None:
        client = self._job_client.sql_client
        table = client.make_qualified_table_name(self.load_table_name)
        file_format = ParsedLoadJobFileName.parse(self._file_path).file_format
        rows = READERS[file_format].format(file=literal(self._file_path))
        load_id = literal(self._load_id)
        buckets = " AND ".join(f"d.{c} = s.{c}" for c in BUCKET_KEY)
        same_row = " AND ".join(f"d.{c} = s.{c}" for c in ROW_KEY)
        with client.begin_transaction():
            client.execute_sql(
                f"DELETE FROM {table} AS d WHERE d._dlt_load_id <> {load_id} AND EXISTS "
                f"(SELECT 1 FROM (SELECT DISTINCT {', '.join(BUCKET_KEY)} FROM {rows}) AS s WHERE {buckets})"
            )
            client.execute_sql(
                f"DELETE FROM {table} AS d WHERE d._dlt_load_id = {load_id} AND EXISTS "
                f"(SELECT 1 FROM {rows} AS s WHERE {same_row})"
            )
            client.execute_sql(f"INSERT INTO {table} BY NAME SELECT * FROM {rows}")


class BucketReplaceClient(DuckDbClient):
    """dlt's DuckDB client; events skip the staging dataset and the merge that follows it."""

    def should_load_data_to_staging_dataset(self, table_name: str) -> bool:
        if replaces_buckets(self.prepare_load_table(table_name)):
            return False
        return super().should_load_data_to_staging_dataset(table_name)

    def _create_merge_followup_jobs(self, table_chain: Any) -> Any:
        if replaces_buckets(table_chain[0]):
            return []
        return super()._create_merge_followup_jobs(table_chain)

    def create_load_job(
        self, table: PreparedTableSchema, file_path: str, load_id: str, restore: bool = False
    ) -> LoadJob:
        if not replaces_buckets(table):
            return super().create_load_job(table, file_path, load_id, restore)
        file_format = ParsedLoadJobFileName.parse(file_path).file_format
        if file_format not in READERS:
            # its table skips staging: a plain copy would add the rows without replacing any
            raise DestinationTerminalException(
                f"{table['name']} cannot load from {file_format} files with this destination; "
                f"use loader_file_format parquet (the default for this source) or jsonl"
            )
        return BucketReplaceJob(file_path, load_id)


class duckdb(dlt_duckdb):  # noqa: N801 - the class name is dlt's destination name: config stays `destination.duckdb`
    """`dlt.destinations.duckdb`, taking the same arguments, with events loaded in one write."""

    @property
    def client_class(self) -> type[BucketReplaceClient]:  # type: ignore[override]
        return BucketReplaceClient


def is_duckdb(destination: Any) -> bool:
    """dlt's DuckDB destination or this one."""
    return destination is not None and (
        isinstance(destination, dlt_duckdb) or getattr(destination, "destination_type", None) == DLT_DUCKDB
    )


def for_command(destination: Any) -> Any:
    """The destination the command loads into: this one where DuckDB is asked for by name."""
    return duckdb() if destination == "duckdb" else destination
