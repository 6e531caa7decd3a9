"""The reader never changes a value silently and never lets export data take a column we own:
values that do not fit their type are NULL and reported; empty text of FullStory's own fields
is NULL; fields the catalog does not know keep JSON's number types; export fields named like
our columns (or like each other, once dlt snake_cases them) load under their own name."""

from __future__ import annotations

import csv
import gzip
import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dlt
import duckdb
import pyarrow as pa
import pytest

from fullstory_sandbox import Sandbox
from fullstory_source.readers import read_export
from fullstory_source.registry import EXPORT_TYPES

from .support import csv_cell, make_pipeline, query, source

FORMATS = ("json", "ndjson", "csv")
WINDOW_START = datetime(2026, 10, 1, tzinfo=UTC)
WINDOW_END = datetime(2026, 10, 1, 6, tzinfo=UTC)
CONSTANTS: dict[str, Any] = {"segment_id": "everyone", "window_start": WINDOW_START, "window_end": WINDOW_END}


def write(directory: Path, rows: list[dict[str, Any]], export_format: str) -> Path:
    if export_format == "json":
        text = "[" + ",\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "]"
    elif export_format == "ndjson":
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    else:
        columns = list(dict.fromkeys(k for r in rows for k in r))
        out = io.StringIO(newline="")
        writer = csv.writer(out)
        writer.writerow(columns)
        writer.writerows([_cell(r.get(c)) for c in columns] for r in rows)
        text = out.getvalue()
    path = directory / f"export.{export_format}.gz"
    path.write_bytes(gzip.compress(text.encode()))
    return path


def _cell(value: Any) -> str:
    return json.dumps(value) if isinstance(value, dict) else csv_cell(value)


def read(path: Path, export_format: str, **kwargs: Any) -> tuple[pa.Table, list[str]]:
    warnings: list[str] = []
    batches = list(read_export(path, export_format, dict(CONSTANTS), warn=warnings.append, **kwargs))
    return pa.Table.from_batches(batches), warnings


BASE = {"EventStart": "2026-10-01T00:00:01Z", "EventType": "click"}


@pytest.mark.parametrize("export_format", FORMATS)
def test_values_that_do_not_fit_are_null_and_counted_never_rounded(
    tmp_path: Path, export_format: str
) -> None:
    rows = [
        {**BASE, "IndvId": 5, "PageDuration": 12, "evt_n_int": 2, "evt_b_bool": True, "user_ltv_real": 1.5},
        {
            **BASE,
            "IndvId": 1.9,
            "PageDuration": 12.7,
            "evt_n_int": 2.5,
            "evt_b_bool": "yes",
            "user_ltv_real": 2,
        },
        {
            **BASE,
            "IndvId": 7,
            "PageDuration": 3.0,
            "evt_n_int": "1e3",
            "evt_b_bool": False,
            "user_ltv_real": "N/A",
        },
    ]
    table, warnings = read(write(tmp_path, rows, export_format), export_format)
    assert table.column("IndvId").to_pylist() == [5, None, 7]
    assert table.column("PageDuration").to_pylist() == [12, None, 3]  # 3.0 is a whole number: kept
    assert table.column("evt_n_int").to_pylist() == [2, None, 1000]
    assert table.column("evt_b_bool").to_pylist() == [True, None, False]
    assert table.column("user_ltv_real").to_pylist() == [1.5, 2.0, None]
    assert table.schema.field("PageDuration").type == pa.int64()
    assert table.schema.field("evt_b_bool").type == pa.bool_()
    assert sorted(warnings) == sorted(
        f"The export export.{export_format}.gz: 1 value(s) of {line}; loaded as NULL."
        for line in [
            "'IndvId' are not integers (e.g. '1.9')",
            "'PageDuration' are not integers (e.g. '12.7')",
            "'evt_n_int' are not integers (e.g. '2.5')",
            "'evt_b_bool' are not true/false (e.g. 'yes')",
            "'user_ltv_real' are not numbers (e.g. 'N/A')",
        ]
    )


