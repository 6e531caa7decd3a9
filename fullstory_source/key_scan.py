"""Which keys a JSON/NDJSON export holds: every key of every object, or a first guess.

A custom variable may first appear deep in a large export, and DuckDB's typed read silently
ignores a key it was not given, so the exact list takes a pass over the whole file
(`json_keys`). That pass costs about as much as the typed read itself. `KeyScan` runs it on a
connection of its own, in a thread, beside a typed read of the keys of the first objects
(`first_keys`) on the other core, and tells as soon as it meets a key beyond them:
read_ahead.py.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.compute as pc

from .fields import declared_type
from .sql_text import literal

JSON_LAYOUTS = {"json": "array", "ndjson": "newline_delimited"}
# Objects the first guess is taken from (DuckDB's own schema sample is 20,480 values)
SAMPLE_OBJECTS = 20_480
# The scan beside a typed read: one thread (a gzip stream is read by one thread anyway: the
# scan of 1M JSON rows took 15.2 s with one and with two) and room for DuckDB's 32 MB JSON buffer
_SCAN_CONFIG = {"threads": 1, "memory_limit": "128MB", "allocator_flush_threshold": "8MB"}
_SCAN_BATCH_ROWS = 2048
_WAIT_SECONDS = 0.1  # between two stop checks while waiting for the scan
# One object's key list as text; the same list always gives the same text
_KEY_LIST = "to_json(json_keys(json))"


def json_keys(con: duckdb.DuckDBPyConnection, file: str, layout: str) -> list[str]:
    """Every key of every object in the file, in a stable order: the distinct key lists (rows
    of the same shape share one), longest first, each adding the keys not seen yet in its own
    order. One pass over the raw objects that converts no value."""
    objects = f"read_json_objects({file}, format='{layout}')"
    lists = con.execute(f"SELECT DISTINCT {_KEY_LIST} FROM {objects} WHERE json IS NOT NULL").fetchall()
    return _ordered(text for (text,) in lists)


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


@dataclass(frozen=True)
class FirstKeys:
    """The keys of the first objects of a file, and their distinct key lists (as JSON text)."""

    keys: list[str]
    lists: list[str]


def first_keys(path: Path, export_format: str) -> FirstKeys | None:
    """The keys of the first objects, when they can stand for the whole file until the scan has
    confirmed it: every one a field the catalog types by its name (a field it does not know
    takes its type from its values in the whole file) and no two alike but for case (which the
    typed read cannot tell apart). None otherwise, and for CSV, whose header says it all."""
    layout = JSON_LAYOUTS.get(export_format)
    if layout is None:
        return None
    file = literal(str(path))
    objects = f"(SELECT json FROM read_json_objects({file}, format='{layout}') LIMIT {SAMPLE_OBJECTS})"
    try:
        with quiet_connection() as con:
            rows = con.execute(
                f"SELECT DISTINCT {_KEY_LIST} FROM {objects} WHERE json IS NOT NULL"
            ).fetchall()
    except duckdb.Error:
        return None  # the exact read reports what is wrong with the file
    lists = [text for (text,) in rows if text is not None]
    keys = _ordered(lists)
    if not keys or any(declared_type(key) is None for key in keys):
        return None
    if len({key.lower() for key in keys}) < len(keys):
        return None
    return FirstKeys(keys, lists)


class KeyScan:
    """The keys of the whole file, listed by a thread of its own as it reads: `beyond()` tells
    at any time which keys it has found outside a given set, `result()` waits for the end and
    lists them as `json_keys` does."""

    def __init__(self, path: Path, export_format: str, first: FirstKeys) -> None:
        self._con = quiet_connection()
        # Only objects whose key list the first objects did not have reach Python: one text
        # comparison per object in DuckDB (13.2 s for 1M JSON rows, against 15.2 s for the
        # SELECT DISTINCT of json_keys, which tells nothing until the end; 18.1 s with
        # list_has_all; streaming every list to Python 13.7 s and ~50 MB more)
        seen_lists = ", ".join(literal(text) for text in first.lists)
        self._query = (
            f"SELECT k FROM (SELECT {_KEY_LIST} AS k FROM read_json_objects({literal(str(path))}, "
            f"format='{JSON_LAYOUTS[export_format]}') WHERE json IS NOT NULL) WHERE k NOT IN ({seen_lists})"
        )
        self._lock = threading.Lock()
        self._lists: set[str] = set(first.lists)
        self._seen: dict[str, None] = dict.fromkeys(first.keys)  # every key so far, first seen first
        self._error: BaseException | None = None
        self._cancelled = threading.Event()
        self._thread = threading.Thread(target=self._scan, name="fullstory-key-scan", daemon=True)
        self._thread.start()

    def _scan(self) -> None:
        try:
            for batch in self._con.sql(self._query).to_arrow_reader(_SCAN_BATCH_ROWS):
                if self._cancelled.is_set():  # an interrupt sent before the query started is lost
                    return
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

    def result(self, check: Callable[[], None] = lambda: None) -> list[str] | None:
        """Every key of the file; None when the scan failed (the exact read then reports it) or
        was cancelled.
        `check` runs while it waits (a stop check; what it raises, the caller handles)."""
        while self._thread.is_alive():
            check()
            self._thread.join(_WAIT_SECONDS)
        self._con.close()
        if self._error is not None or self._cancelled.is_set():
            return None
        return _ordered(self._lists)

    def cancel(self) -> None:
        self._cancelled.set()
        self._con.interrupt()
        self._thread.join()
        self._con.close()


def _ordered(lists: Iterable[str]) -> list[str]:
    """json_keys' order of the keys of distinct key lists (JSON texts)."""
    decoded = sorted((json.loads(text) for text in lists if text), key=lambda keys: (-len(keys), keys))
    return list(dict.fromkeys(key for keys in decoded for key in keys))


def quiet_connection(**config: Any) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection for reading exports (`config` over the scan's settings) that prints
    nothing: DuckDB draws its own progress bar on stdout for any query over 2 s, over the
    command's display."""
    con = duckdb.connect(config={**_SCAN_CONFIG, **config})
    con.execute("SET enable_progress_bar = false")
    return con


def json_path(key: str) -> str:
    return '$."' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'
