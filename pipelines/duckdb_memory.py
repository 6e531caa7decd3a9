"""How much memory DuckDB may use while dlt loads into it, and more when a merge needs it.

dlt opens its DuckDB destination with DuckDB's defaults: up to 80 % of the machine's RAM, which
DuckDB fills with cached blocks, so loading a 5M-row window peaks at ~1.4 GB and bigger windows
at more (docs/performance.md). The command starts every load with a small cap instead
(`duckdb_memory_limit`, default 128MB, one thread); DuckDB spills what does not fit to disk.

Some memory cannot be spilled: a merge (delete-insert) keeps ~15-20 bytes per replaced row until
it commits, so re-loading a big window (a backfill, a lookback refresh) can need more than the
cap. DuckDB then fails the load with "Out of Memory Error" and dlt keeps the package; the merge
ran in one transaction that was rolled back, so the command doubles the cap and loads the same
package again, up to DuckDB's own default. Nothing is lost or loaded twice on the way. (The
same when a cap set very low is too small for dlt's own reading of the pipeline state.)

Whoever sets DuckDB's `global_config` for the destination credentials themselves (env
`DESTINATION__DUCKDB__CREDENTIALS__GLOBAL_CONFIG` or `.dlt/secrets.toml`) decides alone: the
command then sets nothing.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import dlt
import duckdb
from dlt.pipeline.exceptions import PipelineStepFailed

from fullstory_source import ConfigurationError
from fullstory_source.duckdb_destination import is_duckdb

logger = logging.getLogger("fullstory_pipeline")

CONFIG_KEY = "fullstory_pipeline.duckdb_memory_limit"
# 128MB: the load step of a 1M-row window took 13.0 s instead of 16.8 s at 64MB, and the run's
# peak did not move (it is the read-ahead's; docs/performance.md); a 5M-row merge fits without growing
DEFAULT_LIMIT = "128MB"
THREADS = 1  # under the same cap a second thread was slower: 12.1 vs 9.5 s for 1M rows
GLOBAL_CONFIG_ENV = "DESTINATION__DUCKDB__CREDENTIALS__GLOBAL_CONFIG"
# dlt retries a job that failed with a transient error (DuckDB's out-of-memory is one) 5 times
# before the load step fails; under the command's cap one failure is enough to raise it
RETRIES_ENV = "LOAD__RAISE_ON_MAX_RETRIES"
_USER_KEY = "destination.duckdb.credentials.global_config"
_OFF = {"", "off", "none", "0"}
_UNITS = {"": 1, "b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3}
_UNITS |= {"tb": 1000**4, "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4}


def parse_size(text: str) -> int:
    """'64MB' -> 64_000_000 bytes; DuckDB's own units (KB/MB/GB and KiB/MiB/GiB)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", text)
    unit = match.group(2).lower() if match else ""
    size = int(float(match.group(1)) * _UNITS[unit]) if match and unit in _UNITS else 0
    if size < 1000**2:
        raise ConfigurationError(
            f"{CONFIG_KEY} = {text!r} is not a size of at least 1MB; write it like DuckDB does, "
            "e.g. '64MB' or '2GB' (or 'off' to let DuckDB take its default, 80 % of RAM)"
        )
    return size


def format_size(size: int) -> str:
    return f"{size // 1000**2}MB" if size >= 10 * 1000**2 else f"{size // 1000}KB"


