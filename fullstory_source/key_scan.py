"""Which keys a JSON/NDJSON export holds: every key of every object, or a first guess.

A custom variable may first appear deep in a large export, and DuckDB's typed read silently
ignores a key it was not given, so the exact list takes a pass over the whole file
(`json_keys`). That pass costs about as much as the typed read itself; `KeyScan` runs it on a
connection of its own, in a thread, so that it can run beside a typed read of the first guess
(`sample_keys`, from the first objects) on the other core: read_ahead.py.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Collection, Sequence
from pathlib import Path

import duckdb
import pyarrow.compute as pc

from .fields import declared_type

JSON_LAYOUTS = {"json": "array", "ndjson": "newline_delimited"}
# Objects the first guess is taken from (DuckDB's own schema sample is 20,480 values)
SAMPLE_OBJECTS = 20_480
# The scan beside a typed read: one thread (a gzip stream is read by one thread anyway, measured:
# 15.2 s with one, 15.2 s with two, 1M rows) and DuckDB's smallest memory that fits its 32 MB
# JSON buffer with room to spare
_SCAN_CONFIG = {"threads": 1, "memory_limit": "128MB", "allocator_flush_threshold": "8MB"}
_SCAN_BATCH_ROWS = 2048


def json_keys(
    con: duckdb.DuckDBPyConnection, file: str, layout: str, *, limit: int | None = None
) -> list[str]:
    """Every key of every object in the file (of its first `limit` objects), in a stable order:
    the distinct key lists (rows of the same shape share one), longest first, each adding the
    keys not seen yet in its own order. One pass over the raw objects that converts no value."""
    objects = f"read_json_objects({file}, format='{layout}')"
    if limit is not None:
        objects = f"(SELECT json FROM {objects} LIMIT {int(limit)})"
    lists = con.execute(f"SELECT DISTINCT json_keys(json) FROM {objects} WHERE json IS NOT NULL").fetchall()
    ordered = sorted((keys for (keys,) in lists if keys), key=lambda keys: (-len(keys), keys))
    return list(dict.fromkeys(key for keys in ordered for key in keys))


def json_value_types(
    con: duckdb.DuckDBPyConnection, file: str, layout: str, keys: Sequence[str]
) -> dict[str, set[str]]:
    """The JSON value types (json_type spellings) each of `keys` holds anywhere in the file."""
    values = f"json_extract(json, [{', '.join(literal(json_path(k)) for k in keys)}])"
    rows = con.execute(
        f"SELECT DISTINCT unnest(list_transform(v, lambda x: json_type(x)), recursive := false) AS t, "
        f"unnest(range(1, len(v) + 1)) AS i "
        f"FROM (SELECT {values} AS v FROM read_json_objects({file}, format='{layout}') "
        "WHERE json IS NOT NULL)"
    ).fetchall()
    found: dict[str, set[str]] = {key: set() for key in keys}
    for sql_type, index in rows:
        if sql_type is not None:
            found[keys[index - 1]].add(sql_type)
    return found


def sample_keys(path: Path, export_format: str) -> list[str] | None:
    """The keys of the first objects, when they can stand for the whole file until the scan has
    confirmed it: every one a field the catalog types by its name (a field it does not know
    takes its type from its values in the whole file) and no two alike but for case (which the
    typed read cannot tell apart). None otherwise, and for CSV, whose header says it all."""
    layout = JSON_LAYOUTS.get(export_format)
    if layout is None:
        return None
    try:
        with duckdb.connect(config=_SCAN_CONFIG) as con:
            keys = json_keys(con, literal(str(path)), layout, limit=SAMPLE_OBJECTS)
    except duckdb.Error:
        return None  # the exact read reports what is wrong with the file
    if not keys or any(declared_type(key) is None for key in keys):
        return None
    if len({key.lower() for key in keys}) < len(keys):
        return None
    return keys


class KeyScan:
    """The keys of the file beyond `known` (the first objects' keys), listed by a thread of its
    own as it reads: `beyond()` tells at any time which keys it has found outside a given set,
    `result()` waits for the whole file (`known` first, then the others as first seen)."""

    def __init__(self, path: Path, export_format: str, known: Sequence[str]) -> None:
        self._con = duckdb.connect(config=_SCAN_CONFIG)
        # only objects with a key beyond `known` reach Python: checked per object in DuckDB
        # (18.1 s for 1M JSON rows, against 15.2 s for the SELECT DISTINCT of json_keys, which
        # tells nothing until the end; streaming every key list to Python instead took 13.1 s
        # but ~60 MB more memory)
        self._query = (
            f"SELECT to_json(k) FROM (SELECT json_keys(json) AS k FROM read_json_objects("
            f"{literal(str(path))}, format='{JSON_LAYOUTS[export_format]}') WHERE json IS NOT NULL) "
            f"WHERE NOT list_has_all([{', '.join(literal(key) for key in known)}]::VARCHAR[], k)"
        )
        self._known = list(known)
        self._lock = threading.Lock()
        self._lists: set[str] = set()  # the distinct key lists with a key beyond `known`, as JSON
        self._seen: dict[str, None] = {}  # the keys of those lists, first seen first
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._scan, name="fullstory-key-scan", daemon=True)
        self._thread.start()

    def _scan(self) -> None:
        try:
            for batch in self._con.sql(self._query).to_arrow_reader(_SCAN_BATCH_ROWS):
                for text in pc.unique(batch.column(0)).to_pylist():
                    if text is not None and text not in self._lists:
                        with self._lock:
                            self._lists.add(text)
                            self._seen.update(dict.fromkeys(json.loads(text)))
        except BaseException as error:  # handed to result()
            self._error = error

    def beyond(self, keys: Collection[str]) -> list[str]:
        """The keys found so far that are not in `keys`."""
        with self._lock:
            return [key for key in self._seen if key not in keys]

    def result(self) -> list[str] | None:
        """Every key of the file; None when the scan failed (the exact read then reports it)."""
        self._thread.join()
        self._con.close()
        if self._error is not None:
            return None
        return list(dict.fromkeys([*self._known, *self._seen]))

    def cancel(self) -> None:
        self._con.interrupt()
        self._thread.join()
        self._con.close()


def json_path(key: str) -> str:
    return '$."' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'


def literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