@pytest.mark.parametrize("export_format", ["json", "ndjson"])
def test_empty_strings_in_typed_fields_are_null_and_counted(tmp_path: Path, export_format: str) -> None:
    rows = [
        {**BASE, "IndvId": 1, "UserCreated": "", "PageNumErrors": ""},
        {**BASE, "IndvId": 2, "UserCreated": "2026-09-01T00:00:00Z", "PageNumErrors": 2},
    ]
    table, warnings = read(write(tmp_path, rows, export_format), export_format)
    assert table.column("UserCreated").to_pylist() == [None, datetime(2026, 9, 1, tzinfo=UTC)]
    assert table.column("PageNumErrors").to_pylist() == [None, 2]
    assert len(warnings) == 2
    assert any("'UserCreated' are not timestamps (e.g. '')" in w for w in warnings)


@pytest.mark.parametrize("export_format", FORMATS)
def test_big_ids_and_quoted_numbers_stay_exact(tmp_path: Path, export_format: str) -> None:
    rows = [
        {**BASE, "IndvId": 2**63 - 1, "UserId": "9007199254740993", "PageId": -(2**62)},
        {**BASE, "IndvId": 9007199254740993, "UserId": 1, "PageId": 0},
    ]
    table, warnings = read(write(tmp_path, rows, export_format), export_format)
    assert table.column("IndvId").to_pylist() == [2**63 - 1, 9007199254740993]
    assert table.column("UserId").to_pylist() == [9007199254740993, 1]
    assert table.column("PageId").to_pylist() == [-(2**62), 0]
    assert warnings == []


@pytest.mark.parametrize("export_format", FORMATS)
def test_list_elements_that_do_not_fit_are_null_and_counted(tmp_path: Path, export_format: str) -> None:
    rows = [
        {**BASE, "IndvId": 1, "evt_codes_ints": [200, 404], "evt_flags_bools": [True]},
        {**BASE, "IndvId": 2, "evt_codes_ints": [1, 2.5], "evt_flags_bools": ["yes", False]},
    ]
    table, warnings = read(write(tmp_path, rows, export_format), export_format)
    assert table.column("evt_codes_ints").to_pylist() == [[200, 404], [1, None]]
    assert table.column("evt_flags_bools").to_pylist() == [[True], [None, False]]
    assert len(warnings) == 2
    assert any("'evt_codes_ints' are not lists of integers" in w for w in warnings)


@pytest.mark.parametrize("export_format", ["json", "ndjson"])
def test_empty_text_of_fullstory_fields_is_null_custom_text_is_kept(
    tmp_path: Path, export_format: str
) -> None:
    rows = [
        {**BASE, "IndvId": 1, "EventSubType": "", "PageRefererUrl": "", "evt_note_str": ""},
        {
            **BASE,
            "IndvId": 2,
            "EventSubType": "pushState",
            "PageRefererUrl": "https://a/",
            "evt_note_str": "x",
        },
        {**BASE, "IndvId": 3, "EventSubType": "", "PageRefererUrl": ""},
    ]
    table, warnings = read(write(tmp_path, rows, export_format), export_format)
    assert table.column("EventSubType").to_pylist() == [None, "pushState", None]
    assert table.column("PageRefererUrl").to_pylist() == [None, "https://a/", None]
    assert table.column("evt_note_str").to_pylist() == ["", "x", None]  # "" was set; absent is NULL
    assert warnings == []


def test_csv_empty_cells_are_null(tmp_path: Path) -> None:
    rows = [{**BASE, "IndvId": 1, "EventSubType": "", "evt_note_str": ""}, {**BASE, "IndvId": 2}]
    table, _ = read(write(tmp_path, rows, "csv"), "csv")
    assert table.column("EventSubType").to_pylist() == [None, None]
    assert table.column("evt_note_str").to_pylist() == [None, None]


