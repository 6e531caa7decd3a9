"""A window's file read whole into an Arrow IPC file before any of its rows reach dlt.

Ahead, so that a file that cannot be read fails its window only (lifecycle.py). And on both
cores where the format allows: a JSON/NDJSON file needs a pass over every object to list its
keys (key_scan.py) and a typed pass; instead of one after the other, the typed pass reads the
keys of the first objects while the scan of the whole file runs beside it. When the scan finds
a key the typed pass was not given (a custom variable first seen late), the typed pass starts
again with it, and once the scan is done its whole list decides: a key still missing means one
more read with every key. The result is always the exact read's; only the time differs.
Measured on a 1M-row JSON export (2 cores), read ahead alone: 31 s one pass after the other,
19-21 s side by side; the whole run 65 s -> 46 s, and 61 s -> 44 s with a key first seen after
50,000 rows (docs/performance.md).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Generator, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
from dlt.common.normalizers.naming.snake_case import NamingConvention

from . import readers
from .columns import plan
from .errors import ExportParseError
from .key_scan import SAMPLE_OBJECTS, KeyScan, first_keys

logger = logging.getLogger(__name__)

Reader = Callable[..., Iterator[pa.RecordBatch]]  # readers.read_export

# lz4: the rows waiting for dlt take a fraction of their size in memory on disk, cheaply
_IPC = pa.ipc.IpcWriteOptions(compression="lz4")
_NAMING = NamingConvention()
# Times the typed read starts again with keys the scan found after it started; then it waits
# for the scan's whole list instead (a file whose keys keep turning up is read twice, no more)
RESTARTS = 3


def read_ahead(
    read: Reader,
    path: Path,
    export_format: str,
    constants: dict[str, Any],
    target: Path,
    *,
    what: str,
    required: Sequence[str],
    each_batch: Callable[[], None] = lambda: None,
    spare: threading.Semaphore | None = None,
) -> list[str] | None:
    """Write every row of `path` into `target` (an Arrow IPC stream). Returns the columns to read
    it back with (`batches_of`), in the exact read's order; None when the file has no rows.
    `target` is not left behind when there is nothing in it or the read fails.
    `each_batch` runs before each batch is written (a stop check). `spare`: the scan runs beside
    the typed read only with one of its slots free, taken without waiting (the slots of the
    run's reads: where another read keeps the other core busy, a scan beside would only add
    its memory); without one, the scan runs first. Raises what the read raises, and
    ExportParseError for two fields that would become one column."""

    def write(check: Callable[[], None] = each_batch, **options: Any) -> list[str] | None:
        batches = read(path, export_format, constants, what=what, required=tuple(required), **options)
        return _write(batches, target, what, check)

    first = first_keys(path, export_format)
    if first is None or (spare is not None and not spare.acquire(blocking=False)):
        return write()
    try:
        scan = KeyScan(path, export_format, first)
        attempt, every_key = _beside_the_scan(write, scan, first.keys, each_batch, what)
    finally:
        if spare is not None:
            spare.release()  # the scan is over; what is left is one read at most
    if attempt is not None and every_key is not None and _same_names(attempt.keys, every_key, constants):
        for line in attempt.warnings:
            readers.logger.warning(line)
        if attempt.columns is None or attempt.keys == every_key:
            return attempt.columns
        # the first objects' key order differs from the whole file's: the same columns, read
        # back in the exact read's order (rewriting the file took ~5 s for 1M rows)
        return [c.name for c in plan(every_key, None, constants)] + list(constants)
    if attempt is not None and every_key is not None and set(every_key) - set(attempt.keys):
        _log_late(what, [key for key in every_key if key not in attempt.keys])
    return write(keys=every_key)  # None: the scan failed, or the read did; the exact read reports


@dataclass
class _Attempt:
    columns: list[str] | None
    keys: list[str]
    warnings: list[str]


def _beside_the_scan(
    write: Callable[..., list[str] | None],
    scan: KeyScan,
    keys: list[str],
    each_batch: Callable[[], None],
    what: str,
) -> tuple[_Attempt | None, list[str] | None]:
    """The typed read of `keys` beside the scan, started again with the keys the scan finds
    while it runs (at most RESTARTS times), and the scan's whole list. Returns once the scan has
    ended: (the read, None where restarts ran out or it met a parse error; every key, None where
    the scan failed or was cut short)."""
    attempt = None
    try:
        for _ in range(RESTARTS + 1):
            warnings: list[str] = []
            try:
                columns = write(_stop_at_new_keys(scan, keys, each_batch), keys=keys, warn=warnings.append)
            except _NewKeys as new:
                _log_late(what, new.keys)
                keys = keys + new.keys
                continue
            attempt = _Attempt(columns, keys, warnings)
            break
        every_key = scan.result(each_batch)
    except ExportParseError:
        scan.cancel()
        return None, None  # the exact read decides: the rows may need a key the first objects lack
    except BaseException:
        scan.cancel()
        raise
    return attempt, every_key


def _same_names(read: list[str], every_key: list[str], constants: dict[str, Any]) -> bool:
    """Whether the keys read are every key and load under the names the exact read (every key,
    in the scan's order) gives them: where two fields meet in one column name, which of them is
    renamed follows the key order. The order of the columns is put right when read back."""
    if set(read) != set(every_key):
        return False
    names = [{c.field: c.name for c in plan(keys, None, constants)} for keys in (read, every_key)]
    return names[0] == names[1]


class _NewKeys(Exception):
    def __init__(self, keys: list[str]) -> None:
        super().__init__(keys)
        self.keys = keys


def _stop_at_new_keys(scan: KeyScan, keys: list[str], each_batch: Callable[[], None]) -> Callable[[], None]:
    known = set(keys)

    def check() -> None:
        each_batch()
        new = scan.beyond(known)
        if new:
            raise _NewKeys(new)

    return check


def _log_late(what: str, keys: list[str]) -> None:
    logger.info(
        "%s: %s first appear(s) after the first %d objects; reading the file again with them",
        what,
        ", ".join(keys),
        SAMPLE_OBJECTS,
    )


def batches_of(path: Path, columns: list[str]) -> Iterator[pa.RecordBatch]:
    """The batches `read_ahead` wrote, with the columns it returned, in their order."""
    with pa.OSFile(str(path), "rb") as source:
        for batch in pa.ipc.open_stream(source):
            yield batch if batch.schema.names == columns else batch.select(columns)


def _write(
    batches: Generator[pa.RecordBatch, None, None], target: Path, what: str, each_batch: Callable[[], None]
) -> list[str] | None:
    try:
        with closing(batches), pa.OSFile(str(target), "wb") as sink:
            writer, columns = None, None
            for batch in batches:
                each_batch()
                if writer is None:
                    _check_column_names(batch.schema, what)
                    writer = pa.ipc.new_stream(sink, batch.schema, options=_IPC)
                    columns = batch.schema.names
                writer.write_batch(batch)
            if writer is not None:
                writer.close()
                return columns
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    target.unlink(missing_ok=True)
    return None


def _check_column_names(schema: pa.Schema, what: str) -> None:
    """Fields that dlt would turn into the same column (`evt_Coupon_str` and `evt_coupon_str`,
    `a.b` and `a_b`) cannot both be loaded: refuse the window, naming them."""
    seen: dict[str, str] = {}
    for name in schema.names:
        column = _NAMING.normalize_identifier(name)
        if column in seen:
            raise ExportParseError(
                f"the export of {what} has fields {seen[column]!r} and {name!r}, which both become "
                f"column {column!r}; this window is not loaded (rename one of the custom variables "
                "in FullStory)"
            )
        seen[column] = name
