"""Run the pipeline up to its load step, start the load, and kill this process with SIGKILL
while it loads: `python -m tests.crash_runner BASE_URL DELAY_SECONDS`. Configured by the same
environment variables as the command (key, DuckDB file, DLT_DATA_DIR)."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

import dlt

from fullstory_source import RunReport, fullstory_source


def main() -> None:
    base_url, delay = sys.argv[1], float(sys.argv[2])
    pipeline = dlt.pipeline(
        pipeline_name="fullstory_pipeline", destination="duckdb", dataset_name="fullstory"
    )
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
    print("LOADING", flush=True)
    threading.Thread(target=pipeline.load, daemon=True).start()
    time.sleep(delay)
    os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    main()