class DuckDBMemory:
    """The cap of one command run. `limit` None: the command sets nothing (not a DuckDB
    destination, the cap is off, or the user configured DuckDB themselves)."""

    def __init__(self, limit: int | None, ceiling: int | None = None) -> None:
        self.limit = limit
        self.ceiling = ceiling or _duckdb_default_limit()
        self._sets_config = limit is not None

    @contextmanager
    def applied(self) -> Iterator[DuckDBMemory]:
        """The cap in dlt's config for the destination, for the duration of the run only (the
        command also runs in-process: in tests, or called from Python)."""
        if not self._sets_config:
            yield self
            return
        previous = {name: os.environ.get(name) for name in (GLOBAL_CONFIG_ENV, RETRIES_ENV)}
        try:
            self._set_env()
            if dlt.config.get("load.raise_on_max_retries") is None:
                os.environ[RETRIES_ENV] = "1"
            yield self
        finally:
            for name, value in previous.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value

    def run(self, pipeline: dlt.Pipeline, step: Callable[[], Any]) -> None:
        """Run a dlt step that ends in a load. If DuckDB runs out of its cap while loading, raise
        the cap and load the package dlt kept; if it runs out while dlt reads the pipeline state
        from it (before anything was extracted), raise the cap and run the step again. Until it
        fits or the cap is DuckDB's own."""
        attempt = step
        while True:
            try:
                attempt()
                return
            except PipelineStepFailed as failure:
                if self.limit is None or failure.step not in ("sync", "load") or not out_of_memory(failure):
                    raise
                attempt = pipeline.load if failure.step == "load" else step
                self._raise_limit(failure.step)

    def _raise_limit(self, step: str) -> None:
        previous = self.limit or 0
        self.limit = None if 2 * previous >= self.ceiling else 2 * previous
        self._set_env()
        logger.warning(
            "DuckDB needed more than %s %s; %s with %s",
            format_size(previous),
            "to load (a merge holds ~20 bytes per replaced row until it commits)"
            if step == "load"
            else "to read the pipeline state",
            "loading the same package again" if step == "load" else "starting again",
            format_size(self.limit) if self.limit else "DuckDB's default (80% of RAM)",
        )

    def _set_env(self) -> None:
        if self.limit is None:
            os.environ.pop(GLOBAL_CONFIG_ENV, None)
        else:
            settings = {"memory_limit": format_size(self.limit), "threads": THREADS}
            os.environ[GLOBAL_CONFIG_ENV] = json.dumps(settings)


def duckdb_memory(pipeline: dlt.Pipeline) -> DuckDBMemory:
    """The cap for a run of `pipeline`: DuckDB destinations only, unless configured away."""
    destination = pipeline.destination
    if not is_duckdb(destination):
        return DuckDBMemory(None)
    if _configured(_USER_KEY):
        logger.info("DuckDB's global_config is configured: the command leaves DuckDB's memory to it")
        return DuckDBMemory(None)
    text = configured_limit()
    if text.strip().lower() in _OFF:
        return DuckDBMemory(None)
    return DuckDBMemory(parse_size(text))


def configured_limit() -> str:
    """`duckdb_memory_limit` as configured, or the default."""
    setting = dlt.config.get(CONFIG_KEY)
    return DEFAULT_LIMIT if setting is None else str(setting)


# DuckDB's words for running out of its memory cap: an "Out of Memory Error" while it works, and,
# when the cap is hit while committing, a TransactionException "Failed to commit: could not
# allocate block of size ..." (seen under load in this project's own test suite)
_OUT_OF_MEMORY = re.compile(
    r"Out of Memory Error|could not allocate block of size|failed to allocate data of size"
)


def out_of_memory(error: BaseException) -> bool:
    """DuckDB's out-of-memory error anywhere in the chain (dlt wraps it, sometimes only as text)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if _OUT_OF_MEMORY.search(str(current)):
            return True
        current = current.__cause__ or current.__context__
    return False


def _configured(key: str) -> bool:
    return dlt.secrets.get(key) is not None  # env or secrets.toml: dlt takes credentials only there


def _duckdb_default_limit() -> int:
    """DuckDB's own default cap: 80 % of the memory it sees (a container's limit, not the host's)."""
    with duckdb.connect() as con:
        row = con.execute("SELECT current_setting('memory_limit')").fetchone()
    return parse_size(str(row[0]) if row else "1GB")
