"""How much memory DuckDB needs to replace N rows in one delete-insert transaction (what dlt's
merge does), under a memory cap: the reason the command raises its cap instead of keeping it
fixed (docs/performance.md, "DuckDB's memory while loading").

    .venv/bin/python -m bench.merge_memory --rows 5000000,10000000 --limits 64MB,128MB

Each (rows, limit) runs in its own process on a fresh DuckDB file with one thread: a table of N
rows keyed like `events` (segment, 15-minute bucket), a staging copy of it, then
`DELETE ... WHERE EXISTS (same key in staging); INSERT ... FROM staging; COMMIT`.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results" / "merge_memory.json"


def merge(rows: int, limit: str) -> dict[str, Any]:
    import duckdb

    with tempfile.TemporaryDirectory() as work:
        database = str(Path(work) / "merge.duckdb")
        with duckdb.connect(database, config={"threads": 1}) as con:
            con.execute(
                "CREATE TABLE events AS SELECT 'everyone' AS segment_id, "
                "TIMESTAMPTZ '2026-10-01' + to_minutes((i // 10000)::BIGINT) AS event_bucket, i AS id, "
                "'v' || (i % 1000)::VARCHAR AS a, 'w' || (i % 997)::VARCHAR AS b FROM range(?) t(i)",
                [rows],
            )
            con.execute("CREATE SCHEMA staging; CREATE TABLE staging.events AS SELECT * FROM events")
        started = time.perf_counter()
        with duckdb.connect(database, config={"threads": 1, "memory_limit": limit}) as con:
            try:
                con.execute("BEGIN TRANSACTION")
                con.execute(
                    "DELETE FROM events WHERE EXISTS (SELECT 1 FROM staging.events s "
                    "WHERE s.segment_id = events.segment_id AND s.event_bucket = events.event_bucket)"
                )
                con.execute("INSERT INTO events SELECT * FROM staging.events")
                con.execute("COMMIT")
                outcome = "ok"
            except duckdb.OutOfMemoryException as error:
                outcome = str(error).splitlines()[0]
    return {
        "rows": rows,
        "memory_limit": limit,
        "outcome": outcome,
        "seconds": round(time.perf_counter() - started, 2),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="1000000,5000000,10000000")
    parser.add_argument("--limits", default="64MB,128MB,256MB")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(merge(*json.loads(args.child))))
        return 0
    results = []
    for rows in (int(r) for r in args.rows.split(",")):
        for limit in args.limits.split(","):
            child = [sys.executable, "-m", "bench.merge_memory", "--child", json.dumps([rows, limit])]
            result = json.loads(subprocess.run(child, check=True, capture_output=True, text=True).stdout)
            print(f"{rows:>12,} rows  {limit:>6}  {result['outcome'][:60]:<60} {result['peak_rss_mb']:>5} MB")
            results.append(result)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
