"""Export files -> typed Arrow record batches, streamed.

DuckDB's JSON and CSV readers do the parsing: they read gzip directly, stream in bounded blocks,
handle one huge JSON array as well as NDJSON, and follow RFC 4180 quoting (newlines inside quoted
CSV values included). Column types come from the field names (fields.py), not from inference:
- JSON/NDJSON: DuckDB scans the whole file to learn the set of keys (a custom variable may first
  appear deep in a large export, and a sampled schema would silently drop it), then every field
  whose name declares a type is cast to it;
- CSV: every cell is read as text and cast by name; fields whose name declares nothing stay text.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from .errors import ExportParseError
from .fields import TIMESTAMP, declared_type

BATCH_ROWS = 100_000


def read_export(
    path: Path,
    export_format: str,
    constants: dict[str, Any],
    *,
    what: str = "",
    required: tuple[str, ...] = (),
    batch_rows: int = BATCH_ROWS,
    memory_limit: str = "512MB",
) -> Iterator[pa.RecordBatch]:
    """Yield the rows of one export file, each row extended with `constants` (segment id and
    window bounds) as extra columns. The constants and the `required` fields (key columns) are
    declared NOT NULL, as dlt declares merge and primary keys; a row without one is an error."""
    con = duckdb.connect(config={"memory_limit": memory_limit})
    try:
        con.execute("SET TimeZone = 'UTC'")
        source = _source_sql(path, export_format)
        try:
            detected = con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()
            select = [_typed(name, sql_type, export_format) for name, sql_type, *_ in detected]
            select += [f"{_literal(value)} AS {_quote(name)}" for name, value in constants.items()]
            query = f"SELECT {', '.join(select)} FROM {source}"
            not_null = set(constants) | set(required)
            schema: pa.Schema | None = None
            for batch in con.sql(query).to_arrow_reader(batch_rows):
                schema = schema or _not_null(batch.schema, not_null, what or path.name)
                yield _checked(batch, schema, required, what or path.name)
        except duckdb.Error as error:
            raise ExportParseError(
                f"Could not parse the {export_format} export {what or path.name}: {error}. "
                "Nothing was loaded for this window and its cursor did not move."
            ) from None
    finally:
        con.close()


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


def _source_sql(path: Path, export_format: str) -> str:
    file = _literal(str(path))
    if export_format == "json":
        return f"read_json({file}, format='array', records=true, sample_size=-1)"
    if export_format == "ndjson":
        return f"read_json({file}, format='newline_delimited', records=true, sample_size=-1)"
    if export_format == "csv":
        return (
            f"read_csv({file}, header=true, all_varchar=true, quote='\"', escape='\"', "
            "delim=',', strict_mode=true)"
        )
    raise ValueError(f"unknown export format {export_format!r}")


def _typed(name: str, detected: str, export_format: str) -> str:
    column = _quote(name)
    target = declared_type(name)
    if target is None:
        # DuckDB's JSON type (keys that were only ever null) has no Arrow form dlt can load
        return f"CAST({column} AS VARCHAR) AS {column}" if detected in ("JSON", "NULL") else column
    if export_format == "csv" and target.endswith("[]"):
        # list values arrive as JSON text in a CSV cell
        element = target[:-2]
        return f"CAST(from_json({column}, '[\"{_json_type(element)}\"]') AS {target}) AS {column}"
    return f"CAST({column} AS {target}) AS {column}"


def _json_type(sql_type: str) -> str:
    return "VARCHAR" if sql_type == TIMESTAMP else sql_type


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(value: Any) -> str:
    if isinstance(value, datetime):
        return f"TIMESTAMPTZ '{value.isoformat()}'"
    return "'" + str(value).replace("'", "''") + "'"
