"""Export files -> typed Arrow record batches, streamed in bounded memory.

DuckDB's JSON and CSV readers do the parsing: they read gzip directly, stream in bounded blocks,
handle one huge JSON array as well as NDJSON, and follow RFC 4180 quoting (newlines inside quoted
CSV values included). Column types come from the field names (fields.py), never from inference,
and are given to DuckDB up front, so it parses every value straight into its final type:
- JSON/NDJSON: a first, light pass lists every key of every object (a custom variable may first
  appear deep in a large export: DuckDB's sampled schema would then fail on it, or drop it), then
  the typed pass reads exactly those keys. Having DuckDB infer the schema from every row instead
  (`sample_size=-1`) costs about three times as much (docs/performance.md);
- CSV: the header names every column; cells are parsed into their declared types, list cells
  (JSON text) through `from_json`.
Fields whose name declares no type are text, in every format.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from .errors import ExportParseError
from .fields import TIMESTAMP, VARCHAR, declared_type

# Rows per Arrow batch. Events run to ~1.5 KB a row, so a batch is ~15 MB of Arrow data; bigger
# batches are not faster (DuckDB and dlt both stream) and only raise the peak memory.
BATCH_ROWS = 10_000
# DuckDB's working memory while it reads (its JSON reader takes 32 MB buffers, ~60 MB a thread;
# the batches it hands over are not counted).
MEMORY_LIMIT = "256MB"
# DuckDB threads of the typed pass, by format (measured on 2 cores, docs/performance.md):
# - JSON: one. A second one is ~20 % faster but its buffers cost ~40 MB more at the moment dlt's
#   writer holds its own, which takes a 5M-row load over 300 MB; the other core is busy anyway,
#   writing what dlt receives;
# - CSV: two, ~35 % faster, and with 4 MB read buffers it stays well below the JSON peak.
THREADS = {"json": 1, "ndjson": 1, "csv": 2}
# The JSON key scan parses every object but keeps almost nothing, and nothing else runs yet: a
# second thread makes it ~25 % faster for ~50 MB that are freed before the typed pass starts.
KEY_SCAN_THREADS = 2
# Hand freed memory back to the system after every query step rather than caching it.
_DUCKDB_CONFIG = {"allocator_flush_threshold": "8MB"}
# A 4 MB CSV read buffer instead of DuckDB's 32 MB: as fast, ~85 MB less memory.
_CSV_OPTIONS = "header=true, quote='\"', escape='\"', delim=',', strict_mode=true, buffer_size=4194304"
_JSON_FORMATS = {"json": "array", "ndjson": "newline_delimited"}
# Batches between two releases of freed memory to the system (see release_memory)
_RELEASE_EVERY = 20


def read_export(
    path: Path,
    export_format: str,
    constants: dict[str, Any],
    *,
    what: str = "",
    required: tuple[str, ...] = (),
    batch_rows: int = BATCH_ROWS,
    memory_limit: str = MEMORY_LIMIT,
    threads: int | None = None,
) -> Iterator[pa.RecordBatch]:
    """Yield the rows of one export file, each row extended with `constants` (segment id and
    window bounds) as extra columns. The constants and the `required` fields (key columns) are
    declared NOT NULL, as dlt declares merge and primary keys; a row without one is an error.
    Every batch has the same schema. `threads`: DuckDB threads of the typed pass (default:
    THREADS for the format)."""
    if export_format not in THREADS:
        raise ValueError(f"unknown export format {export_format!r}")
    threads = threads or THREADS[export_format]
    con = duckdb.connect(config={**_DUCKDB_CONFIG, "memory_limit": memory_limit, "threads": threads})
    name = what or path.name
    try:
        con.execute("SET TimeZone = 'UTC'")
        try:
            query = _query(con, path, export_format, constants, threads)
            if query is None:
                return  # not a single object in the file
            not_null = set(constants) | set(required)
            schema: pa.Schema | None = None
            for number, batch in enumerate(con.sql(query).to_arrow_reader(batch_rows), start=1):
                schema = schema or _not_null(batch.schema, not_null, name)
                yield _checked(batch, schema, required, name)
                if number % _RELEASE_EVERY == 0:
                    release_memory()
        except duckdb.Error as error:
            raise ExportParseError(
                f"Could not parse the {export_format} export {name}: {error}. "
                "Nothing was loaded for this window and its cursor did not move."
            ) from None
    finally:
        con.close()
        release_memory()


def _query(
    con: duckdb.DuckDBPyConnection, path: Path, export_format: str, constants: dict[str, Any], threads: int
) -> str | None:
    file = _literal(str(path))
    if export_format == "csv":
        header = con.execute(f"DESCRIBE SELECT * FROM read_csv({file}, {_CSV_OPTIONS}, all_varchar=true)")
        names = [row[0] for row in header.fetchall()]
        types = {name: _csv_type(name) for name in names}
        source = f"read_csv({file}, {_CSV_OPTIONS}, types={_struct(types)})"
        select = [_csv_column(name) for name in names]
    else:
        layout = _JSON_FORMATS[export_format]
        con.execute(f"SET threads = {max(threads, KEY_SCAN_THREADS)}")
        names = json_keys(con, file, layout)
        con.execute(f"SET threads = {threads}")
        if not names:
            return None
        types = {name: column_type(name) for name in names}
        source = f"read_json({file}, format='{layout}', records=true, columns={_struct(types)})"
        select = [_quote(name) for name in names]
    select += [f"{_literal(value)} AS {_quote(name)}" for name, value in constants.items()]
    return f"SELECT {', '.join(select)} FROM {source}"


def json_keys(con: duckdb.DuckDBPyConnection, file: str, layout: str) -> list[str]:
    """Every key of every object in the file, in a stable order: the distinct key lists (rows
    of the same shape share one), longest first, each adding the keys not seen yet in its own
    order. One pass over the raw objects that converts no value."""
    lists = con.execute(
        f"SELECT DISTINCT json_keys(json) FROM read_json_objects({file}, format='{layout}') "
        "WHERE json IS NOT NULL"
    ).fetchall()
    ordered = sorted((keys for (keys,) in lists if keys), key=lambda keys: (-len(keys), keys))
    return list(dict.fromkeys(key for keys in ordered for key in keys))


def column_type(name: str) -> str:
    """The DuckDB type a field is read as: its declared type, or text."""
    return declared_type(name) or VARCHAR


def _csv_type(name: str) -> str:
    sql_type = column_type(name)
    return VARCHAR if sql_type.endswith("[]") else sql_type  # lists arrive as JSON text


def _csv_column(name: str) -> str:
    column = _quote(name)
    target = column_type(name)
    if not target.endswith("[]"):
        return column
    element = VARCHAR if target[:-2] == TIMESTAMP else target[:-2]
    return f"CAST(from_json({column}, '[\"{element}\"]') AS {target}) AS {column}"


def _not_null(schema: pa.Schema, names: set[str], what: str) -> pa.Schema:
    missing = names - set(schema.names)
    if missing:
        raise ExportParseError(f"The export {what} has no {sorted(missing)} field; cannot key its rows")
    return pa.schema([f.with_nullable(f.name not in names) for f in schema])


def _checked(
    batch: pa.RecordBatch, schema: pa.Schema, required: tuple[str, ...], what: str
) -> pa.RecordBatch:
    for name in required:
        if batch.column(name).null_count:
            raise ExportParseError(
                f"The export {what} has rows without {name}; they cannot be merged. "
                "Nothing was loaded for this window and its cursor did not move."
            )
    return pa.RecordBatch.from_arrays(batch.columns, schema=schema)


def release_memory() -> None:
    """Hand memory that was freed back to the system. Streaming an export allocates and frees
    tens of MB per batch (in Arrow's pool and in C malloc, from several threads); glibc keeps
    such freed blocks in per-thread arenas, so without this the resident size of a long run
    creeps up with the number of rows."""
    pa.default_memory_pool().release_unused()
    if _malloc_trim is not None:
        _malloc_trim(0)


def prefer_system_allocator() -> None:
    """Have Arrow allocate with malloc, whose freed memory release_memory() hands back. Arrow's
    default allocator (mimalloc in the Linux wheels) keeps freed pages for reuse: a 5M-row CSV
    window peaked at 310-312 MB with it and 304 MB with malloc (full benchmark runs; 291 MB in a
    run of that case alone). It is process-wide, so the command calls it, not the source;
    ARROW_DEFAULT_MEMORY_POOL, when set, wins."""
    if not os.environ.get("ARROW_DEFAULT_MEMORY_POOL"):
        pa.set_memory_pool(pa.system_memory_pool())


def _find_malloc_trim() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc (musl has no malloc_trim)
        return None


_malloc_trim = _find_malloc_trim()


def _struct(types: dict[str, str]) -> str:
    return (
        "{" + ", ".join(f"{_literal(name)}: {_literal(sql_type)}" for name, sql_type in types.items()) + "}"
    )


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(value: Any) -> str:
    if isinstance(value, datetime):
        return f"TIMESTAMPTZ '{value.isoformat()}'"
    return "'" + str(value).replace("'", "''") + "'"
