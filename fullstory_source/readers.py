"""Export files -> typed Arrow record batches, streamed in bounded memory.

DuckDB's JSON and CSV readers do the parsing: they read gzip directly, stream in bounded blocks,
handle one huge JSON array as well as NDJSON, and follow RFC 4180 quoting (newlines inside quoted
CSV values included). Which columns a file becomes, under which names and types, is decided
before the rows are read (columns.py: the field catalog, never inference from a sample):
- JSON/NDJSON: a first, light pass lists every key of every object (key_scan.py: a custom
  variable may first appear deep in a large export, and DuckDB's sampled schema would then fail
  on it, or drop it), unless the caller gives the keys (read_ahead.py runs that pass beside this
  read); only for keys the catalog does not know, a second light pass collects their JSON value
  types;
- CSV: the header names every column.
The typed pass then takes each value as its text and converts it in SQL (values.py), so that no
value is ever changed on the way: a value that does not fit its type loads as NULL and is
counted, and the reader logs, per field, how many and an example. It never fails a window for
that; it fails it (ExportParseError) for a file it cannot parse or a row without a key field.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from . import columns as plans
from .columns import Column, read_type
from .errors import ExportParseError
from .fields import declared_type
from .key_scan import JSON_LAYOUTS, json_keys, json_path, json_value_types, quiet_connection
from .sql_text import literal
from .values import misfit_sql, typed_sql

logger = logging.getLogger(__name__)

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
_CSV_OPTIONS = (
    "header=true, all_varchar=true, quote='\"', escape='\"', delim=',', strict_mode=true, buffer_size=4194304"
)
# Batches between two releases of freed memory to the system (see release_memory)
_RELEASE_EVERY = 20
# The extra column that counts, per row, the values that did not fit their type
_MISFITS = "__fullstory_misfits"


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
    warn: Callable[[str], None] | None = None,
    keys: Sequence[str] | None = None,
) -> Iterator[pa.RecordBatch]:
    """Yield the rows of one export file, each row extended with `constants` (segment id and
    window bounds) as extra columns. The constants and the `required` fields (key columns) are
    declared NOT NULL, as dlt declares merge and primary keys; a row without one is an error.
    Every batch has the same schema. `threads`: DuckDB threads of the typed pass (default:
    THREADS for the format). `warn` (default: a logged warning) receives one line per problem
    that did not stop the read: values that did not fit their type, renamed fields.
    `keys` (JSON): the keys to read instead of scanning the file for them first. A key of the
    file that is not among them is not read: the caller must know it has them all
    (read_ahead.py checks them against a scan of the whole file)."""
    if export_format not in THREADS:
        raise ValueError(f"unknown export format {export_format!r}")
    threads = threads or THREADS[export_format]
    warn = warn or logger.warning
    con = quiet_connection(**_DUCKDB_CONFIG, memory_limit=memory_limit, threads=threads)
    name = what or path.name
    try:
        con.execute("SET TimeZone = 'UTC'")
        try:
            source = _source(con, path, export_format, constants, threads, keys)
            if source is None:
                return  # not a single object in the file
            for column in source.columns:
                if column.renamed:
                    warn(
                        f"The export {name} has a field {column.field!r} that would land on a column of "
                        f"the same name; it is loaded as {column.name!r}."
                    )
            not_null = set(constants) | set(required)
            schema: pa.Schema | None = None
            misfits = 0
            batches = _streamed(con.sql(source.query()).to_arrow_reader(batch_rows))
            for number, batch in enumerate(batches, start=1):
                if source.checked:
                    misfits += pc.sum(batch.column(_MISFITS)).as_py() or 0
                    batch = batch.drop_columns([_MISFITS])
                schema = schema or _not_null(batch.schema, not_null, name)
                yield _checked(batch, schema, required, name)
                if number % _RELEASE_EVERY == 0:
                    release_memory()
            if misfits:
                for line in _misfit_report(con, source):
                    warn(f"The export {name}: {line}; loaded as NULL.")
        except duckdb.Error as error:
            raise ExportParseError(
                f"Could not parse the {export_format} export {name}: {error}. "
                "Nothing was loaded for this window and its cursor did not move."
            ) from None
    finally:
        con.close()
        release_memory()


def exact_select(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    export_format: str,
    constants: dict[str, Any],
    keys: Sequence[str] | None = None,
) -> str | None:
    """The query `read_export` streams rows from (every column exact, then the count of values
    that did not fit when there are checks), for a caller that runs it inside DuckDB instead:
    bench/ measures it as the floor of an exact load. None when the file has no object (JSON,
    keys not given) or no header (CSV). Sets the connection's threads (as read_export does)."""
    source = _source(con, path, export_format, constants, THREADS[export_format], keys)
    return None if source is None else source.query()


def _streamed(reader: pa.RecordBatchReader) -> Iterator[pa.RecordBatch]:
    """The reader's batches. An error DuckDB meets while it streams (a file that breaks off
    after its first rows) reaches Python as Arrow's OSError: raised as the DuckDB error it is."""
    while True:
        try:
            batch = reader.read_next_batch()
        except StopIteration:
            return
        except (OSError, pa.ArrowException) as error:
            raise duckdb.Error(str(error)) from None
        yield batch


