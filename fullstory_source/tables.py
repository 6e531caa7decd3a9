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

from .windows import QUARTER_HOUR

BUCKET = QUARTER_HOUR  # every window is a whole number of these
BUCKET_COLUMN = "event_bucket"
# an event's position in its window's export: with the window it names one row of a load, so a
# load resumed after a crash can drop a second copy of a file (resumed_load.py)
ROW_COLUMN = "window_row"
ROW_KEY = ("segment_id", "window_start", "window_end", ROW_COLUMN)
EVENT_TIME = "EventStart"

# An individual keeps the row of the newest window that holds it (the latest `window_end`),
# whatever order the windows load in: a window that failed and loads a run later, or a backfill
# of older days, must not overwrite newer rows. Within one load, dlt keeps the newest row of
# each key (dedup_sort). Across loads, on DuckDB, the merge deletes only the rows that are not
# newer than the incoming one (destination_scope) and inserts only incoming rows for which no
# newer row stayed (source_filter, which names the destination table: dlt has no placeholder
# for it there). Given with each batch (registry.py).
NOT_NEWER_THAN_INCOMING = (
    "EXISTS (SELECT 1 FROM {staging_table} AS s WHERE s.segment_id = {table}.segment_id"
    " AND s.indv_id = {table}.indv_id AND s.window_end >= {table}.window_end)"
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
def individuals_hints(destination_table: str | None) -> Any:
    """`destination_table`: the qualified DuckDB table, or None elsewhere (then an older window
    loaded later replaces newer rows: see docs/reliability.md)."""
    write_disposition: dict[str, Any] = {"disposition": "merge", "strategy": "delete-insert"}
    if destination_table is not None:
        write_disposition["destination_scope"] = NOT_NEWER_THAN_INCOMING
        write_disposition["source_filter"] = (
            f"(segment_id, indv_id) NOT IN (SELECT segment_id, indv_id FROM {destination_table})"
        )
    return dlt.mark.make_hints(
        table_name="individuals",
        write_disposition=write_disposition,  # type: ignore[arg-type]
        columns={"window_end": {"dedup_sort": "desc"}},
    )


def duckdb_table(name: str) -> str | None:
    """The qualified name of table `name` in the DuckDB destination of the running pipeline."""
    pipeline = dlt.current.pipeline()
    destination = pipeline.destination
    if destination is None or not destination.destination_type.endswith(".duckdb"):
        return None
    return pipeline.sql_client().make_qualified_table_name(name)
