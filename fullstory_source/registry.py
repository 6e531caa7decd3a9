"""Every export type in one place: what FullStory calls it, where it lands, how it is keyed.

Adding an export type is one `ExportType` entry here (plus its data in the sandbox): the source,
the table design for BigQuery and Snowflake, `fullstory-pipeline status` and the config checks
all read this registry.

The API has two shapes (see ../shared/notes/fullstory-api.md): the published spec spells the type
`events` and the format `json`; the live API `TYPE_EVENT` and `FORMAT_JSON`. `Dialect` carries the
spellings that are not per export type.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import dlt
import pyarrow as pa

from .tables import (
    BUCKET_COLUMN,
    EVENT_TIME,
    destination_table,
    individuals_hints,
    with_bucket,
    with_row_numbers,
)

EXPORT_FORMATS = ("json", "ndjson", "csv")


@dataclass(frozen=True)
class Dialect:
    name: str
    format_names: dict[str, str]
    segments_cursor_param: str

    def type_name(self, export_type: str) -> str:
        return EXPORT_TYPES[export_type].api_names[self.name]


SPEC = Dialect("spec", {"json": "json", "ndjson": "ndjson", "csv": "csv"}, "pagination_token")
LIVE = Dialect(
    "live", {"json": "FORMAT_JSON", "ndjson": "FORMAT_NDJSON", "csv": "FORMAT_CSV"}, "paginationToken"
)
DIALECTS = {d.name: d for d in (SPEC, LIVE)}


@dataclass(frozen=True)
class ExportType:
    name: str  # also the resource and table name
    api_names: dict[str, str]  # dialect name -> the `type` of the create-export request
    table_hints: dict[str, Any]  # dlt resource hints: how a re-exported window replaces rows
    required_fields: tuple[str, ...]  # present in every row, or the export is refused
    bigquery: dict[str, Any]  # keyword arguments of dlt's bigquery_adapter
    snowflake_cluster: list[str]  # columns of the Snowflake cluster key
    # what each parsed batch becomes before it is yielded (columns added, per-batch hints); the
    # second argument is how many rows of the window came before the batch
    prepare_batch: Callable[..., Any] = field(default=lambda batch, first_row=0: batch)

    @property
    def table(self) -> str:
        return self.name


REPLACE = {"disposition": "merge", "strategy": "delete-insert"}


def _events_batch(batch: pa.RecordBatch, first_row: int = 0) -> Any:
    return with_row_numbers(with_bucket(batch), first_row)


def _individuals_batch(batch: pa.RecordBatch, first_row: int = 0) -> Any:
    """The newest window wins (tables.py); a hint on the table, not on the resource's others."""
    table = destination_table("individuals")
    hints = individuals_hints(*table) if table else individuals_hints(None)
    return dlt.mark.with_hints(batch, hints, create_table_variant=True)


EXPORT_TYPES: dict[str, ExportType] = {
    t.name: t
    for t in (
        ExportType(
            "events",
            {"spec": "events", "live": "TYPE_EVENT"},
            # events have no unique key: a window replaces its 15-minute buckets (tables.py)
            {"write_disposition": REPLACE, "merge_key": ["segment_id", BUCKET_COLUMN]},
            (EVENT_TIME,),
            {"partition": "event_start", "cluster": ["segment_id", "event_type"]},
            ["segment_id", "event_type", BUCKET_COLUMN],
            _events_batch,
        ),
        ExportType(
            "individuals",
            {"spec": "individuals", "live": "TYPE_INDIVIDUAL"},
            {"write_disposition": REPLACE, "primary_key": ["segment_id", "indv_id"]},
            ("IndvId",),
            {"cluster": ["segment_id"]},
            ["segment_id"],
            _individuals_batch,
        ),
    )
}
