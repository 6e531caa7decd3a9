"""The fast paths of readers.py: keys found by a light scan, types given to DuckDB up front,
bounded batches. What must not change while they are fast: no key is ever dropped, and every
column has the type its name declares (or text), in every format."""

from __future__ import annotations

import csv
import gzip
import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from fullstory_source import readers
from fullstory_source.readers import column_type, json_keys, read_export

from .support import csv_cell

CONSTANTS: dict[str, Any] = {
    "segment_id": "everyone",
    "window_start": datetime(2026, 10, 1, tzinfo=UTC),
    "window_end": datetime(2026, 10, 2, tzinfo=UTC),
}
FORMATS = ("json", "ndjson", "csv")


def write(directory: Path, rows: list[dict[str, Any]], export_format: str, *, one_line: bool = False) -> Path:
    if export_format == "json":
        text = ("," if one_line else ",\n").join(json.dumps(r) for r in rows)
        text = f"[{text}]"
    elif export_format == "ndjson":
        text = "".join(json.dumps(r) + "\n" for r in rows)
    else:
        columns = list(dict.fromkeys(k for r in rows for k in r))
        out = io.StringIO(newline="")
        writer = csv.writer(out)
        writer.writerow(columns)
        writer.writerows([csv_cell(r.get(c)) for c in columns] for r in rows)
        text = out.getvalue()
    path = directory / f"export.{export_format}.gz"
    path.write_bytes(gzip.compress(text.encode()))
    return path


def read(path: Path, export_format: str, **kwargs: Any) -> pa.Table:
    batches = list(read_export(path, export_format, dict(CONSTANTS), **kwargs))
    return pa.Table.from_batches(batches)


@pytest.mark.parametrize("one_line", [False, True])
@pytest.mark.parametrize("export_format", ["json", "ndjson"])
def test_keys_first_seen_after_30000_rows_are_loaded_with_their_types(
    tmp_path: Path, export_format: str, one_line: bool
) -> None:
    count = 40_000
    rows: list[dict[str, Any]] = [
        {"EventStart": "2026-10-01T00:00:00Z", "IndvId": i, "EventType": "click"} for i in range(count)
    ]
    rows[30_500] = {**rows[30_500], "evt_coupon_str": "WELCOME, FRIEND"}
    rows[-1] = {**rows[-1], "evt_late_real": 2, "evt_late_ints": [1, 2], "SomethingNew": 7}
    table = read(write(tmp_path, rows, export_format, one_line=one_line), export_format)
    assert table.num_rows == count
    assert table.column("evt_coupon_str").to_pylist()[30_500] == "WELCOME, FRIEND"
    assert table.column("evt_coupon_str").null_count == count - 1
    assert table.schema.field("evt_late_real").type == pa.float64()
    assert table.column("evt_late_real").to_pylist()[-1] == 2.0
    assert table.column("evt_late_ints").to_pylist()[-1] == [1, 2]
    # the catalog does not know it: its JSON value decides, a number stays a number
    assert table.schema.field("SomethingNew").type == pa.int64()
    assert table.column("SomethingNew").to_pylist()[-1] == 7


def test_the_key_scan_lists_every_key_once_in_a_stable_order(tmp_path: Path) -> None:
    rows = [{"a": 1, "b": 2}, {"b": 3, "a": 4, "c": 5}, {"a": 1}, {"d": None}, {}]
    path = write(tmp_path, rows, "ndjson")
    with duckdb.connect() as con:
        keys = json_keys(con, f"'{path}'", "newline_delimited")
    assert keys == ["b", "a", "c", "d"]  # the longest shape first, then keys not seen yet


def test_a_key_that_is_only_ever_null_is_a_text_column(tmp_path: Path) -> None:
    rows = [{"IndvId": 1, "evt_x_int": None, "Unknown": None}, {"IndvId": 2}]
    table = read(write(tmp_path, rows, "ndjson"), "ndjson")
    assert table.schema.field("evt_x_int").type == pa.int64()
    assert table.schema.field("Unknown").type == pa.string()
    assert table.column("Unknown").null_count == 2


