"""Deterministic benchmark exports, generated once into a cache directory.

The files are exactly what the sandbox serves for an events export of one day of segment
`everyone` (same rows and fields, same encoding): they are written under `export_cache_name(...)`, the
name `Sandbox(export_cache_dir=...)` looks for, so the sandbox serves them instead of generating
them while a benchmark is timed. One pass over the generated rows writes NDJSON and JSON together;
CSV (whose header is the union of all keys) is then written from the NDJSON.
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fullstory_sandbox import current_fields, data
from fullstory_sandbox.encode import _COMPRESSLEVEL, _write_csv_rows
from fullstory_sandbox.server import export_cache_name
from fullstory_sandbox.validate import ExportJob

SEGMENT = "everyone"
WINDOW_START = datetime(2026, 10, 1, tzinfo=UTC)
WINDOW_END = WINDOW_START + timedelta(days=1)
FORMATS = ("json", "ndjson", "csv")
DEFAULT_CACHE = Path(__file__).resolve().parent / ".cache"
# A custom variable first seen after DuckDB's 20,480-row sample (odd hours only, data.py): the
# export as generated makes DuckDB's default read fail. The "early keys" variant is the same
# export requested with `fields` = every other key, a file DuckDB reads with its defaults.
LATE_KEY = "evt_coupon_str"


@dataclass(frozen=True)
class CachedExport:
    path: Path
    export_format: str
    events_per_hour: int
    rows: int
    gz_bytes: int
    raw_bytes: int
    fields: tuple[str, ...] | None = None  # the export's `fields` request (early-keys variant)


def events_per_hour_for(rows: int) -> int:
    """The sandbox's `events_per_hour` whose one-day export holds about `rows` rows.

    Each hour holds randint(eph // 2, eph * 3 // 2) events (data.py); the same seeded draws
    predict the day's total, so the nominal size is hit within a few rows."""
    hours = [WINDOW_START + timedelta(hours=h) for h in range(24)]
    guess = max(1, round(rows / 24))

    def total(eph: int) -> int:
        return sum(data._rng(SEGMENT, hour.isoformat()).randint(eph // 2, eph * 3 // 2) for hour in hours)

    def closest(candidates: range, best: int) -> int:
        return min([best, *candidates], key=lambda eph: (abs(total(eph) - rows), eph))

    step = max(1, guess // 400)
    best = closest(range(max(1, guess - guess // 10), guess + guess // 10 + 1, step), guess)
    return closest(range(max(1, best - step), best + step + 1), best)


def job(export_format: str, fields: tuple[str, ...] | None = None) -> ExportJob:
    return ExportJob(SEGMENT, "events", export_format, WINDOW_START, WINDOW_END, fields)


def cache_path(
    cache_dir: Path, export_format: str, events_per_hour: int, fields: tuple[str, ...] | None = None
) -> Path:
    return cache_dir / export_cache_name(job(export_format, fields), events_per_hour)


def _meta_path(path: Path) -> Path:
    return path.with_name(path.name + ".meta.json")


def cached(
    cache_dir: Path, export_format: str, events_per_hour: int, fields: tuple[str, ...] | None = None
) -> CachedExport | None:
    path = cache_path(cache_dir, export_format, events_per_hour, fields)
    meta = _meta_path(path)
    if not (path.exists() and meta.exists()):
        return None
    info = json.loads(meta.read_text())
    return CachedExport(
        path, export_format, events_per_hour, info["rows"], path.stat().st_size, info["raw_bytes"], fields
    )


def early_fields(cache_dir: Path, events_per_hour: int) -> tuple[str, ...]:
    """Every key of the generated export but the late one, in first-seen order."""
    ndjson = cache_path(cache_dir, "ndjson", events_per_hour)
    keys = json.loads(ndjson.with_name(ndjson.name + ".keys.json").read_text())
    return tuple(key for key in keys if key != LATE_KEY)


def ensure_early_exports(
    cache_dir: Path, rows: int, formats: Sequence[str], log: Any = print
) -> dict[str, CachedExport]:
    """The early-keys variant (see LATE_KEY) of the cached exports, generated if missing: the
    rows of the generated NDJSON without the late key, exactly what the sandbox's `fields`
    selection serves."""
    ensure_exports(cache_dir, rows, ["ndjson"], log)
    eph = events_per_hour_for(rows)
    fields = early_fields(cache_dir, eph)
    found = {fmt: cached(cache_dir, fmt, eph, fields) for fmt in formats}
    missing = [fmt for fmt, export in found.items() if export is None]
    if missing:
        log(f"writing the early-keys variant of the {rows:,}-row exports ({', '.join(missing)}) ...")
        source = cache_path(cache_dir, "ndjson", eph)
        early_ndjson = cache_path(cache_dir, "ndjson", eph, fields)
        if not _meta_path(early_ndjson).exists() or "json" in missing:
            targets = {"ndjson": early_ndjson}
            if "json" in missing:
                targets["json"] = cache_path(cache_dir, "json", eph, fields)
            rows_without = ({k: v for k, v in row.items() if k != LATE_KEY} for row in _ndjson_rows(source))
            _write_ndjson_and_json(targets, rows_without)
        if "csv" in missing:
            _write_csv(cache_path(cache_dir, "csv", eph, fields), list(fields), early_ndjson)
        found = {fmt: cached(cache_dir, fmt, eph, fields) for fmt in formats}
    return {fmt: export for fmt, export in found.items() if export is not None}


def ensure_exports(
    cache_dir: Path, rows: int, formats: Sequence[str], log: Any = print
) -> dict[str, CachedExport]:
    """The cached exports of about `rows` rows in `formats`, generated if missing."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    eph = events_per_hour_for(rows)
    found = {fmt: cached(cache_dir, fmt, eph) for fmt in formats}
    missing = [fmt for fmt, export in found.items() if export is None]
    if missing:
        log(f"generating the {rows:,}-row exports ({', '.join(missing)}) into {cache_dir} ...")
        generate(cache_dir, eph, missing)
        found = {fmt: cached(cache_dir, fmt, eph) for fmt in formats}
    return {fmt: export for fmt, export in found.items() if export is not None}


def generate(cache_dir: Path, events_per_hour: int, formats: Sequence[str]) -> None:
    """Write the exports in `formats` (NDJSON always, as CSV is made from it)."""
    ndjson = cache_path(cache_dir, "ndjson", events_per_hour)
    targets = {"ndjson": ndjson}
    if "json" in formats or not _meta_path(ndjson).exists():
        if "json" in formats:
            targets["json"] = cache_path(cache_dir, "json", events_per_hour)
        rows = data.events(SEGMENT, WINDOW_START, WINDOW_END, events_per_hour)
        keys = _write_ndjson_and_json(targets, current_fields.add(rows, "events"))
        _meta_path(ndjson).with_name(ndjson.name + ".keys.json").write_text(json.dumps(keys))
    if "csv" in formats:
        keys = json.loads(ndjson.with_name(ndjson.name + ".keys.json").read_text())
        _write_csv(cache_path(cache_dir, "csv", events_per_hour), keys, ndjson)


def _write_ndjson_and_json(targets: dict[str, Path], rows: Iterable[dict[str, Any]]) -> list[str]:
    """encode.write_export's NDJSON and JSON, from one pass over the rows."""
    partial = {fmt: path.with_name(path.name + f".{os.getpid()}.part") for fmt, path in targets.items()}
    outs = {
        fmt: gzip.open(path, "wt", encoding="utf-8", newline="", compresslevel=_COMPRESSLEVEL)  # noqa: SIM115
        for fmt, path in partial.items()
    }
    keys: dict[str, None] = {}
    count = 0
    raw = dict.fromkeys(outs, 0)
    try:
        nd, arr = outs.get("ndjson"), outs.get("json")
        if arr is not None:
            arr.write("[")
            raw["json"] += 1
        for row in rows:
            for key in row:
                keys.setdefault(key, None)
            text = json.dumps(row, ensure_ascii=False)
            size = len(text.encode("utf-8"))
            if nd is not None:
                nd.write(text)
                nd.write("\n")
                raw["ndjson"] += size + 1
            if arr is not None:
                if count:
                    arr.write(",\n")
                    raw["json"] += 2
                arr.write(text)
                raw["json"] += size
            count += 1
        if arr is not None:
            arr.write("]")
            raw["json"] += 1
    finally:
        for out in outs.values():
            out.close()
    for fmt, path in targets.items():
        partial[fmt].replace(path)
        _meta_path(path).write_text(json.dumps({"rows": count, "raw_bytes": raw[fmt]}))
    return list(keys)


def _ndjson_rows(path: Path) -> Iterator[dict[str, Any]]:
    with gzip.open(path, "rt", encoding="utf-8", newline="") as lines:
        for line in lines:
            yield json.loads(line)


class _Counting:
    """A text sink that counts the UTF-8 bytes written through it."""

    def __init__(self, out: Any) -> None:
        self.out = out
        self.bytes = 0

    def write(self, text: str) -> int:
        self.bytes += len(text.encode("utf-8"))
        return self.out.write(text)


def _write_csv(path: Path, keys: list[str], ndjson: Path) -> None:
    partial = path.with_name(path.name + f".{os.getpid()}.part")
    with gzip.open(partial, "wt", encoding="utf-8", newline="", compresslevel=_COMPRESSLEVEL) as out:
        counting = _Counting(out)
        count = _write_csv_rows(counting, keys, _ndjson_rows(ndjson))  # type: ignore[arg-type]
    partial.replace(path)
    _meta_path(path).write_text(json.dumps({"rows": count, "raw_bytes": counting.bytes}))
