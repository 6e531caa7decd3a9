"""read_ahead.py: the typed read of a first guess of the keys beside the scan of the whole file
gives exactly what the exact read (scan first, then read) gives, whatever the file holds."""

from __future__ import annotations

import gzip
import json
import logging
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from fullstory_source import key_scan
from fullstory_source import read_ahead as read_ahead_module
from fullstory_source.errors import ExportParseError
from fullstory_source.read_ahead import batches_of, read_ahead
from fullstory_source.readers import read_export
from fullstory_source.stopping import StoppedError

CONSTANTS: dict[str, Any] = {
    "segment_id": "everyone",
    "window_start": datetime(2026, 10, 1, tzinfo=UTC),
    "window_end": datetime(2026, 10, 2, tzinfo=UTC),
}
WHAT = "segment 'everyone', events, window 2026-10-01"
REREAD = "reading the file again with them"


def rows(count: int) -> list[dict[str, Any]]:
    return [
        {"EventStart": f"2026-10-01T00:{i % 60:02d}:00Z", "IndvId": i, "EventType": "click", "user_n_int": i}
        for i in range(count)
    ]


def write(directory: Path, items: list[dict[str, Any]], export_format: str) -> Path:
    if export_format == "json":
        text = "[" + ",\n".join(json.dumps(r) for r in items) + "]"
    else:
        text = "".join(json.dumps(r) + "\n" for r in items)
    path = directory / f"export.{export_format}.gz"
    path.write_bytes(gzip.compress(text.encode()))
    return path


def exact(path: Path, export_format: str) -> pa.Table:
    return pa.Table.from_batches(
        list(read_export(path, export_format, dict(CONSTANTS), what=WHAT, required=("IndvId",)))
    )


def ahead(path: Path, export_format: str, **kwargs: Any) -> pa.Table | None:
    target = path.with_name(path.name + ".arrow")
    columns = read_ahead(
        read_export, path, export_format, dict(CONSTANTS), target, what=WHAT, required=("IndvId",), **kwargs
    )
    if columns is None:
        assert not target.exists()
        return None
    return pa.Table.from_batches(list(batches_of(target, columns)))


