"""The column that makes window replacement exact for events.

Events have no unique key, so a re-exported window must replace exactly the rows of that window.
Keying the merge on the window itself breaks as soon as a window of another length covers the
same time (a backfill with 1d windows over data loaded in 1h windows, a changed `window`
setting): the old rows carry other window bounds and would stay, duplicated. So every event row
carries `event_bucket`, the 15-minute bucket of its `EventStart`, and events merge
(delete-insert) on (segment_id, event_bucket). Every window is a whole number of buckets, so
loading a window deletes exactly the buckets it holds, whatever window length loaded them before.
The merge keys of every export type are in registry.py.
"""

from __future__ import annotations

import array
import functools
from typing import Any

import dlt
import pyarrow as pa
import pyarrow.compute as pc
from dlt.common.destination.exceptions import SqlClientNotAvailable

from .windows import QUARTER_HOUR

BUCKET = QUARTER_HOUR  # every window is a whole number of these
BUCKET_COLUMN = "event_bucket"
# an event's position in its window's export: with the window it names one row of a load, so a
# load resumed after a crash can drop a second copy of a file (resumed_load.py)
ROW_COLUMN = "window_row"
ROW_KEY = ("segment_id", "window_start", "window_end", ROW_COLUMN)
EVENT_TIME = "EventStart"

# An individual keeps the row of the newest window that holds it (the latest `window_end`),
# whatever order the windows load in: a window that failed and loads a run later, a backfill of
# older days, an Airflow task re-running an old interval with no state. Within one load, dlt keeps
# the newest row of each key (dedup_sort). Across loads the destination decides, in the merge:
# it deletes only the rows that are not newer than the incoming one (destination_scope) and
# inserts only incoming rows for which no newer row stayed (source_filter). The SQL is one text
# for DuckDB, BigQuery and Snowflake (tests/test_warehouses.py replays dlt's statements for each):
# - the delete's target is named by its implicit alias, its bare table name (BigQuery does not
#   accept a dataset-qualified column; the staging table is aliased `s`, so the name is the
#   target's);
# - the filter compares one text key (BigQuery has no tuple IN), and leaves out NULL keys, which
#   would make NOT IN unknown for every row.
NOT_NEWER_THAN_INCOMING = (
    "EXISTS (SELECT 1 FROM {{staging_table}} AS s WHERE s.segment_id = {alias}.segment_id"
    " AND s.indv_id = {alias}.indv_id AND s.window_end >= {alias}.window_end)"
)
PERSON = "CONCAT(segment_id, '/', CAST(indv_id AS STRING))"
NO_NEWER_ROW_STAYED = (
    f"{PERSON} NOT IN (SELECT {PERSON} FROM {{table}} WHERE segment_id IS NOT NULL AND indv_id IS NOT NULL)"
)


def with_bucket(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Append `event_bucket` (EventStart floored to 15 minutes) to a batch of events."""
    minutes = int(BUCKET.total_seconds() // 60)
    bucket = pc.floor_temporal(batch.column(EVENT_TIME), multiple=minutes, unit="minute")
    field = pa.field(BUCKET_COLUMN, bucket.type, nullable=False)
    return batch.append_column(field, bucket)


def with_row_numbers(batch: pa.RecordBatch, first_row: int) -> pa.RecordBatch:
    """Append `window_row`: first_row, first_row + 1, ... (the rows' positions in the export)."""
    # from a buffer: pa.array() of Python objects checks for pandas, whose first import is not
    # thread-safe (the export resources run in parallel)
    values = array.array("q", range(first_row, first_row + batch.num_rows))
    numbers = pa.Array.from_buffers(pa.int64(), batch.num_rows, [None, pa.py_buffer(values)])
    return batch.append_column(pa.field(ROW_COLUMN, pa.int64(), nullable=False), numbers)


@functools.lru_cache(maxsize=16)
def individuals_hints(destination_table: str | None, alias: str = "individuals") -> Any:
    """`destination_table`: the qualified table in the pipeline's SQL destination; None where
    there is none (filesystem, dummy), where only dlt's within-load dedup applies. `alias`: the
    table's bare name, quoted as the destination quotes it."""
    write_disposition: dict[str, Any] = {"disposition": "merge", "strategy": "delete-insert"}
    if destination_table is not None:
        write_disposition["destination_scope"] = NOT_NEWER_THAN_INCOMING.format(alias=alias)
        write_disposition["source_filter"] = NO_NEWER_ROW_STAYED.format(table=destination_table)
    return dlt.mark.make_hints(
        table_name="individuals",
        write_disposition=write_disposition,  # type: ignore[arg-type]
        columns={"window_end": {"dedup_sort": "desc"}},
    )


def destination_table(name: str) -> tuple[str, str] | None:
    """(qualified name, bare name) of table `name` in the running pipeline's SQL destination,
    or None when the destination has no SQL client. Names only: nothing connects."""
    pipeline = dlt.current.pipeline()
    if pipeline.destination is None:
        return None
    try:
        client = pipeline.sql_client()
    except SqlClientNotAvailable:
        return None
    return client.make_qualified_table_name(name), client.make_qualified_table_name_path(name)[-1]
