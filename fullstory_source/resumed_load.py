"""Finishing a load package that a killed run left pending, without loading any row twice.

dlt copies each file of a merge table into the staging dataset, then merges staging into the
table. A copy job that finished in DuckDB but was not yet recorded by dlt (the process was
killed between the two) is run again when the package is resumed: the staging table then holds
that file's rows twice. Tables with a primary key lose the copy in the merge's deduplication;
`events` has no key (FullStory events have none), so `delete-insert` would insert both copies.

Every event row carries `window_row`, its position in its window's export, so (segment_id,
window_start, window_end, window_row) names one row of the package. Before dlt resumes such a
package, `drop_rows_copied_by_unrecorded_jobs` removes from staging the rows of every copy
job that dlt is going to run again; the repeated copy then puts them back exactly once. It
runs only on a resume and costs nothing on a normal load.

dlt's DuckDB destination only: this project's (duckdb_destination.py, which the command uses)
loads events without staging, in jobs that never load their rows twice. BigQuery load jobs and
Snowflake's COPY are idempotent per file by themselves (BigQuery reuses the job of the same id;
COPY skips files it already loaded).
"""

from __future__ import annotations

import logging
from pathlib import Path

import dlt

from .duckdb_destination import DLT_DUCKDB
from .sql_text import literal
from .tables import ROW_KEY

logger = logging.getLogger(__name__)

# dlt writes a marker here once a job's work is committed in the destination; such a job is
# not run again on resume (dlt 1.31: PackageStorage.PENDING_TRANSITIONS_FOLDER)
RECORDED_JOBS_FOLDER = ".pending_transitions"


def drop_rows_copied_by_unrecorded_jobs(pipeline: dlt.Pipeline) -> int:
    """Call before loading a pending package again. Returns the number of staging rows removed."""
    destination = pipeline.destination
    if destination is None or destination.destination_type != DLT_DUCKDB:
        return 0  # this project's DuckDB destination loads events without staging, rerunnably
    removed = 0
    for load_id in pipeline.list_normalized_load_packages():
        package = pipeline.get_load_package_info(load_id)
        recorded_dir = Path(package.package_path) / RECORDED_JOBS_FOLDER
        recorded = {p.name for p in recorded_dir.iterdir()} if recorded_dir.is_dir() else set()
        for job in package.jobs.get("started_jobs", []):
            path = Path(job.file_path)
            if job.job_file_info.file_format == "parquet" and path.name not in recorded:
                removed += _drop_rows_of_file(pipeline, job.job_file_info.table_name, path)
    if removed:
        logger.info("removed %d staged rows that the resumed load copies again", removed)
    return removed


def _drop_rows_of_file(pipeline: dlt.Pipeline, table: str, path: Path) -> int:
    file = literal(str(path))
    with pipeline.sql_client() as client:
        columns = {row[0] for row in client.execute_sql(f"DESCRIBE SELECT * FROM read_parquet({file})")}
        if not set(ROW_KEY) <= columns:
            return 0  # a table with a primary key: dlt's merge drops the second copy itself
        with client.with_staging_dataset():
            if not client.has_dataset():
                return 0
            staged = client.make_qualified_table_name(table)
            exists = client.execute_sql(
                "SELECT 1 FROM information_schema.tables WHERE table_schema = %s AND table_name = %s",
                client.dataset_name,
                table,
            )
            if not exists:
                return 0
            match = " AND ".join(f"{staged}.{c} = f.{c}" for c in ROW_KEY)
            rows = client.execute_sql(f"DELETE FROM {staged} USING read_parquet({file}) AS f WHERE {match}")
    return int(rows[0][0]) if rows else 0
