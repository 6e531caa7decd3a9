"""Export -> DuckDB load benchmark: this pipeline vs DuckDB alone vs a naive dict resource.

    .venv/bin/python -m bench.export_load                       # 1M and 5M rows, json/ndjson/csv
    .venv/bin/python -m bench.export_load --quick               # 200k rows: a smoke run
    .venv/bin/python -m bench.export_load --rows 1000000 --formats ndjson --repeat 3

Exports are generated once into bench/.cache/ (deterministic; minutes for 5M rows) and served by
the sandbox (`Sandbox(export_cache_dir=...)`), so the pipeline runs its whole path over HTTP.
Every measured case runs in its own child process; its peak RSS is the child's maximum resident
set size (wait4). Results: a table on stdout and JSON in bench/results/. See docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import cache, cases

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
NAIVE_ROWS = 100_000
QUICK_NAIVE_ROWS = 20_000
TARGET_RATIO = 0.7
TARGET_RSS_MB = 300.0
TARGET_RSS_GROWTH = 1.2


def parse_rows(text: str) -> list[int]:
    out = []
    for item in text.split(","):
        item = item.strip().lower().replace("_", "")
        scale = {"k": 1_000, "m": 1_000_000}.get(item[-1:], 1)
        out.append(int(float(item[:-1] if scale > 1 else item) * scale))
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.export_load", description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=parse_rows, default=None, help="export sizes, e.g. 1000000,5M")
    parser.add_argument(
        "--formats", default="json,ndjson,csv", help="early-keys exports (DuckDB reads them with defaults)"
    )
    parser.add_argument(
        "--late-formats",
        default="json,ndjson",
        help="exports with a key first seen after DuckDB's sample ('' for none)",
    )
    parser.add_argument("--cases", default=",".join(cases.CASES), help="of: " + ",".join(cases.CASES))
    parser.add_argument(
        "--naive-rows",
        type=parse_rows,
        default=None,
        help="the one size the slow naive case runs at (default 100k; at 1M it takes ~20 min and 17 GB)",
    )
    parser.add_argument("--naive-formats", default="ndjson", help="formats of the naive case")
    parser.add_argument(
        "--reference-rows",
        default=None,
        help="sizes at which the DuckDB references run (default: the smallest; 'all': every size)",
    )
    parser.add_argument(
        "--destination-config",
        type=json.loads,
        default=None,
        help='DuckDB settings for the pipeline\'s destination, e.g. \'{"memory_limit": "128MB"}\' '
        "(default: the project's .dlt/config.toml)",
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs per case; the median is reported")
    parser.add_argument("--quick", action="store_true", help="200,000 rows: a smoke run")
    parser.add_argument("--cache-dir", type=Path, default=cache.DEFAULT_CACHE)
    parser.add_argument("--output", type=Path, default=None, help="JSON result file")
    parser.add_argument(
        "--profile", action="store_true", help="time the pipeline's stages instead (first size and format)"
    )
    parser.add_argument(
        "--release-after-extract",
        action="store_true",
        help="--profile: release freed memory between dlt's extract and load steps",
    )
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    return parser


# -- one measured case in its own process ---------------------------------------------------------


def measure(
    spec: dict[str, Any], cwd: Path, destination_config: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Run one case in a child process; its result plus its wall time and peak RSS.
    `destination_config`: DuckDB settings for dlt's destination connections, instead of what
    the project's .dlt/config.toml says."""
    work = Path(spec["workdir"])
    work.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "DLT_DATA_DIR": str(work / "dlt"),
        "RUNTIME__LOG_LEVEL": "WARNING",
    }
    env.pop("DESTINATION__DUCKDB__CREDENTIALS", None)
    if destination_config is not None:
        env["DESTINATION__DUCKDB__CREDENTIALS__GLOBAL_CONFIG"] = json.dumps(destination_config)
    command = [sys.executable, "-m", "bench.export_load", "--child", json.dumps(spec)]
    with tempfile.TemporaryFile("w+") as out:
        started = time.perf_counter()
        child = subprocess.Popen(command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        process_seconds = time.perf_counter() - started
        out.seek(0)
        text = out.read()
    results = [line for line in text.splitlines() if line.startswith("BENCH_RESULT ")]
    if child.returncode != 0 or not results:
        raise RuntimeError(f"{spec['case']} failed (exit {child.returncode}):\n{text[-4000:]}")
    result = json.loads(results[-1].removeprefix("BENCH_RESULT "))
    result["process_seconds"] = process_seconds
    # the child's own VmHWM: ru_maxrss also counts the pages it shared with this process when it
    # was forked (Linux keeps the maximum across fork and exec), which is this process's peak
    # after it generated the exports (1.48 GB at 5M rows); ru_maxrss only when the child did not say
    result["peak_rss_mb"] = result.pop("vmhwm_mb", 0.0) or usage.ru_maxrss / 1024
    result["rows_per_s"] = result["rows"] / result["seconds"]
    return result


# -- the run ---------------------------------------------------------------------------------------


def expected_types(keys: Sequence[str]) -> dict[str, str]:
    """The DuckDB type every column of the export must have after loading (fields.py)."""
    from dlt.common.normalizers.naming.snake_case import NamingConvention

    from fullstory_source.fields import declared_type

    naming = NamingConvention()
    out = {}
    for key in keys:
        declared = declared_type(key)
        if declared is None:
            out[naming.normalize_identifier(key)] = "VARCHAR"
        elif declared.endswith("[]"):
            out[naming.normalize_identifier(key)] = "JSON"  # dlt keeps lists as JSON
        else:
            out[naming.normalize_identifier(key)] = cases.DUCKDB_TYPES[declared]
    out.update(
        segment_id="VARCHAR",
        window_start="TIMESTAMP WITH TIME ZONE",
        window_end="TIMESTAMP WITH TIME ZONE",
    )
    return out


def type_problems(loaded: dict[str, str], expected: dict[str, str]) -> list[str]:
    problems = [f"{name}: missing" for name in expected if name not in loaded]
    problems += [
        f"{name}: {loaded[name]} instead of {sql_type}"
        for name, sql_type in expected.items()
        if name in loaded and loaded[name] != sql_type
    ]
    return problems


LATE = " late key"  # label suffix of the late-key variant of a format


def run_benchmark(
    sizes: Sequence[int],
    formats: Sequence[str],
    case_names: Sequence[str],
    *,
    late_formats: Sequence[str] = (),
    naive_rows: int | None = None,
    naive_formats: Sequence[str] = ("ndjson",),
    reference_sizes: Sequence[int] | None = None,
    repeat: int = 1,
    cache_dir: Path = cache.DEFAULT_CACHE,
    destination_config: dict[str, Any] | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Measure every planned case. `formats`: the early-keys exports (every key in the first
    rows: DuckDB reads them with its defaults); `late_formats`: the exports as generated, with a
    key first seen after DuckDB's sample (labelled "<format> late key"; DuckDB needs
    `sample_size=-1`). `reference_sizes` (default: the smallest size) are the sizes at which the
    DuckDB references run next to the pipeline, `naive_rows` (default: the smallest size) the
    one size at which the slow naive case runs."""
    from fullstory_source.readers import column_type

    naive_rows = naive_rows or min(sizes)
    reference_sizes = reference_sizes or [min(sizes)]
    exports: dict[int, dict[str, cache.CachedExport]] = {}
    for rows in sizes:
        exports[rows] = dict(cache.ensure_early_exports(cache_dir, rows, formats, log)) if formats else {}
        if late_formats:
            late = cache.ensure_exports(cache_dir, rows, late_formats, log)
            exports[rows].update({f"{fmt}{LATE}": export for fmt, export in late.items()})
    if "naive" in case_names and naive_rows not in exports:
        exports[naive_rows] = dict(cache.ensure_early_exports(cache_dir, naive_rows, naive_formats, log))
    measured: list[dict[str, Any]] = []
    scratch = Path(tempfile.mkdtemp(prefix="fullstory-bench-"))
    try:
        for round_number in range(repeat):
            for rows, by_label in sorted(exports.items()):
                for label, export in by_label.items():
                    keys = list(export.fields) if export.fields else _keys(cache_dir, export.events_per_hour)
                    planned = [c for c in cases.REFERENCES if rows in reference_sizes]
                    planned = [c for c in [*planned, "pipeline"] if c in case_names and rows in sizes]
                    if round_number % 2:
                        planned.reverse()  # alternate the order: drift on a shared machine cancels out
                    if "naive" in case_names and rows == naive_rows and label in naive_formats:
                        planned.append("naive")
                    for case in planned:
                        slug = label.replace(" ", "-")
                        work = scratch / f"{case}-{rows}-{slug}-{round_number}"
                        spec = {
                            "case": case,
                            "format": export.export_format,
                            "file": str(export.path),
                            "segment": cache.SEGMENT,
                            "workdir": str(work),
                        }
                        if export.fields:
                            spec["fields"] = list(export.fields)
                        if case in ("duckdb_typed", "duckdb_exact"):
                            spec["types"] = {key: column_type(key) for key in keys}
                        with serving(export, work, cache_dir) as sandbox:
                            spec["base_url"] = sandbox.base_url
                            # the pipeline reads the project's .dlt/config.toml; naive gets dlt defaults
                            result = measure(
                                spec,
                                ROOT if case == "pipeline" else work,
                                destination_config if case == "pipeline" else None,
                            )
                        shutil.rmtree(work, ignore_errors=True)
                        if result["rows"] != export.rows:
                            raise RuntimeError(f"{case} loaded {result['rows']} of {export.rows} rows")
                        if "types" in result:
                            result["type_problems"] = type_problems(result.pop("types"), expected_types(keys))
                        entry = {
                            "case": case,
                            "format": label,
                            "nominal_rows": rows,
                            "round": round_number,
                            "gz_bytes": export.gz_bytes,
                            "raw_bytes": export.raw_bytes,
                            **result,
                        }
                        measured.append(entry)
                        log(_progress_line(entry))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    result = summarize(measured, repeat)
    result["destination_config"] = destination_config
    # what the pipeline case's DuckDB ran with when no destination config was given
    from pipelines.duckdb_memory import configured_limit

    result["command_duckdb_memory_limit"] = None if destination_config else configured_limit()
    return result


def profile(
    rows: int,
    export_format: str,
    cache_dir: Path = cache.DEFAULT_CACHE,
    destination_config: dict[str, Any] | None = None,
    release_after_extract: bool = False,
) -> dict[str, Any]:
    """Where the pipeline's time goes, stage by stage (one child process). With
    `release_after_extract`, freed memory is handed back to the system between dlt's extract
    and load steps (what running the steps one by one could do)."""
    export = cache.ensure_exports(cache_dir, rows, [export_format])[export_format]
    scratch = Path(tempfile.mkdtemp(prefix="fullstory-profile-"))
    try:
        spec = {
            "case": "profile",
            "format": export_format,
            "segment": cache.SEGMENT,
            "workdir": str(scratch),
            "release_after_extract": release_after_extract,
        }
        with serving(export, scratch, cache_dir) as sandbox:
            spec["base_url"] = sandbox.base_url
            result = measure(spec, ROOT, destination_config)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return {"format": export_format, "gz_bytes": export.gz_bytes, "raw_bytes": export.raw_bytes, **result}


def serving(export: cache.CachedExport, work: Path, cache_dir: Path) -> Any:
    """The sandbox that serves the cached export file over HTTP, as FullStory would."""
    from fullstory_sandbox import Sandbox

    return Sandbox(
        api_key=cases.API_KEY,
        flavor="live",
        events_per_hour=export.events_per_hour,
        operation_polls=1,
        workdir=str(work / "sandbox"),
        export_cache_dir=str(cache_dir),
    )


def render_profile(result: dict[str, Any]) -> str:
    lines = [
        f"profile: {result['rows']:,} rows, {result['format']}, {result['gz_bytes'] / 1e6:.0f} MB gz,"
        f" {result['raw_bytes'] / 1e6:.0f} MB raw; peak RSS {result['peak_rss_mb']:.0f} MB"
    ]
    lines.append(f"  {'stage':<33} {'seconds':>8} {'rows/s':>11} {'stage peak RSS MB':>18} {'RSS after':>10}")
    lines.append(f"  {'(imports)':<33} {'':>8} {'':>11} {result['import_rss_mb']:>18.0f}")
    for name, stage in result["stages"].items():
        seconds = stage["seconds"]
        speed = f"{result['rows'] / seconds:,.0f}" if seconds > 0 else ""
        peak = f"{stage['peak_rss_mb']:.0f}" if stage["peak_rss_mb"] else ""
        after = f"{stage['rss_after_mb']:.0f}" if stage.get("rss_after_mb") else ""
        lines.append(f"  {name:<33} {seconds:>8.2f} {speed:>11} {peak:>18} {after:>10}")
    return "\n".join(lines)


def _keys(cache_dir: Path, events_per_hour: int) -> list[str]:
    ndjson = cache.cache_path(cache_dir, "ndjson", events_per_hour)
    return json.loads(ndjson.with_name(ndjson.name + ".keys.json").read_text())


def _progress_line(entry: dict[str, Any]) -> str:
    return (
        f"  {entry['nominal_rows']:>10,} {entry['format']:<15} {entry['case']:<13}"
        f" {entry['rows_per_s']:>10,.0f} rows/s {entry['seconds']:>7.2f} s {entry['peak_rss_mb']:>7.0f} MB"
    )


def summarize(measured: list[dict[str, Any]], repeat: int) -> dict[str, Any]:
    groups: dict[tuple[int, str, str], list[dict[str, Any]]] = {}
    for entry in measured:
        groups.setdefault((entry["nominal_rows"], entry["format"], entry["case"]), []).append(entry)
    table = []
    for (rows, export_format, case), entries in sorted(groups.items()):
        row: dict[str, Any] = {
            "nominal_rows": rows,
            "format": export_format,
            "case": case,
            "rows": entries[0]["rows"],
            "gz_bytes": entries[0]["gz_bytes"],
            "raw_bytes": entries[0]["raw_bytes"],
            "runs": len(entries),
            "rows_per_s": statistics.median(e["rows_per_s"] for e in entries),
            "seconds": statistics.median(e["seconds"] for e in entries),
            "peak_rss_mb": max(e["peak_rss_mb"] for e in entries),
        }
        if "steps" in entries[0]:
            row["steps"] = {
                step: statistics.median(e["steps"].get(step, 0.0) for e in entries)
                for step in entries[0]["steps"]
            }
        for key in ("sql", "refused"):
            if key in entries[0]:
                row[key] = entries[0][key]
        if "type_problems" in entries[0]:
            row["type_problems"] = sorted({p for e in entries for p in e["type_problems"]})
        table.append(row)
    ratios = []
    for rows, export_format in sorted({(rows, fmt) for rows, fmt, _ in groups}):
        ratio: dict[str, Any] = {"nominal_rows": rows, "format": export_format}
        entries = groups.get((rows, export_format, "pipeline"), [])
        for reference in ("duckdb", "duckdb_typed", "duckdb_exact", "naive"):
            others = {e["round"]: e for e in groups.get((rows, export_format, reference), [])}
            if not entries or not others:
                continue
            if reference == "naive":  # measured once, not side by side in every round
                naive = statistics.median(e["rows_per_s"] for e in others.values())
                ratio["pipeline_vs_naive"] = statistics.median(e["rows_per_s"] for e in entries) / naive
                continue
            ratio.update(_paired(f"pipeline_vs_{reference}", entries, others))
        # the floor of an exact load against DuckDB's own read (docs/performance.md, "The floor")
        exact = groups.get((rows, export_format, "duckdb_exact"), [])
        duckdb = {e["round"]: e for e in groups.get((rows, export_format, "duckdb"), [])}
        ratio.update(_paired("duckdb_exact_vs_duckdb", exact, duckdb))
        if len(ratio) > 2:
            ratios.append(ratio)
    return {
        "benchmark": "export_load",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "repeat": repeat,
        "table": table,
        "ratios": ratios,
        "targets": targets(table, ratios),
        "runs": measured,
    }


def _paired(name: str, entries: list[dict[str, Any]], others: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """rows/s of `entries` over `others`, round by round (side by side), and their median."""
    paired = [e["rows_per_s"] / others[e["round"]]["rows_per_s"] for e in entries if e["round"] in others]
    return {name: statistics.median(paired), f"{name}_each_round": paired} if paired else {}


def targets(table: list[dict[str, Any]], ratios: list[dict[str, Any]]) -> dict[str, Any]:
    pipeline = {(r["nominal_rows"], r["format"]): r for r in table if r["case"] == "pipeline"}
    sizes = sorted({rows for rows, _ in pipeline})
    out: dict[str, Any] = {
        "ratio_vs_duckdb": {
            f"{r['nominal_rows']}/{r['format']}": {
                "value": round(r["pipeline_vs_duckdb"], 3),
                "met": r["pipeline_vs_duckdb"] >= TARGET_RATIO,
            }
            for r in ratios
            if "pipeline_vs_duckdb" in r
        },
        "types_exact": {
            f"{rows}/{fmt}": not entry.get("type_problems") for (rows, fmt), entry in pipeline.items()
        },
    }
    if sizes:
        largest = sizes[-1]
        out["peak_rss_largest"] = {
            f"{largest}/{fmt}": {"mb": round(e["peak_rss_mb"]), "met": e["peak_rss_mb"] <= TARGET_RSS_MB}
            for (rows, fmt), e in pipeline.items()
            if rows == largest
        }
    if len(sizes) > 1:
        small, large = sizes[0], sizes[-1]
        out["rss_growth"] = {}
        for (rows, fmt), entry in pipeline.items():
            if rows == large and (small, fmt) in pipeline:
                growth = entry["peak_rss_mb"] / pipeline[(small, fmt)]["peak_rss_mb"]
                out["rss_growth"][f"{small}->{large}/{fmt}"] = {
                    "value": round(growth, 3),
                    "met": growth <= TARGET_RSS_GROWTH,
                }
    return out


def machine() -> dict[str, Any]:
    from importlib.metadata import version

    memory = 0
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                memory = int(line.split()[1]) // 1024
    return {
        "cpus": os.cpu_count(),
        "memory_mb": memory,
        "platform": platform.platform(),
        "python": platform.python_version(),
        **{name: version(name) for name in ("dlt", "duckdb", "pyarrow")},
    }


# the ratios the table shows beside each case: against DuckDB's read, and against the exact floor
_VERSUS = {
    "pipeline": ("pipeline_vs_duckdb", "pipeline_vs_duckdb_exact"),
    "duckdb_exact": ("duckdb_exact_vs_duckdb",),
}


def render(result: dict[str, Any]) -> str:
    ratios = {(r["nominal_rows"], r["format"]): r for r in result["ratios"]}
    lines = [
        f"{'rows':>10} {'format':<15} {'case':<13} {'rows/s':>10} {'wall s':>8} {'peak RSS MB':>12}"
        f" {'vs duckdb':>10} {'vs exact':>9}",
    ]
    for row in result["table"]:
        versus = ["", ""]
        ratio = ratios.get((row["nominal_rows"], row["format"]), {})
        for i, name in enumerate(_VERSUS.get(row["case"], ())):
            versus[i] = f"{ratio[name]:.2f}x" if name in ratio else ""
        lines.append(
            f"{row['rows']:>10,} {row['format']:<15} {row['case']:<13} {row['rows_per_s']:>10,.0f}"
            f" {row['seconds']:>8.2f} {row['peak_rss_mb']:>12.0f} {versus[0]:>10} {versus[1]:>9}"
        )
    for row in result["table"]:
        if row.get("refused"):
            lines.append(
                f"  {row['nominal_rows']}/{row['format']}: DuckDB refused the plain read ({row['refused']})"
            )
            lines.append(f"    so the duckdb reference is {row['sql']}")
    lines.append("")
    lines.append("targets:")
    for name, values in result["targets"].items():
        for key, value in values.items():
            lines.append(f"  {name:<18} {key:<22} {value}")
    for row in result["table"]:
        if row.get("type_problems"):
            lines.append(f"  type problems {row['nominal_rows']}/{row['format']}: {row['type_problems']}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.child is not None:
        return cases.child_main(args.child)
    sizes = args.rows or ([200_000] if args.quick else [1_000_000, 5_000_000])
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    late_formats = [f.strip() for f in args.late_formats.split(",") if f.strip()]
    case_names = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = set(case_names) - set(cases.CASES) or set(formats + late_formats) - set(cache.FORMATS)
    if unknown:
        raise SystemExit(f"unknown case or format: {sorted(unknown)}")
    naive_formats = [f.strip() for f in args.naive_formats.split(",") if f.strip()]
    if args.profile:
        for export_format in formats:
            result = profile(
                sizes[0], export_format, args.cache_dir, args.destination_config, args.release_after_extract
            )
            print(render_profile(result))
        return 0
    if args.reference_rows == "all":
        reference_sizes = sizes
    else:
        reference_sizes = parse_rows(args.reference_rows) if args.reference_rows else None
    result = run_benchmark(
        sizes,
        formats,
        case_names,
        late_formats=late_formats,
        naive_rows=args.naive_rows[0]
        if args.naive_rows
        else min([QUICK_NAIVE_ROWS if args.quick else NAIVE_ROWS, *sizes]),
        naive_formats=naive_formats,
        reference_sizes=reference_sizes,
        repeat=args.repeat,
        cache_dir=args.cache_dir,
        destination_config=args.destination_config,
    )
    print()
    print(render(result))
    output = args.output or RESULTS / ("export_load_quick.json" if args.quick else "export_load.json")
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
