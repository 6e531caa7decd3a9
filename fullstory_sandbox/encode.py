"""Write export rows to a gzip file in FullStory's formats, streaming row by row.

Exports can hold millions of rows, so nothing here keeps more than one row in memory.
"""

from __future__ import annotations

import csv
import gzip
import json
import os
import tempfile
from collections.abc import Callable, Iterable
from typing import Any, TextIO

Row = dict[str, Any]
# CSV needs two passes (header first, then rows); a factory lets us regenerate instead of buffering.
RowSource = Iterable[Row] | Callable[[], Iterable[Row]]

FORMATS = ("json", "ndjson", "csv")
_COMPRESSLEVEL = 6  # gzip's default 9 is several times slower for a few percent of size


def write_export(path: str | os.PathLike[str], rows: RowSource, fmt: str) -> int:
    """Write rows to a gzip file as fmt ("json", "ndjson" or "csv"); return the number of rows."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}")
    with gzip.open(path, "wt", encoding="utf-8", newline="", compresslevel=_COMPRESSLEVEL) as out:
        if fmt == "json":
            return _write_json(out, _iterate(rows))
        if fmt == "ndjson":
            return _write_ndjson(out, _iterate(rows))
        return _write_csv(out, rows)


def _iterate(rows: RowSource) -> Iterable[Row]:
    return rows() if callable(rows) else rows


def _dumps(row: Row) -> str:
    # ensure_ascii=False: real exports carry raw UTF-8, which parsers must handle.
    return json.dumps(row, ensure_ascii=False)


def _write_json(out: TextIO, rows: Iterable[Row]) -> int:
    """One JSON array, one object per line: `[{...},\\n{...}]`."""
    count = 0
    out.write("[")
    for row in rows:
        out.write(",\n" if count else "")
        out.write(_dumps(row))
        count += 1
    out.write("]")
    return count


def _write_ndjson(out: TextIO, rows: Iterable[Row]) -> int:
    count = 0
    for row in rows:
        out.write(_dumps(row))
        out.write("\n")
        count += 1
    return count


def _write_csv(out: TextIO, rows: RowSource) -> int:
    if callable(rows):
        return _write_csv_rows(out, _header(rows()), rows())
    if iter(rows) is not rows:  # a re-iterable collection such as a list
        return _write_csv_rows(out, _header(rows), rows)
    # A one-shot iterator cannot be read twice: spool it to a temporary file rather than to memory.
    with tempfile.TemporaryFile("w+", encoding="utf-8") as spool:
        _write_ndjson(spool, rows)
        spool.seek(0)
        columns = _header(json.loads(line) for line in spool)
        spool.seek(0)
        return _write_csv_rows(out, columns, (json.loads(line) for line in spool))


def _header(rows: Iterable[Row]) -> list[str]:
    """Union of all keys in first-seen order (sparse custom variables can appear late)."""
    seen: dict[str, None] = {}
    for row in rows:
        for key in row:
            seen.setdefault(key, None)
    return list(seen)


def _write_csv_rows(out: TextIO, columns: list[str], rows: Iterable[Row]) -> int:
    if not columns:
        return 0  # no rows at all: an empty file rather than a header without columns
    writer = csv.writer(out)  # excel dialect: RFC 4180 quoting and CRLF line ends
    writer.writerow(columns)
    count = 0
    for row in rows:
        writer.writerow([_cell(row.get(column)) for column in columns])
        count += 1
    return count


def _cell(value: Any) -> str:
    """CSV cell text: empty for missing, JSON spelling for booleans and lists."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)
