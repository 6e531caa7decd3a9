"""Table design for BigQuery and Snowflake: the hints that only those warehouses read.

The source carries this design itself: when an export resource starts extracting, it looks at
the destination of the pipeline that runs it and applies the design for it (`apply_table_design`),
so `dlt.pipeline(..., destination="bigquery").run(fullstory_source())` gets the same tables as
the command. Any other destination (DuckDB included) gets no warehouse hints. The design of each
export type is in registry.py:

- BigQuery: `events` partitioned by day of `event_start` and clustered by `segment_id`,
  `event_type`; `individuals` clustered by `segment_id` (dlt's `bigquery_adapter`). Both load as
  JSONL, not Parquet: list-typed custom variables (`evt_tags_strs`, ...) are `json` columns, and
  dlt cannot load `json` from Parquet into BigQuery (it refuses the load package, see
  docs/warehouses.md). A file format set on the resource by the user is kept.
- Snowflake: cluster key on `events` by `segment_id`, `event_type` and `event_bucket` (the
  15-minute floor of `event_start`: dlt's cluster hint takes columns, not the expression
  `TO_DATE(event_start)`); cluster key on `individuals` by `segment_id`. dlt writes the key in
  the table's column order.

The window replace itself is the same on every destination: `delete-insert` on
(segment_id, event_bucket) for events and on (segment_id, indv_id) for individuals.
"""

from __future__ import annotations

from dlt.common.destination import Destination
from dlt.destinations.adapters import bigquery_adapter
from dlt.extract import DltResource, DltSource

from .registry import EXPORT_TYPES

__all__ = [
    "BIGQUERY_FILE_FORMAT",
    "WAREHOUSES",
    "apply_table_design",
    "apply_warehouse_hints",
    "warehouse_of",
]

# Parquet cannot carry dlt `json` columns into BigQuery; JSONL can
BIGQUERY_FILE_FORMAT = "jsonl"
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


def apply_table_design(resource: DltResource, destination: str | Destination | None) -> None:
    """Add the warehouse design of the export resource `resource` for `destination` (in place)."""
    warehouse = warehouse_of(destination)
    export_type = EXPORT_TYPES.get(resource.name)
    if warehouse is None or export_type is None:
        return
    if warehouse == "bigquery":
        bigquery_adapter(resource, **export_type.bigquery)
        if not resource.compute_table_schema().get("file_format"):
            resource.apply_hints(file_format=BIGQUERY_FILE_FORMAT)
    else:
        resource.apply_hints(columns={c: {"cluster": True} for c in export_type.snowflake_cluster})


def apply_warehouse_hints(source: DltSource, destination: str | Destination | None) -> DltSource:
    """The design applied before extraction, for code that wants to see the hints on the source
    first; extraction applies the same design anyway. Returns `source`."""
    for resource in source.resources.values():
        apply_table_design(resource, destination)
    return source