@pytest.mark.parametrize("export_format", ["json", "ndjson"])
def test_fields_the_catalog_does_not_know_keep_their_json_types(tmp_path: Path, export_format: str) -> None:
    rows = [
        {**BASE, "IndvId": 1, "NewCount": 3, "NewScore": 1, "NewFlag": True, "NewMix": 1, "NewObj": {"a": 1}},
        {
            **BASE,
            "IndvId": 2,
            "NewCount": 2**62,
            "NewScore": 0.25,
            "NewFlag": False,
            "NewMix": "x",
            "NewObj": None,
        },
    ]
    table, warnings = read(write(tmp_path, rows, export_format), export_format)
    assert table.schema.field("NewCount").type == pa.int64()
    assert table.column("NewCount").to_pylist() == [3, 2**62]
    assert table.schema.field("NewScore").type == pa.float64()
    assert table.column("NewScore").to_pylist() == [1.0, 0.25]
    assert table.column("NewFlag").to_pylist() == [True, False]
    assert table.column("NewMix").to_pylist() == ["1", "x"]
    assert json.loads(table.column("NewObj").to_pylist()[0]) == {"a": 1}
    assert warnings == []


@pytest.mark.parametrize("export_format", FORMATS)
def test_newer_fullstory_fields_have_their_documented_types(tmp_path: Path, export_format: str) -> None:
    row = {
        **BASE,
        "IndvId": 1,
        "EventTargetSelector": "button.buy",
        "EventCumulativeLayoutShift": 0.125,
        "EventFirstInputDelay": 16,
        "EventSecondaryDuration": 40,
        "PageMaxScrollDepthPercent": 85,
        "PageNumEvents": 31,
        "PageNumDerivedEvents": 4,
        "LoadLargestPaintTime": 1200,
        "evt_cart_obj": {"items": 2},
        "evt_lines_objs": [{"sku": "a"}],
    }
    table, warnings = read(write(tmp_path, [row], export_format), export_format)
    got = table.to_pylist()[0]
    assert table.schema.field("EventCumulativeLayoutShift").type == pa.float64()
    assert got["EventCumulativeLayoutShift"] == 0.125
    for name in (
        "EventFirstInputDelay",
        "EventSecondaryDuration",
        "PageMaxScrollDepthPercent",
        "PageNumEvents",
    ):
        assert table.schema.field(name).type == pa.int64(), name
        assert got[name] == row[name]
    assert got["EventTargetSelector"] == "button.buy"
    assert json.loads(got["evt_cart_obj"]) == {"items": 2}
    assert json.loads(got["evt_lines_objs"]) == [{"sku": "a"}]
    assert warnings == []


def test_individual_fields_have_their_documented_types(tmp_path: Path) -> None:
    row = {
        "IndvId": 1,
        "AvgSessionActiveSec": 12.5,
        "MaxSessionSec": 300,
        "LastSessionNumPages": 3,
        "LastSessionNumEvents": 40,
        "LastSessionSec": 200,
        "LastSessionActiveSec": 150,
        "LastLatLong": "1.5,2.5",
    }
    table, _ = read(write(tmp_path, [row], "json"), "json")
    assert table.schema.field("AvgSessionActiveSec").type == pa.float64()
    for name in ("MaxSessionSec", "LastSessionNumPages", "LastSessionNumEvents", "LastSessionActiveSec"):
        assert table.schema.field(name).type == pa.int64(), name
    assert table.schema.field("LastLatLong").type == pa.string()


@pytest.mark.parametrize("export_format", FORMATS)
def test_export_fields_never_take_our_columns(tmp_path: Path, export_format: str) -> None:
    rows = [
        {
            **BASE,
            "IndvId": 1,
            "segment_id": "theirs",
            "WindowStart": "2020-01-01",
            "event_bucket": "b",
            "_dlt_load_id": "x",
        }
    ]
    table, warnings = read(write(tmp_path, rows, export_format), export_format)
    got = table.to_pylist()[0]
    assert got["segment_id"] == "everyone" and got["window_start"] == WINDOW_START
    assert got["export_segment_id"] == "theirs"
    assert got["export_WindowStart"] == "2020-01-01"
    assert got["export_event_bucket"] == "b"
    assert got["export__dlt_load_id"] == "x"
    assert len(warnings) == 4 and all("it is loaded as 'export_" in w for w in warnings)