@pytest.mark.parametrize("export_format", FORMATS)
def test_undeclared_and_known_text_fields_are_text_in_every_format(
    tmp_path: Path, export_format: str
) -> None:
    rows = [
        {
            "IndvId": 1,
            "PageBrowserVersion": "128.0",
            "EventCustomName": "2026-10-01",  # looks like a date; inference would make it one
            "PageClusterId": 12,
            "SomeFutureField": 3.5,
        },
        {"IndvId": 2, "PageBrowserVersion": "17", "EventCustomName": "x", "PageClusterId": 3},
    ]
    table = read(write(tmp_path, rows, export_format), export_format)
    assert table.schema.field("PageBrowserVersion").type == pa.string()
    assert table.schema.field("EventCustomName").type == pa.string()
    assert table.schema.field("PageClusterId").type == pa.int64()
    assert table.column("EventCustomName").to_pylist() == ["2026-10-01", "x"]
    assert table.column("PageBrowserVersion").to_pylist() == ["128.0", "17"]
    if export_format == "csv":  # no types in CSV: the catalog decides, and it does not know it
        assert table.schema.field("SomeFutureField").type == pa.string()
        assert table.column("SomeFutureField").to_pylist() == ["3.5", None]
    else:  # a JSON number the catalog does not know loads as a number
        assert table.schema.field("SomeFutureField").type == pa.float64()
        assert table.column("SomeFutureField").to_pylist() == [3.5, None]


@pytest.mark.parametrize("export_format", FORMATS)
def test_a_value_that_does_not_fit_its_declared_type_is_null_and_reported_not_an_error(
    tmp_path: Path, export_format: str
) -> None:
    rows = [{"IndvId": 1, "user_seats_int": 3}, {"IndvId": 2, "user_seats_int": "many"}]
    warnings: list[str] = []
    table = read(write(tmp_path, rows, export_format), export_format, warn=warnings.append)
    assert table.column("user_seats_int").to_pylist() == [3, None]
    assert warnings == [
        f"The export export.{export_format}.gz: 1 value(s) of 'user_seats_int' are not integers "
        "(e.g. 'many'); loaded as NULL."
    ]


def test_batches_are_bounded_by_default_and_share_one_schema(tmp_path: Path) -> None:
    count = readers.BATCH_ROWS * 2 + 7
    rows = [{"EventStart": "2026-10-01T00:00:00.5Z", "IndvId": i} for i in range(count)]
    rows[-1]["evt_late_bool"] = True
    batches = list(read_export(write(tmp_path, rows, "json"), "json", dict(CONSTANTS)))
    assert [b.num_rows for b in batches] == [readers.BATCH_ROWS, readers.BATCH_ROWS, 7]
    assert all(b.schema == batches[0].schema for b in batches)
    assert batches[0].schema.field("evt_late_bool").type == pa.bool_()


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("export_format", FORMATS)
def test_thread_count_does_not_change_the_rows_or_their_order(
    tmp_path: Path, export_format: str, threads: int
) -> None:
    rows = [{"EventStart": f"2026-10-01T00:{i % 60:02d}:00Z", "IndvId": i} for i in range(30_000)]
    table = read(write(tmp_path, rows, export_format), export_format, threads=threads)
    assert table.column("IndvId").to_pylist() == list(range(30_000))


def test_memory_is_released_while_reading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    monkeypatch.setattr(readers, "release_memory", lambda: calls.append(1))
    rows = [{"IndvId": i} for i in range(1000)]
    list(read_export(write(tmp_path, rows, "ndjson"), "ndjson", dict(CONSTANTS), batch_rows=10))
    assert len(calls) == 100 // readers._RELEASE_EVERY + 1  # every 20 batches, and at the end


def test_release_memory_runs_on_this_platform() -> None:
    readers.release_memory()  # must not raise, with or without glibc


def test_column_types_come_from_names() -> None:
    assert column_type("EventStart") == "TIMESTAMPTZ"
    assert column_type("PageClusterId") == "BIGINT"
    assert column_type("evt_codes_ints") == "BIGINT[]"
    assert column_type("user_ltv_real") == "DOUBLE"
    assert column_type("EventType") == "VARCHAR"
    assert column_type("AnythingElse") == "VARCHAR"
