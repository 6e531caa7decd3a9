"""Concurrent exports: N exports that each take S seconds on the server should take about as
long as one.

    .venv/bin/python -m bench.concurrency            # 8 exports x 5 s (the issue's figure)
    .venv/bin/python -m bench.concurrency --exports 4 --seconds 2

Runs the real pipeline (sandbox over HTTP -> dlt -> DuckDB) once with a single export and once
with N exports (N/2 segments x events and individuals, one window each), with the source's
default settings (8 concurrent exports, 60 creates per minute with a burst of 8, polls from 1 s
growing 1.5x), and prints the wall times and their ratio; writes bench/results/concurrency.json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import dlt

from fullstory_sandbox import Sandbox
from fullstory_source import RunReport, fullstory_source

RESULTS = Path(__file__).parent / "results"
KEY = "bench-key"


def timed_run(sandbox: Sandbox, workdir: Path, segments: list[str], types: list[str]) -> tuple[float, int]:
    pipeline = dlt.pipeline(
        pipeline_name=f"bench_{len(segments)}_{len(types)}",
        destination=dlt.destinations.duckdb(str(workdir / f"{len(segments)}_{len(types)}.duckdb")),
        dataset_name="fullstory",
        pipelines_dir=str(workdir / "pipelines"),
    )
    report = RunReport()
    source = fullstory_source(
        api_key=KEY,
        base_url=sandbox.base_url,
        api_flavor="live",
        segment_ids=segments,
        export_types=types,
        start_date="2026-10-01T00:00:00Z",
        end_date="2026-10-02T00:00:00Z",
        window="1d",
        events=report,
        on_window_error="record",
    )
    started = time.perf_counter()
    pipeline.run(source.with_resources(*types, "export_runs"))
    elapsed = time.perf_counter() - started
    assert not report.failures, report.failures
    return elapsed, report.windows_loaded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exports", type=int, default=8, help="even number of exports in the concurrent run")
    parser.add_argument("--seconds", type=float, default=5.0, help="server-side time of each export")
    args = parser.parse_args()
    segments_needed = args.exports // 2
    segments = [
        {"id": f"segment-{i}", "name": f"Segment {i}", "creator": "bench@example.com"}
        for i in range(segments_needed)
    ]
    with (
        tempfile.TemporaryDirectory() as tmp,
        Sandbox(
            api_key=KEY, flavor="live", segments=segments, operation_polls=1, operation_seconds=args.seconds
        ) as sandbox,
    ):
        workdir = Path(tmp)
        one, one_count = timed_run(sandbox, workdir, ["segment-0"], ["events"])
        ids = [s["id"] for s in segments]
        many, many_count = timed_run(sandbox, workdir, ids, ["events", "individuals"])
    result = {
        "settings": "source defaults",
        "server_seconds_per_export": args.seconds,
        "single": {"exports": one_count, "wall_s": round(one, 2)},
        "concurrent": {"exports": many_count, "wall_s": round(many, 2)},
        "ratio": round(many / one, 3),
        "sequential_would_be_s": round(one * many_count, 1),
    }
    print(f"1 export   : {one:6.2f} s")
    print(
        f"{many_count} exports  : {many:6.2f} s   ratio {many / one:.2f}x "
        f"(target <= 1.3x; one after another would take ~{one * many_count:.0f} s)"
    )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "concurrency.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