@pytest.mark.parametrize("export_format", FORMATS)
def test_fields_that_differ_only_in_case_both_load(tmp_path: Path, export_format: str) -> None:
    rows = [
        {
            **BASE,
            "IndvId": 1,
            "evt_Coupon_str": "A",
            "evt_coupon_str": "b",
            "evt_a.b_int": 1,
            "evt_a_b_int": 2,
        },
        {**BASE, "IndvId": 2, "evt_coupon_str": "c"},
    ]
    table, warnings = read(write(tmp_path, rows, export_format), export_format)
    names = table.schema.names
    by_value = {tuple(table.column(n).to_pylist()): n for n in names}
    assert ("A", None) in by_value and ("b", "c") in by_value
    assert (1, None) in by_value and (2, None) in by_value
    assert table.schema.field(by_value[(1, None)]).type == pa.int64()
    assert len(warnings) == 2


def test_through_dlt_our_segment_id_stays_the_merge_key(tmp_path: Path) -> None:
    """A real dlt pipeline into DuckDB: the export's own `segment_id` and `_dlt_id` fields load
    beside ours, and re-loading the window replaces it exactly."""
    rows = [{**BASE, "IndvId": i, "segment_id": "theirs", "_dlt_id": "no"} for i in range(3)]
    path = write(tmp_path, rows, "ndjson")

    @dlt.resource(name="events", write_disposition={"disposition": "merge", "strategy": "delete-insert"})
    def events() -> Any:
        for batch in read_export(
            path, "ndjson", dict(CONSTANTS), required=("EventStart",), warn=lambda _: None
        ):
            yield EXPORT_TYPES["events"].prepare_batch(batch)

    database = tmp_path / "t.duckdb"
    pipeline = dlt.pipeline(
        "reader_reserved",
        destination=dlt.destinations.duckdb(str(database)),
        dataset_name="fullstory",
        pipelines_dir=str(tmp_path / "p"),
    )
    for _ in range(2):
        pipeline.run(events().apply_hints(merge_key=["segment_id", "event_bucket"]))
    with duckdb.connect(str(database), read_only=True) as con:
        got = con.execute(
            "SELECT segment_id, export_segment_id, export__dlt_id, count(*) "
            "FROM fullstory.events GROUP BY ALL"
        ).fetchall()
    assert got == [("everyone", "theirs", "no", 3)]


def test_a_sandbox_window_loads_absent_text_as_null_and_newer_fields_typed(
    live_sandbox: Sandbox, database: Path
) -> None:
    """Through the whole source: FullStory's "" (no sub type, no custom name...) is NULL, and
    the newer export fields the sandbox sends have their documented types."""
    make_pipeline(database).run(
        source(
            live_sandbox,
            segment_ids=["everyone"],
            export_types=["events"],
            start_date="2026-10-01T00:00:00Z",
            end_date="2026-10-01T06:00:00Z",
        )
    )
    empty, null, total = query(
        database,
        "SELECT count(*) FILTER (WHERE event_sub_type = ''), count(*) FILTER (WHERE event_sub_type IS NULL), "
        "count(*) FROM fullstory.events",
    )[0]
    assert total > 10 and empty == 0 and 0 < null < total
    types = dict(
        query(
            database,
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'fullstory' AND table_name = 'events'",
        )
    )
    assert types["event_cumulative_layout_shift"] == "DOUBLE"
    for column in ("page_num_events", "page_num_derived_events", "load_largest_paint_time"):
        assert types[column] == "BIGINT", column
    assert types["event_target_selector"] == "VARCHAR"
