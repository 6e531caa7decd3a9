"""How each table is keyed, and the column that makes window replacement exact.

Events have no unique key, so a re-exported window must replace exactly the rows of that window.
Keying the merge on the window itself breaks as soon as a window of another length covers the
same time (a backfill with 1d windows over data loaded in 1h windows, a changed `window`
setting): the old rows carry other window bounds and would stay, duplicated. So every event row
carries `event_bucket`, the 15-minute bucket of its `EventStart`, and events merge
(delete-insert) on (segment_id, event_bucket). Every window is a whole number of buckets, so
loading a window deletes exactly the buckets it holds, whatever window length loaded them before.
"""

from __future__ import annotations

from typing import Any

import dlt
import pyarrow as pa
import pyarrow.compute as pc

from .windows import QUARTER_HOUR

BUCKET = QUARTER_HOUR  # every window is a whole number of these
BUCKET_COLUMN = "event_bucket"
EVENT_TIME = "EventStart"

WINDOW_REPLACE: dict[str, Any] = {
    "write_disposition": {"disposition": "merge", "strategy": "delete-insert"},
    "merge_key": ["segment_id", BUCKET_COLUMN],
}
TABLE_HINTS: dict[str, dict[str, Any]] = {
    "events": WINDOW_REPLACE,
    "individuals": {
        "write_disposition": {"disposition": "merge", "strategy": "delete-insert"},
        "primary_key": ["segment_id", "indv_id"],
    },
}
# An individual seen in several windows of one run keeps its newest row. Given with each batch
# rather than on the resource, so that the other tables the resource writes (export_runs) do
# not inherit it.
INDIVIDUALS_BATCH_HINTS = dlt.mark.make_hints(
    table_name="individuals", columns={"window_end": {"dedup_sort": "desc"}}
)
# fields that must be present in every row of an export, by export type
REQUIRED_FIELDS: dict[str, tuple[str, ...]] = {"events": (EVENT_TIME,), "individuals": ("IndvId",)}


def with_bucket(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Append `event_bucket` (EventStart floored to 15 minutes) to a batch of events."""
    minutes = int(BUCKET.total_seconds() // 60)
    bucket = pc.floor_temporal(batch.column(EVENT_TIME), multiple=minutes, unit="minute")
    field = pa.field(BUCKET_COLUMN, bucket.type, nullable=False)
    return batch.append_column(field, bucket)


def mark_batch(export_type: str, batch: pa.RecordBatch) -> Any:
    """A parsed batch as the resource yields it: events gain their bucket, individuals their hints."""
    if export_type == "events":
        return with_bucket(batch)
    return dlt.mark.with_hints(batch, INDIVIDUALS_BATCH_HINTS, create_table_variant=True)


def allow_columns_to_differ_between_windows() -> None:
    """Windows of one run can carry different columns: a custom variable present in one window
    only, which dlt then fills in the others with nulls typed from its schema (text for a list
    column). dlt's Arrow writer must then put such batches in separate files instead of failing
    the extract; its "default" promotion does that and never alters data. Set unless the user
    configured `data_writer.arrow_concat_promote_options` themselves."""
    if dlt.config.get("data_writer.arrow_concat_promote_options") is None:
        dlt.config["data_writer.arrow_concat_promote_options"] = "default"


def add_load_id_to_arrow_rows() -> None:
    """dlt adds `_dlt_load_id` to rows it normalizes itself (segments, export_runs) but not to
    Arrow batches, which skip its normalizer: without it an analyst cannot tell which load wrote
    an event or individual. dlt's parquet normalizer option adds it, as a constant column, at
    extract time. Set unless the user configured it themselves."""
    if dlt.config.get("normalize.parquet_normalizer.add_dlt_load_id") is None:
        dlt.config["normalize.parquet_normalizer.add_dlt_load_id"] = True
