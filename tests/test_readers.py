"""Export files -> typed Arrow batches: the same table from JSON, NDJSON and CSV."""

from __future__ import annotations

import csv
import gzip
import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from fullstory_source.errors import ExportParseError
from fullstory_source.readers import exact_select, read_export

from .support import csv_cell

FORMATS = ("json", "ndjson", "csv")
WINDOW_START = datetime(2026, 10, 1, tzinfo=UTC)
WINDOW_END = datetime(2026, 10, 1, 6, tzinfo=UTC)
CONSTANTS: dict[str, Any] = {
    "segment_id": "everyone",
    "window_start": WINDOW_START,
    "window_end": WINDOW_END,
}
WHAT = "segment 'everyone', events, window [2026-10-01T00:00:00Z, 2026-10-01T06:00:00Z)"
BIG_ID = 2**53 + 1  # a double cannot hold it: 9007199254740993 -> ...992
TRICKY_TEXT = 'Zoë "Zed" O\'Brien, Jr.\nsecond line: 山田 太郎 🛒'

ROWS: list[dict[str, Any]] = [
    {
        "EventStart": "2026-10-01T00:00:01.250Z",
        "EventType": "click",
        "IndvId": BIG_ID,
        "UserId": 2**62 + 7,
        "UserDisplayName": TRICKY_TEXT,
        "user_ltv_real": 3,  # a whole number first: still a double
        "user_seats_int": 12,
        "user_signup_date": "2026-09-01T12:00:00Z",
        "evt_tags_strs": ["sale, 50%", 'say "cheese"', "日本"],
        "evt_codes_ints": [200, 404],
        "user_beta_bool": True,
    },
    {
        "EventStart": "2026-10-01T00:59:59Z",
        "EventType": "navigate",
        "IndvId": 42,
        "UserId": 7,
        "UserDisplayName": "Smith, John",
        "user_ltv_real": 2.5,
        "user_seats_int": 1,
        "user_signup_date": "2026-09-01T14:00:00.001+02:00",  # an offset: read as UTC
        "evt_tags_strs": [],
        "evt_codes_ints": [500],
        "user_beta_bool": False,
    },
    {
        # sparse custom variables: no evt_tags_strs, no user_beta_bool
        "EventStart": "2026-10-01T05:59:59.999Z",
        "EventType": "custom",
        "IndvId": 2**62 + 3,
        "UserId": 8,
        "UserDisplayName": "Grüße",
        "user_ltv_real": 4,
        "user_seats_int": 250,
        "user_signup_date": "2026-09-30T23:00:00Z",
        "evt_codes_ints": [1, 2, 3],
    },
]


def encode(rows: list[dict[str, Any]], export_format: str) -> str:
    if export_format == "json":
        return "[" + ",\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "]"
    if export_format == "ndjson":
        return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    columns = list(dict.fromkeys(key for row in rows for key in row))
    out = io.StringIO(newline="")
    writer = csv.writer(out)  # RFC 4180: quotes doubled, newlines inside quoted cells, CRLF
    writer.writerow(columns)
    for row in rows:
        writer.writerow([csv_cell(row.get(c)) for c in columns])
    return out.getvalue()


def write(
    directory: Path, rows: list[dict[str, Any]], export_format: str, *, compressed: bool = True
) -> Path:
    path = directory / f"export.{export_format}{'.gz' if compressed else ''}"
    data = encode(rows, export_format).encode("utf-8")
    path.write_bytes(gzip.compress(data) if compressed else data)
    return path


def read(path: Path, export_format: str, **kwargs: Any) -> pa.Table:
    batches = list(read_export(path, export_format, dict(CONSTANTS), what=WHAT, **kwargs))
    assert batches, "no batches"
    return pa.Table.from_batches(batches)


