"""Crash the pipeline while it loads: `python -m tests.crash_runner BASE_URL MOMENT`.

Extracts and normalizes one day of `everyone` events in 6 h windows, starts the load, and kills
this process with SIGKILL at MOMENT:
- `0.2`: that many seconds after the load started (wherever the load happens to be);
- `sql:N`: right after the N-th SQL statement of the load finished (committed, unless it ran
  inside a transaction, which then dies with the process);
- `commit:TABLE`: right after the first copy job of TABLE finished in the destination, before
  dlt recorded that (the moment where a resumed load copies the file a second time);
- `extracted:N`: while extracting, right after the N-th window's rows were extracted;
- `prepare`: do not load at all, leave the package pending and exit 0 (tests then copy the
  working dirs and load that same package many times).
- `load:MOMENT`: only load the package a `prepare` left pending, and kill at MOMENT.
Configured by the same environment variables as the command (key, DuckDB file, DLT_DATA_DIR)."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import dlt
from dlt.common.storages.load_package import PackageStorage
from dlt.destinations.impl.duckdb.sql_client import DuckDbSqlClient

from fullstory_source import RunReport, duckdb_destination, fullstory_source
from fullstory_source.lifecycle import WindowExport


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def kill_after_statement(number: int) -> None:
    count = 0
    lock = threading.Lock()
    execute_query = DuckDbSqlClient.execute_query

    @contextlib.contextmanager
    def counted(self: Any, query: Any, *args: Any, **kwargs: Any) -> Iterator[Any]:
        nonlocal count
        with execute_query(self, query, *args, **kwargs) as cursor:
            yield cursor
        with lock:
            count += 1
            if count == number:
                die()

    DuckDbSqlClient.execute_query = counted  # type: ignore[method-assign]


def kill_before_recording(table: str) -> None:
    save = PackageStorage.save_pending_transition

    def record(self: Any, load_id: str, file_name: str, *args: Any, **kwargs: Any) -> None:
        if file_name.startswith(f"{table}."):
            die()
        save(self, load_id, file_name, *args, **kwargs)

    PackageStorage.save_pending_transition = record  # type: ignore[method-assign]


def kill_after_extracting(number: int) -> None:
    count = 0
    lock = threading.Lock()
    extracted = WindowExport.extracted

    def counted(self: WindowExport) -> None:
        nonlocal count
        extracted(self)
        with lock:
            count += 1
            if count == number:
                die()

    WindowExport.extracted = counted  # type: ignore[method-assign]


def main() -> None:
    base_url, moment = sys.argv[1], sys.argv[2]
    pipeline = dlt.pipeline(
        pipeline_name="fullstory_pipeline",
        destination=duckdb_destination.for_command("duckdb"),  # as the command loads
        dataset_name="fullstory",
    )
    if moment.startswith("extracted:"):
        kill_after_extracting(int(moment.removeprefix("extracted:")))
    if not moment.startswith("load:"):
        source = fullstory_source(
            base_url=base_url,
            segment_ids=["everyone"],
            export_types=["events"],
            start_date="2026-10-01T00:00:00Z",
            end_date="2026-10-02T00:00:00Z",
            window="6h",
            events=RunReport(),
            on_window_error="record",
        )
        pipeline.extract(source)
        pipeline.normalize()
        if moment == "prepare":
            return
    moment = moment.removeprefix("load:")
    if moment.startswith("sql:"):
        kill_after_statement(int(moment.removeprefix("sql:")))
    elif moment.startswith("commit:"):
        kill_before_recording(moment.removeprefix("commit:"))
    print("LOADING", flush=True)
    if moment.startswith(("sql:", "commit:")):
        pipeline.load()
        print("LOADED without being killed", flush=True)
        return
    threading.Thread(target=pipeline.load, daemon=True).start()
    time.sleep(float(moment))
    die()


if __name__ == "__main__":
    main()