class _Source:
    """The typed query over one file: `reader` yields every field as text (or JSON) under the
    name `raw(i)`; the query converts each one into its column."""

    def __init__(self, reader: str, columns: list[Column], constants: dict[str, Any]) -> None:
        self.reader = reader
        self.columns = columns
        self.constants = constants
        self.typed = [
            typed_sql(raw(i), c.sql_type, empty_is_null=c.empty_is_null) for i, c in enumerate(columns)
        ]
        self.misfit = {
            i: check
            for i, c in enumerate(columns)
            if (check := misfit_sql(raw(i), c.sql_type, self.typed[i])) is not None
        }

    @property
    def checked(self) -> bool:
        return bool(self.misfit)

    def query(self) -> str:
        select = [f"{sql} AS {_quote(c.name)}" for sql, c in zip(self.typed, self.columns, strict=True)]
        select += [f"{_literal(value)} AS {_quote(name)}" for name, value in self.constants.items()]
        if self.misfit:
            select.append(
                " + ".join(f"CAST({check} AS INTEGER)" for check in self.misfit.values()) + f" AS {_MISFITS}"
            )
        return f"SELECT {', '.join(select)} FROM {self.reader}"


def raw(index: int) -> str:
    return f'"raw{index}"'


def _source(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    export_format: str,
    constants: dict[str, Any],
    threads: int,
    given_keys: Sequence[str] | None = None,
) -> _Source | None:
    file = _literal(str(path))
    if export_format == "csv":
        header = _csv_header(con, file)
        if not header:
            return None
        columns = plans.plan(header, None, constants)
        # DuckDB renames duplicate header names (case-insensitively): refer to cells by position
        duck_names = [
            row[0]
            for row in con.execute(f"DESCRIBE SELECT * FROM read_csv({file}, {_CSV_OPTIONS})").fetchall()
        ]
        cells = ", ".join(f"{_quote(n)} AS {raw(i)}" for i, n in enumerate(duck_names))
        reader = f"(SELECT {cells} FROM read_csv({file}, {_CSV_OPTIONS}))"
        return _Source(reader, columns, constants)
    layout = JSON_LAYOUTS[export_format]
    con.execute(f"SET threads = {max(threads, KEY_SCAN_THREADS)}")
    keys = list(given_keys) if given_keys is not None else json_keys(con, file, layout)
    if not keys:
        return None
    undeclared = [key for key in keys if declared_type(key) is None]
    value_types = json_value_types(con, file, layout, undeclared) if undeclared else {}
    con.execute(f"SET threads = {threads}")
    columns = plans.plan(keys, value_types, constants)
    if len({key.lower() for key in keys}) < len(keys):
        # keys that differ only in case: DuckDB's column names do not, so take each key's text
        # out of the raw object instead (slower; only for such files)
        paths = "[" + ", ".join(_literal(json_path(c.field)) for c in columns) + "]"
        values = f"json_extract_string(json, {paths})"
        reader = (
            f"(SELECT {', '.join(f'v[{i + 1}] AS {raw(i)}' for i in range(len(columns)))} FROM "
            f"(SELECT {values} AS v FROM read_json_objects({file}, format='{layout}')))"
        )
        return _Source(reader, columns, constants)
    struct = "{" + ", ".join(f"{_literal(c.field)}: {_literal(read_type(c))}" for c in columns) + "}"
    renames = ", ".join(f"{_quote(c.field)} AS {raw(i)}" for i, c in enumerate(columns))
    reader = f"(SELECT {renames} FROM read_json({file}, format='{layout}', records=true, columns={struct}))"
    return _Source(reader, columns, constants)


def _csv_header(con: duckdb.DuckDBPyConnection, file: str) -> list[str]:
    """The header cells exactly as written (DuckDB would rename duplicates)."""
    row = con.execute(
        f"SELECT * FROM read_csv({file}, header=false, all_varchar=true, quote='\"', escape='\"', "
        "delim=',', strict_mode=true) LIMIT 1"
    ).fetchone()
    return [] if row is None else [cell or f"column{i}" for i, cell in enumerate(row)]


def _misfit_report(con: duckdb.DuckDBPyConnection, source: _Source) -> list[str]:
    """Per field: how many values did not fit, and one of them (a second pass, only when
    the typed pass counted any)."""
    parts = []
    for i, check in source.misfit.items():
        parts.append(f"count(*) FILTER (WHERE {check})")
        parts.append(f"CAST(any_value({raw(i)}) FILTER (WHERE {check}) AS VARCHAR)")
    row = con.execute(f"SELECT {', '.join(parts)} FROM {source.reader}").fetchone() or ()
    lines = []
    for n, i in enumerate(source.misfit):
        count, example = row[2 * n], row[2 * n + 1]
        if count:
            column = source.columns[i]
            lines.append(
                f"{count:,} value(s) of {column.field!r} are not {_type_name(column.sql_type)} "
                f"(e.g. {_shorten(example)!r})"
            )
    return lines


def _type_name(sql_type: str) -> str:
    names = {"BIGINT": "integers", "DOUBLE": "numbers", "BOOLEAN": "true/false", "TIMESTAMPTZ": "timestamps"}
    if sql_type.endswith("[]"):
        return f"lists of {names.get(sql_type[:-2], sql_type[:-2])}"
    return names.get(sql_type, sql_type)


def _shorten(text: Any) -> str:
    text = str(text)
    return text if len(text) <= 40 else text[:37] + "..."


def column_type(name: str) -> str:
    """The type a field is read as when the file says nothing more: its declared type, or text."""
    return declared_type(name) or "VARCHAR"


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
                f"The export {what} has rows without {name} (missing, or not a valid value); "
                "they cannot be merged. "
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


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(value: Any) -> str:
    if isinstance(value, datetime):
        return f"TIMESTAMPTZ '{value.isoformat()}'"
    return literal(str(value))
