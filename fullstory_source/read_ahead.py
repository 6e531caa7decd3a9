"""A window's file read whole into an Arrow IPC file before any of its rows reach dlt.

Ahead, so that a file that cannot be read fails its window only (lifecycle.py). And on both
cores where the format allows: a JSON/NDJSON file needs a pass over every object to list its
keys (key_scan.py) and a typed pass; instead of one after the other, the typed pass reads the
keys of the first objects while the scan of the whole file runs beside it. When the scan finds
a key the first objects lacked (a custom variable first seen late), the file is read again with
every key, so the result is the same as the exact read's; only the time differs. Measured on a
1M-row JSON export (2 cores): scan 15.2 s then typed pass 16.1 s, or both together in 15.8 s.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
from dlt.common.normalizers.naming.snake_case import NamingConvention

from . import readers
from .errors import ExportParseError
from .key_scan import SAMPLE_OBJECTS, KeyScan, sample_keys

logger = logging.getLogger(__name__)

Reader = Callable[..., Iterator[pa.RecordBatch]]  # readers.read_export

# lz4: the rows waiting for dlt take a fraction of their size in memory on disk, cheaply
_IPC = pa.ipc.IpcWriteOptions(compression="lz4")
_NAMING = NamingConvention()


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
) -> bool:
    """Write every row of `path` into `target` (an Arrow IPC stream); False when the file has
    none. `target` is not left behind when there is nothing in it or the read fails.
    `each_batch` runs before each batch is written (a stop check). Raises what the read
    raises, and ExportParseError for two fields that would become one column."""

    def write(**options: Any) -> bool:
        batches = read(path, export_format, constants, what=what, required=tuple(required), **options)
        return _write(batches, target, what, each_batch)

    guess = sample_keys(path, export_format)
    if guess is None:
        return write()
    scan = KeyScan(path, export_format)
    held: list[str] = []
    try:
        wrote = write(keys=guess, warn=held.append)
    except ExportParseError:
        scan.cancel()
        return write()  # the exact read decides: the rows may need a key the first objects lack
    except BaseException:
        scan.cancel()
        raise
    keys = scan.result()
    if keys is not None and set(keys) <= set(guess):
        for line in held:
            readers.logger.warning(line)
        return wrote
    if keys is not None:
        late = sorted(set(keys) - set(guess))
        logger.info(
            "%s: %s first appear(s) after the first %d objects; reading the file again with every key",
            what,
            ", ".join(late),
            SAMPLE_OBJECTS,
        )
    return write(keys=keys)  # keys None: the scan failed; the exact read scans and reports


def batches_of(path: Path) -> Iterator[pa.RecordBatch]:
    """The batches `read_ahead` wrote."""
    with pa.OSFile(str(path), "rb") as source:
        yield from pa.ipc.open_stream(source)


def _write(
    batches: Iterator[pa.RecordBatch], target: Path, what: str, each_batch: Callable[[], None]
) -> bool:
    try:
        with pa.OSFile(str(target), "wb") as sink:
            writer = None
            for batch in batches:
                each_batch()
                if writer is None:
                    _check_column_names(batch.schema, what)
                    writer = pa.ipc.new_stream(sink, batch.schema, options=_IPC)
                writer.write_batch(batch)
            if writer is not None:
                writer.close()
                return True
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    target.unlink(missing_ok=True)
    return False


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