@pytest.fixture(params=FORMATS)
def export_format(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_the_csv_really_holds_the_tricky_cells(tmp_path: Path) -> None:
    text = gzip.decompress(write(tmp_path, ROWS, "csv").read_bytes()).decode("utf-8")
    assert '"Zoë ""Zed"" O\'Brien, Jr.\nsecond line: 山田 太郎 🛒"' in text
    assert '"[""sale, 50%"", ""say \\""cheese\\"""", ""日本""]"' in text


def test_every_format_gives_the_same_typed_table(tmp_path: Path) -> None:
    tables = {}
    for export_format in FORMATS:
        directory = tmp_path / export_format
        directory.mkdir()
        tables[export_format] = read(write(directory, ROWS, export_format), export_format)
    reference = tables["json"]
    for export_format in ("ndjson", "csv"):
        table = tables[export_format]
        assert table.schema == reference.schema, export_format
        assert table.to_pylist() == reference.to_pylist(), export_format
        assert table.equals(reference), export_format


def test_columns_are_typed_by_field_name(tmp_path: Path, export_format: str) -> None:
    table = read(write(tmp_path, ROWS, export_format), export_format)
    utc_timestamp = pa.timestamp("us", tz="UTC")
    expected_types = {
        "EventStart": utc_timestamp,
        "user_signup_date": utc_timestamp,
        "window_start": utc_timestamp,
        "window_end": utc_timestamp,
        "IndvId": pa.int64(),
        "UserId": pa.int64(),
        "user_seats_int": pa.int64(),
        "user_ltv_real": pa.float64(),
        "user_beta_bool": pa.bool_(),
        "EventType": pa.string(),
        "UserDisplayName": pa.string(),
        "segment_id": pa.string(),
    }
    for name, arrow_type in expected_types.items():
        assert table.schema.field(name).type == arrow_type, name
    tags = table.schema.field("evt_tags_strs").type
    codes = table.schema.field("evt_codes_ints").type
    assert pa.types.is_list(tags) and tags.value_type == pa.string()
    assert pa.types.is_list(codes) and codes.value_type == pa.int64()
    assert table.num_columns == len({k for r in ROWS for k in r}) + len(CONSTANTS)


def test_values_survive_exactly(tmp_path: Path, export_format: str) -> None:
    rows = read(write(tmp_path, ROWS, export_format), export_format).to_pylist()
    assert [r["IndvId"] for r in rows] == [BIG_ID, 42, 2**62 + 3]
    assert rows[0]["UserId"] == 2**62 + 7
    assert [r["EventStart"] for r in rows] == [
        datetime(2026, 10, 1, 0, 0, 1, 250000, tzinfo=UTC),
        datetime(2026, 10, 1, 0, 59, 59, tzinfo=UTC),
        datetime(2026, 10, 1, 5, 59, 59, 999000, tzinfo=UTC),
    ]
    assert all(r["EventStart"].utcoffset().total_seconds() == 0 for r in rows)
    assert rows[1]["user_signup_date"] == datetime(2026, 9, 1, 12, 0, 0, 1000, tzinfo=UTC)
    assert [r["user_ltv_real"] for r in rows] == [3.0, 2.5, 4.0]
    assert all(isinstance(r["user_ltv_real"], float) for r in rows)
    assert rows[0]["UserDisplayName"] == TRICKY_TEXT
    assert rows[0]["evt_tags_strs"] == ["sale, 50%", 'say "cheese"', "日本"]
    assert rows[1]["evt_tags_strs"] == []
    assert rows[2]["evt_tags_strs"] is None
    assert [r["evt_codes_ints"] for r in rows] == [[200, 404], [500], [1, 2, 3]]
    assert [r["user_beta_bool"] for r in rows] == [True, False, None]
    for row in rows:
        assert row["segment_id"] == "everyone"
        assert row["window_start"] == WINDOW_START
        assert row["window_end"] == WINDOW_END


@pytest.mark.parametrize("keys_given", [False, True])
def test_the_exact_select_run_inside_duckdb_gives_the_rows_read_export_streams(
    tmp_path: Path, export_format: str, keys_given: bool
) -> None:
    """What bench/'s duckdb_exact case loads in one statement (keys given, as the bench does) is
    the pipeline's own conversion: its floor measures the same work."""
    import duckdb

    misfit = {**ROWS[1], "user_seats_int": 2.5}  # not an integer: NULL, and counted
    rows = [*ROWS, misfit]
    path = write(tmp_path, rows, export_format)
    keys = (
        list(dict.fromkeys(k for row in rows for k in row)) if keys_given and export_format != "csv" else None
    )
    streamed = read(path, export_format, keys=keys, warn=lambda _: None)
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        query = exact_select(con, path, export_format, dict(CONSTANTS), keys)
        assert query is not None
        loaded = con.sql(query).to_arrow_table()
    # the same columns, names and types in the same order, then the count of values that did not fit
    assert loaded.column_names[:-1] == streamed.column_names
    assert [f.type for f in loaded.schema][:-1] == [f.type for f in streamed.schema]
    assert loaded.column(loaded.num_columns - 1).to_pylist() == [0, 0, 0, 1]
    assert loaded.drop_columns([loaded.column_names[-1]]).to_pylist() == streamed.to_pylist()
    assert streamed.column("user_seats_int").to_pylist() == [12, 1, 250, None]


def test_the_exact_select_of_a_file_without_rows_is_none(tmp_path: Path) -> None:
    import duckdb

    path = tmp_path / "empty.json.gz"
    path.write_bytes(gzip.compress(b"[]"))
    with duckdb.connect() as con:
        assert exact_select(con, path, "json", dict(CONSTANTS)) is None


def test_constants_and_required_fields_are_not_null(tmp_path: Path, export_format: str) -> None:
    table = read(write(tmp_path, ROWS, export_format), export_format, required=("IndvId",))
    schema = table.schema
    for name in ("segment_id", "window_start", "window_end", "IndvId"):
        assert not schema.field(name).nullable, name
    for name in ("EventStart", "UserId", "user_beta_bool", "evt_tags_strs"):
        assert schema.field(name).nullable, name


def test_without_required_the_key_columns_stay_nullable(tmp_path: Path) -> None:
    table = read(write(tmp_path, ROWS, "json"), "json")
    assert table.schema.field("IndvId").nullable
    assert not table.schema.field("segment_id").nullable


def test_a_row_without_a_required_field_is_an_error(tmp_path: Path, export_format: str) -> None:
    rows = [dict(ROWS[0]), {k: v for k, v in ROWS[1].items() if k != "IndvId"}, dict(ROWS[2])]
    path = write(tmp_path, rows, export_format)
    with pytest.raises(ExportParseError) as raised:
        read(path, export_format, required=("IndvId",))
    message = str(raised.value)
    assert "without IndvId" in message and WHAT in message
    assert "cursor did not move" in message


def test_a_file_without_a_required_field_at_all_is_an_error(tmp_path: Path) -> None:
    rows = [{k: v for k, v in row.items() if k != "IndvId"} for row in ROWS]
    with pytest.raises(ExportParseError) as raised:
        read(write(tmp_path, rows, "json"), "json", required=("IndvId",))
    assert "['IndvId']" in str(raised.value) and WHAT in str(raised.value)


@pytest.mark.parametrize(
    ("export_format", "text"),
    [
        ("json", '[{"IndvId": 1, "EventType": "click"},\n{"IndvId": 2, "EventType": '),
        ("json", '[{"IndvId": 1}, {"IndvId": 2}'),
        ("ndjson", '{"IndvId": 1}\n{"IndvId": 2, "EventType": "cl\n'),
        ("csv", 'IndvId,EventType\r\n1,click\r\n2,"unterminated\r\n'),
    ],
)
def test_malformed_files_raise_a_parse_error_naming_the_export(
    tmp_path: Path, export_format: str, text: str
) -> None:
    path = tmp_path / f"broken.{export_format}.gz"
    path.write_bytes(gzip.compress(text.encode()))
    with pytest.raises(ExportParseError) as raised:
        read(path, export_format)
    message = str(raised.value)
    assert WHAT in message
    assert f"the {export_format} export" in message
    assert "cursor did not move" in message


def test_parse_errors_name_the_file_when_no_what_is_given(tmp_path: Path) -> None:
    path = tmp_path / "nameless.json.gz"
    path.write_bytes(gzip.compress(b'[{"IndvId": '))
    with pytest.raises(ExportParseError, match="nameless.json.gz"):
        list(read_export(path, "json", dict(CONSTANTS)))


def test_an_uncompressed_file_also_reads(tmp_path: Path, export_format: str) -> None:
    compressed_dir = tmp_path / "gz"
    compressed_dir.mkdir()
    plain = read(write(tmp_path, ROWS, export_format, compressed=False), export_format)
    assert plain.equals(read(write(compressed_dir, ROWS, export_format), export_format))
    assert plain.column("IndvId").to_pylist()[0] == BIG_ID


@pytest.mark.parametrize("export_format", ["json", "ndjson"])
def test_a_key_that_appears_only_after_30000_rows_is_kept(tmp_path: Path, export_format: str) -> None:
    count = 30_001
    rows: list[dict[str, Any]] = [
        {"EventStart": "2026-10-01T00:00:00Z", "IndvId": i, "EventType": "click"} for i in range(count)
    ]
    rows[-1] = {**rows[-1], "evt_coupon_str": "WELCOME, FRIEND", "evt_late_real": 2}
    table = read(write(tmp_path, rows, export_format), export_format, batch_rows=10_000)
    assert table.num_rows == count
    coupons = table.column("evt_coupon_str")
    assert coupons.null_count == count - 1
    assert coupons.to_pylist()[-1] == "WELCOME, FRIEND"
    assert table.schema.field("evt_late_real").type == pa.float64()
    assert table.column("evt_late_real").to_pylist()[-1] == 2.0


def test_batches_are_bounded_and_share_one_schema(tmp_path: Path) -> None:
    rows = [{"EventStart": "2026-10-01T00:00:00Z", "IndvId": i} for i in range(25_000)]
    path = write(tmp_path, rows, "ndjson")
    batches = list(read_export(path, "ndjson", dict(CONSTANTS), required=("IndvId",), batch_rows=4096))
    assert len(batches) > 1
    assert all(b.num_rows <= 4096 for b in batches)
    assert sum(b.num_rows for b in batches) == 25_000
    assert all(b.schema == batches[0].schema for b in batches)
    assert not batches[-1].schema.field("IndvId").nullable
    ids = [i for b in batches for i in b.column("IndvId").to_pylist()]
    assert sorted(ids) == list(range(25_000))


@pytest.mark.parametrize("export_format", ["csv", "json"])
def test_a_file_that_breaks_off_after_many_rows_is_a_parse_error(tmp_path: Path, export_format: str) -> None:
    """DuckDB meets the damage while it streams, after batches went out (not at the start)."""
    good = 30_000
    if export_format == "csv":
        text = "IndvId,EventType\r\n" + "".join(f"{i},click\r\n" for i in range(good)) + '1,"unterminated\r\n'
    else:
        text = "[" + ",".join(f'{{"IndvId": {i}}}' for i in range(good)) + ', {"IndvId": '
    path = tmp_path / f"late-break.{export_format}.gz"
    path.write_bytes(gzip.compress(text.encode()))
    keys = {"keys": ["IndvId"]} if export_format == "json" else {}
    with pytest.raises(ExportParseError) as raised:
        list(read_export(path, export_format, dict(CONSTANTS), what=WHAT, batch_rows=1000, **keys))
    assert WHAT in str(raised.value) and "cursor did not move" in str(raised.value)
