"""The export-load benchmark's own functions on a tiny export: it runs every case end to end
(sandbox over HTTP, child processes, real DuckDB files) and writes a complete result. Nothing
here is timed: the numbers come from `python -m bench.export_load` (docs/performance.md)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from bench import cache, cases, export_load
from fullstory_sandbox import Sandbox
from fullstory_sandbox.encode import write_export
from fullstory_sandbox.server import _rows, export_cache_name

ROWS = 2_000


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("bench-cache")
    cache.ensure_exports(directory, ROWS, cache.FORMATS, log=lambda _: None)
    return directory


def test_cached_exports_hold_exactly_what_the_sandbox_would_write(cache_dir: Path, tmp_path: Path) -> None:
    eph = cache.events_per_hour_for(ROWS)
    for export_format in cache.FORMATS:
        export = cache.cached(cache_dir, export_format, eph)
        assert export is not None
        assert export.path.name == export_cache_name(cache.job(export_format), eph)
        reference = tmp_path / f"reference.{export_format}.gz"
        count = write_export(reference, _rows(cache.job(export_format), eph), export_format)
        text = gzip.decompress(export.path.read_bytes())
        assert text == gzip.decompress(reference.read_bytes()), export_format
        assert export.rows == count and abs(count - ROWS) < ROWS * 0.05
        assert export.raw_bytes == len(text)


def test_the_early_keys_variant_is_what_the_sandbox_serves_for_its_fields(
    cache_dir: Path, tmp_path: Path
) -> None:
    eph = cache.events_per_hour_for(ROWS)
    early = cache.ensure_early_exports(cache_dir, ROWS, cache.FORMATS, log=lambda _: None)
    fields = cache.early_fields(cache_dir, eph)
    assert cache.LATE_KEY not in fields and "EventStart" in fields
    for export_format, export in early.items():
        assert export.fields == fields
        reference = tmp_path / f"reference.{export_format}.gz"
        write_export(reference, _rows(cache.job(export_format, fields), eph), export_format)
        text = gzip.decompress(export.path.read_bytes())
        assert text == gzip.decompress(reference.read_bytes()), export_format
        assert cache.LATE_KEY.encode() not in text


def test_the_sandbox_serves_cached_exports_instead_of_generating_them(tmp_path: Path) -> None:
    eph = cache.events_per_hour_for(ROWS)
    planted = gzip.compress(b"IndvId,EventType\r\n1,planted\r\n")
    cache.cache_path(tmp_path, "csv", eph).write_bytes(planted)
    sandbox = Sandbox(
        api_key=cases.API_KEY,
        flavor="live",
        events_per_hour=eph,
        operation_polls=1,
        export_cache_dir=str(tmp_path),
    )
    with sandbox:
        downloaded = cases._naive_download(sandbox.base_url, cache.SEGMENT, "csv", tmp_path / "got.csv.gz")
        fresh = cases._naive_download(sandbox.base_url, cache.SEGMENT, "ndjson", tmp_path / "got.ndjson.gz")
    assert downloaded.read_bytes() == planted
    # a missing one is generated once, into the cache
    assert cache.cache_path(tmp_path, "ndjson", eph).read_bytes() == fresh.read_bytes()


def test_a_benchmark_run_measures_every_case_and_writes_complete_json(
    cache_dir: Path, tmp_path: Path
) -> None:
    result = export_load.run_benchmark(
        [ROWS],
        ["ndjson"],
        cases.CASES,
        late_formats=["json"],
        naive_formats=["ndjson"],
        cache_dir=cache_dir,
        log=lambda _: None,
    )
    eph = cache.events_per_hour_for(ROWS)
    rows = cache.cached(cache_dir, "ndjson", eph, cache.early_fields(cache_dir, eph)).rows
    late = [entry for entry in result["table"] if entry["format"] == "json late key"]
    assert {entry["case"] for entry in late} == {"pipeline", "duckdb", "duckdb_typed", "duckdb_exact"}
    assert all(entry["rows"] == cache.cached(cache_dir, "json", eph).rows for entry in late)
    table = {entry["case"]: entry for entry in result["table"] if entry["format"] == "ndjson"}
    assert set(table) == set(cases.CASES)
    for entry in table.values():
        assert entry["rows"] == rows
        assert entry["rows_per_s"] > 0 and entry["seconds"] > 0 and entry["peak_rss_mb"] > 0
        assert entry["format"] == "ndjson" and entry["nominal_rows"] == ROWS
    assert table["pipeline"]["type_problems"] == []
    assert set(table["pipeline"]["steps"]) >= {"extract", "normalize", "load"}
    (ratio,) = [r for r in result["ratios"] if r["format"] == "ndjson"]
    expected = {
        "pipeline_vs_duckdb",
        "pipeline_vs_duckdb_typed",
        "pipeline_vs_duckdb_exact",
        "pipeline_vs_naive",
    }
    assert expected | {"duckdb_exact_vs_duckdb"} <= set(ratio)
    assert set(result["targets"]) >= {"ratio_vs_duckdb", "types_exact", "peak_rss_largest"}
    assert result["machine"]["cpus"] >= 1 and result["machine"]["duckdb"]
    output = tmp_path / "result.json"
    output.write_text(json.dumps(result))
    assert json.loads(output.read_text())["table"] == result["table"]
    assert "pipeline" in export_load.render(result)


def test_row_counts_on_the_command_line() -> None:
    assert export_load.parse_rows("1000000,5M,200k,2_000") == [1_000_000, 5_000_000, 200_000, 2_000]


def test_expected_types_follow_the_field_names() -> None:
    expected = export_load.expected_types(
        ["EventStart", "IndvId", "evt_order.items_real", "evt_tags_strs", "X"]
    )
    assert expected["event_start"] == "TIMESTAMP WITH TIME ZONE"
    assert expected["indv_id"] == "BIGINT"
    assert expected["evt_order_items_real"] == "DOUBLE"
    assert expected["evt_tags_strs"] == "JSON"
    assert expected["x"] == "VARCHAR"
    assert export_load.type_problems({"indv_id": "DOUBLE"}, {"indv_id": "BIGINT", "x": "VARCHAR"}) == [
        "x: missing",
        "indv_id: DOUBLE instead of BIGINT",
    ]
