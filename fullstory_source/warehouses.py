"""Table design for BigQuery and Snowflake: the hints that only those warehouses read.

`apply_warehouse_hints(source, destination)` adds them to a `fullstory_source` for the destination
it will load into, and leaves the source as it is for any other destination (DuckDB included):

- BigQuery: `events` partitioned by day of `event_start` and clustered by `segment_id`,
  `event_type`; `individuals` clustered by `segment_id` (dlt's `bigquery_adapter`). Both load as
  JSONL, not Parquet: list-typed custom variables (`evt_tags_strs`, ...) are `json` columns, and
  dlt cannot load `json` from Parquet into BigQuery (it refuses the load package, see
  docs/warehouses.md).
- Snowflake: cluster key on `events` by `segment_id`, `event_type` and `event_bucket` (the
  15-minute floor of `event_start`: dlt's cluster hint takes columns, not the expression
  `TO_DATE(event_start)`); cluster key on `individuals` by `segment_id`. dlt writes the key in
  the table's column order.

The window replace itself is the same on every destination: `delete-insert` on
(segment_id, event_bucket) for events and on (segment_id, indv_id) for individuals (tables.py).
Both warehouses support that strategy in dlt 1.31; `upsert` needs a unique primary key, which
events do not have.
"""

from __future__ import annotations

from typing import Any

from dlt.common.destination import Destination
from dlt.destinations.adapters import bigquery_adapter
from dlt.extract import DltResource, DltSource

from .runs import RUNS_TABLE
from .tables import BUCKET_COLUMN

__all__ = [
    "BIGQUERY_HINTS",
    "SNOWFLAKE_CLUSTER",
    "WAREHOUSES",
    "apply_warehouse_hints",
    "warehouse_of",
]

# resource -> keyword arguments of dlt's bigquery_adapter
BIGQUERY_HINTS: dict[str, dict[str, Any]] = {
    "events": {"partition": "event_start", "cluster": ["segment_id", "event_type"]},
    "individuals": {"cluster": ["segment_id"]},
}
# Parquet cannot carry dlt `json` columns into BigQuery; JSONL can
BIGQUERY_FILE_FORMAT = "jsonl"
# resource -> columns of the Snowflake cluster key
SNOWFLAKE_CLUSTER: dict[str, list[str]] = {
    "events": ["segment_id", "event_type", BUCKET_COLUMN],
    "individuals": ["segment_id"],
}
WAREHOUSES = ("bigquery", "snowflake")


def warehouse_of(destination: str | Destination | None) -> str | None:
    """'bigquery' or 'snowflake' when `destination` is one of them, else None.

    `destination` is a dlt destination (`pipeline.destination`), a destination type
    ("bigquery", "dlt.destinations.snowflake") or None."""
    if destination is None:
        return None
    kind = destination.destination_type if isinstance(destination, Destination) else str(destination)
    kind = kind.rsplit(".", 1)[-1].lower()
    return kind if kind in WAREHOUSES else None


def apply_warehouse_hints(source: DltSource, destination: str | Destination | None) -> DltSource:
    """Add the BigQuery or Snowflake table design to `source` (in place; returns it).

    Call it before the source is extracted. A destination that is neither leaves the source
    unchanged."""
    warehouse = warehouse_of(destination)
    if warehouse is None:
        return source
    for name in ("events", "individuals"):
        if name not in source.resources:
            continue
        resource = source.resources[name]
        _keep_runs_table_plain(resource)
        if warehouse == "bigquery":
            bigquery_adapter(resource, **BIGQUERY_HINTS[name])
            resource.apply_hints(file_format=BIGQUERY_FILE_FORMAT)
        else:
            resource.apply_hints(columns={c: {"cluster": True} for c in SNOWFLAKE_CLUSTER[name]})
    return source


def _keep_runs_table_plain(resource: DltResource) -> None:
    """The export resources also write `export_runs` rows, as a table variant that starts from
    the resource's hints when it is first used. Fix that variant now, before the warehouse hints
    are added: otherwise `export_runs` would inherit the events cluster columns, and BigQuery
    would refuse `CLUSTER BY event_type` on a table without that column."""
    resource.apply_hints(table_name=RUNS_TABLE, create_table_variant=True)