@pytest.mark.parametrize("export_format", ["json", "ndjson"])
def test_keys_all_in_the_first_objects_are_read_once_and_equal_the_exact_read(
    tmp_path: Path, export_format: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = write(tmp_path, rows(25_000), export_format)
    with caplog.at_level(logging.INFO):
        table = ahead(path, export_format)
    assert table is not None and table.equals(exact(path, export_format))
    assert table.num_rows == 25_000
    assert REREAD not in caplog.text


@pytest.mark.parametrize("export_format", ["json", "ndjson"])
def test_a_key_first_seen_after_the_first_objects_reads_the_file_again_with_it(
    tmp_path: Path, export_format: str, caplog: pytest.LogCaptureFixture
) -> None:
    items = rows(key_scan.SAMPLE_OBJECTS + 5)
    items[-2] = {**items[-2], "evt_coupon_str": "WELCOME, FRIEND", "evt_late_real": 2.5}
    path = write(tmp_path, items, export_format)
    with caplog.at_level(logging.INFO):
        table = ahead(path, export_format)
    assert table is not None and table.equals(exact(path, export_format))
    assert table.column("evt_coupon_str").to_pylist()[-2] == "WELCOME, FRIEND"
    assert table.column("evt_late_real").to_pylist()[-2] == 2.5
    assert f"evt_coupon_str, evt_late_real first appear(s) after the first {key_scan.SAMPLE_OBJECTS}" in (
        caplog.text
    )
    assert REREAD in caplog.text


def test_a_value_that_does_not_fit_is_reported_once_even_when_the_file_is_read_twice(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    items = rows(key_scan.SAMPLE_OBJECTS + 5)
    items[3]["user_n_int"] = "not a number"
    items[-1] = {**items[-1], "evt_late_str": "late"}
    path = write(tmp_path, items, "json")
    with caplog.at_level(logging.WARNING):
        table = ahead(path, "json")
    assert table is not None and table.column("user_n_int").to_pylist()[3] is None
    assert REREAD not in caplog.text  # INFO is not captured here
    assert caplog.text.count("value(s) of 'user_n_int' are not integers") == 1


def test_a_first_guess_only_of_keys_the_catalog_types_by_name(tmp_path: Path) -> None:
    known = write(tmp_path, rows(10), "json")
    first = key_scan.first_keys(known, "json")
    assert first is not None and first.keys == ["EventStart", "IndvId", "EventType", "user_n_int"]
    (tmp_path / "b").mkdir()
    unknown = write(tmp_path / "b", [{**r, "NewFullStoryField": 1} for r in rows(10)], "json")
    assert key_scan.first_keys(unknown, "json") is None  # its type comes from the whole file
    (tmp_path / "c").mkdir()
    cased = write(tmp_path / "c", [{**r, "evt_a_str": "x", "evt_A_str": "y"} for r in rows(10)], "ndjson")
    assert key_scan.first_keys(cased, "ndjson") is None
    assert key_scan.first_keys(known, "csv") is None


def test_a_file_that_cannot_be_parsed_fails_like_the_exact_read(tmp_path: Path) -> None:
    items = rows(30_000)
    text = "[" + ",\n".join(json.dumps(r) for r in items) + ',\n{"IndvId": 1, "EventType": '
    path = tmp_path / "broken.json.gz"
    path.write_bytes(gzip.compress(text.encode()))
    with pytest.raises(ExportParseError, match="cursor did not move"):
        ahead(path, "json")
    assert not path.with_name(path.name + ".arrow").exists()
    assert not [t for t in threading.enumerate() if t.name == "fullstory-key-scan"]


def test_a_stop_ends_the_scan_beside_the_read(tmp_path: Path) -> None:
    path = write(tmp_path, rows(60_000), "json")

    def stop() -> None:
        raise StoppedError("stopping")

    with pytest.raises(StoppedError):
        ahead(path, "json", each_batch=stop)
    assert not path.with_name(path.name + ".arrow").exists()
    assert not [t for t in threading.enumerate() if t.name == "fullstory-key-scan"]


def test_a_file_without_rows_leaves_no_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.json.gz"
    path.write_bytes(gzip.compress(b"[]"))
    assert ahead(path, "json") is None


def test_keys_that_keep_turning_up_still_give_the_exact_read(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    items = rows(key_scan.SAMPLE_OBJECTS + 60_000)
    late = [f"evt_k{i}_str" for i in range(read_ahead_module.RESTARTS + 3)]
    for i, key in enumerate(late):
        row = key_scan.SAMPLE_OBJECTS + i * 10_000
        items[row] = {**items[row], key: f"value {i}"}
    path = write(tmp_path, items, "json")
    with caplog.at_level(logging.INFO):
        table = ahead(path, "json")
    assert table is not None and table.equals(exact(path, "json"))
    assert [table.column(key).drop_null().to_pylist() for key in late] == [
        [f"value {i}"] for i in range(len(late))
    ]
    assert REREAD in caplog.text


def test_the_scan_beside_the_read_finds_every_key_the_exact_scan_finds(tmp_path: Path) -> None:
    items = [
        {
            "EventStart": "2026-10-01T00:00:00Z",
            "IndvId": i,
            **({"evt_b_str": "x"} if i % 3 else {"evt_a_int": 1}),
        }
        for i in range(30_000)
    ]
    items[-1]["evt_z_bool"] = True
    items[-2]["evt_y_str"] = "y"
    path = write(tmp_path, items, "ndjson")
    with duckdb.connect() as con:
        every_key = key_scan.json_keys(con, key_scan.literal(str(path)), "newline_delimited")
    assert len(every_key) == 6
    first = key_scan.first_keys(path, "ndjson")
    assert first is not None and first.keys == ["EventStart", "IndvId", "evt_a_int", "evt_b_str"]
    scan = key_scan.KeyScan(path, "ndjson", first)
    assert scan.result() == every_key
    assert scan.beyond(set(first.keys)) == ["evt_y_str", "evt_z_bool"]


def test_fields_that_meet_in_one_column_are_named_as_the_exact_read_names_them(tmp_path: Path) -> None:
    """Which of two such fields is renamed follows the key order; the order of the first
    objects' keys can differ from the whole file's."""
    items = [
        {"EventStart": "2026-10-01T00:00:00Z", "IndvId": i, "evt_a.b_str": "dotted"} for i in range(25_000)
    ]
    items[-1] = {"EventStart": "2026-10-01T00:00:00Z", "IndvId": 1, "evt_a_b_str": "plain", "evt_x_str": "x"}
    path = write(tmp_path, items, "json")
    table = ahead(path, "json")
    assert table is not None and table.equals(exact(path, "json"))


def test_without_a_spare_slot_the_scan_runs_first_and_the_result_is_the_same(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    items = rows(key_scan.SAMPLE_OBJECTS + 5)
    items[-1] = {**items[-1], "evt_coupon_str": "late"}
    path = write(tmp_path, items, "json")
    busy = threading.BoundedSemaphore(1)
    busy.acquire()  # another window's read holds the only other slot
    with caplog.at_level(logging.INFO):
        table = ahead(path, "json", spare=busy)
    assert table is not None and table.equals(exact(path, "json"))
    assert REREAD not in caplog.text  # read once, after the scan
    free = threading.BoundedSemaphore(1)
    with caplog.at_level(logging.INFO):
        assert ahead(path, "json", spare=free) is not None
    assert REREAD in caplog.text  # read beside the scan, then again with the late key
    assert free.acquire(blocking=False)  # and the slot given back


@pytest.mark.parametrize("late_keys", [False, True])
@pytest.mark.parametrize("export_format", ["json", "ndjson"])
def test_columns_come_in_the_exact_reads_order_when_the_first_objects_order_differs(
    tmp_path: Path, export_format: str, late_keys: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """The exact order puts the longest key list first: a longer list after the first objects
    changes it without bringing a new key."""
    items: list[dict[str, Any]] = [
        {"IndvId": i, ("evt_a_str" if i % 2 else "evt_b_str"): "x"} for i in range(key_scan.SAMPLE_OBJECTS)
    ]
    items.append({"evt_b_str": "b", "IndvId": 0, "evt_a_str": "a"})
    if late_keys:  # after the first objects, and one of them not in the catalog
        items.append({"IndvId": 1, "segment_id": "a field named like one of ours", "evt_late_str": "late"})
    path = write(tmp_path, items, export_format)
    with caplog.at_level(logging.INFO):
        table = ahead(path, export_format)
    expected = exact(path, export_format)
    assert table is not None and table.schema.names == expected.schema.names
    assert table.equals(expected)
    assert (REREAD in caplog.text) == late_keys  # the order alone is put right without a read


def test_a_cancelled_scan_never_claims_a_whole_list(tmp_path: Path) -> None:
    """Cancelled at once (an interrupt sent before its query starts is lost, so the scan also
    checks a flag between batches) or later, it ends without a list."""
    path = write(tmp_path, rows(100_000), "ndjson")
    first = key_scan.first_keys(path, "ndjson")
    assert first is not None
    for _ in range(3):
        scan = key_scan.KeyScan(path, "ndjson", first)
        scan.cancel()
        assert scan.result() is None
    assert not [t for t in threading.enumerate() if t.name == "fullstory-key-scan"]
    assert key_scan.KeyScan(path, "ndjson", first).result() == first.keys


def test_reads_draw_no_progress_bar_over_the_commands_display() -> None:
    with key_scan.quiet_connection(threads=2) as con:
        assert con.execute("SELECT current_setting('enable_progress_bar')").fetchone() == (False,)
        assert con.execute("SELECT current_setting('threads')").fetchone() == (2,)
