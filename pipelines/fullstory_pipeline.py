"""The `fullstory-pipeline` command: run, backfill, status, demo, segments.

    fullstory-pipeline run --segment everyone --types events --start 2026-10-01T00:00:00Z
    fullstory-pipeline backfill --start 2026-09-01T00:00:00Z --end 2026-10-01T00:00:00Z
    fullstory-pipeline status
    fullstory-pipeline demo
    fullstory-pipeline segments
    fullstory-pipeline models

Exit codes: 0 all windows loaded; 1 some windows failed (the rest loaded, see the summary);
2 bad input (nothing was loaded).
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import dlt
from dlt.common.configuration.exceptions import ConfigFieldMissingException, ConfigurationException
from dlt.common.pipeline import get_dlt_pipelines_dir
from dlt.destinations.exceptions import DatabaseUndefinedRelation
from dlt.pipeline.exceptions import PipelineStepFailed

from fullstory_source import (
    Backfill,
    ConfigurationError,
    FullStoryError,
    RunReport,
    duckdb_destination,
    fan_out,
    fullstory_source,
)
from fullstory_source.errors import root_cause
from fullstory_source.plans import backfill_progress
from fullstory_source.readers import prefer_system_allocator
from fullstory_source.registry import EXPORT_TYPES
from fullstory_source.resumed_load import drop_rows_copied_by_unrecorded_jobs
from fullstory_source.runs import RUNS_TABLE, backfills_resource
from fullstory_source.windows import format_time, parse_time

from .config_errors import describe_config_error
from .duckdb_memory import duckdb_memory
from .models import add_models_parser
from .progress import ProgressDisplay, make_console, setup_logging
from .run_lock import pipeline_lock
from .status import resource_states, status_lines
from .stop_signals import stop_on_signals

logger = logging.getLogger("fullstory_pipeline")

# The DuckDB file is named after the pipeline (dlt's default). It must not be named like the
# dataset: DuckDB then has a catalog and a schema both called `fullstory` and refuses queries
# as ambiguous (../README.md, "The command").
DEFAULT_PIPELINE = "fullstory_pipeline"
DEFAULT_DATASET = "fullstory"
DEMO_DATABASE = "fullstory_demo.duckdb"
DEMO_PIPELINE = "fullstory_demo"
DEMO_START = "2026-10-01T00:00:00Z"
DEMO_END = "2026-10-04T00:00:00Z"


@dataclass
class RunSummary:
    rows: dict[str, int] = field(default_factory=dict)
    report: RunReport = field(default_factory=RunReport)
    seconds: float = 0.0
    finished_pending: bool = False

    @property
    def failed(self) -> bool:
        return bool(self.report.failures)

    def lines(self) -> list[str]:
        report = self.report
        out = ["", "Summary"]
        if self.finished_pending:
            out.append("  finished a load package left pending by an earlier run")
        for table, count in sorted(self.rows.items()):
            out.append(f"  {table:<12} {count:>10,} rows")
        out.append(
            f"  windows      {report.windows_loaded:>10,} loaded"
            + (f", {len(report.failures)} failed" if report.failures else "")
        )
        if report.refreshed:
            late = sum(o.rows_delta or 0 for o in report.refreshed)
            out.append(
                f"               {report.windows_loaded - len(report.refreshed):>10,} new, "
                f"{len(report.refreshed)} refreshed ({late:+,} rows arrived late)"
            )
            for outcome in report.refreshed:
                if outcome.rows_delta:
                    out.append(f"    refreshed {outcome.job}: {outcome.rows_delta:+,} rows")
        out.append(f"  downloaded   {report.bytes_downloaded:>10,} bytes")
        out.append(f"  time         {self.seconds:>10.1f} s")
        for failure in self.report.failures:
            out.append(f"  FAILED {failure.job}: {failure.error}")
        return out


def run_pipeline(
    pipeline: dlt.Pipeline,
    interactive: bool | None = None,
    resources: Sequence[str] | None = None,
    **source_args: Any,
) -> RunSummary:
    """Finish any load an earlier run left pending, then extract and load new windows."""
    summary = RunSummary()
    started = time.monotonic()
    prefer_system_allocator()
    memory = duckdb_memory(pipeline)
    with memory.applied():
        if pipeline.has_pending_data:
            logger.info("an earlier run left a pending load package: loading it first")
            drop_rows_copied_by_unrecorded_jobs(pipeline)
            memory.run(pipeline, pipeline.run)
            summary.finished_pending = True
        display = ProgressDisplay(summary.report, interactive=interactive)
        # a failed window is recorded (the command exits 1), the others still load
        events = fan_out(summary.report, display)
        source = fullstory_source(events=events, on_window_error="record", **source_args)
        if resources:
            unknown = sorted(set(resources) - set(source.resources))
            if unknown:
                raise ConfigurationError(
                    f"unknown resource(s) {unknown}; this run has {sorted(source.resources)} "
                    "(batch import resources need --batch-job or batch_import_job_ids)"
                )
            exporting = any(name in EXPORT_TYPES for name in resources)
            # the run records of the selected export resources come along
            source = source.with_resources(*resources, *([RUNS_TABLE] if exporting else []))

        def run_source() -> None:
            try:
                pipeline.run(source)
            finally:  # a load retried with more memory has a trace of its own, without these
                summary.rows = normalized_rows(pipeline)

        with display:
            memory.run(pipeline, run_source)
    summary.seconds = time.monotonic() - started
    return summary


def normalized_rows(pipeline: dlt.Pipeline) -> dict[str, int]:
    info = pipeline.last_trace.last_normalize_info if pipeline.last_trace else None
    counts = info.row_counts if info else {}
    return {table: rows for table, rows in counts.items() if not table.startswith("_dlt")}


def make_pipeline(args: argparse.Namespace, pipelines_dir: str | None = None) -> dlt.Pipeline:
    pipeline = dlt.pipeline(
        pipeline_name=args.pipeline_name,
        destination=duckdb_destination.for_command(args.destination),
        staging=getattr(args, "staging", None),
        dataset_name=args.dataset_name,
        pipelines_dir=pipelines_dir,
    )
    database = duckdb_file(pipeline)
    if database is not None and database.stem == pipeline.dataset_name:
        raise ConfigurationError(
            f"the DuckDB file {database.name} is named like the dataset {pipeline.dataset_name!r}, "
            "which DuckDB cannot tell apart; use another --pipeline-name (it names the file) or "
            "--dataset-name, or set DESTINATION__DUCKDB__CREDENTIALS to another file"
        )
    return pipeline


def duckdb_file(pipeline: dlt.Pipeline) -> Path | None:
    """The DuckDB file a pipeline loads into (None for other destinations), without opening it."""
    if not duckdb_destination.is_duckdb(pipeline.destination):
        return None
    database = pipeline.destination_client().config.credentials.database
    return Path(database) if isinstance(database, str) and database != ":memory:" else None


def source_args(args: argparse.Namespace) -> dict[str, Any]:
    """Only what was given on the command line: the rest comes from dlt config."""
    given = {
        "segment_ids": args.segment,
        "export_types": args.types,
        "export_format": args.format,
        "start_date": args.start,
        "end_date": args.end,
        "window": args.window,
        "export_delay": getattr(args, "export_delay", None),
        "lookback": getattr(args, "lookback", None),
        "batch_import_job_ids": getattr(args, "batch_job", None),
        "api_flavor": args.api_flavor,
        "base_url": args.base_url,
        "region": args.region,
        "max_windows_per_run": 0 if getattr(args, "yes", False) else None,
    }
    return {name: value for name, value in given.items() if value is not None}


def cmd_run(args: argparse.Namespace) -> int:
    with pipeline_lock(args.pipeline_name):
        summary = run_pipeline(make_pipeline(args), resources=args.resources, **source_args(args))
    print("\n".join(summary.lines()))
    return 1 if summary.failed else 0


def cmd_backfill(args: argparse.Namespace) -> int:
    """Export [start, end) again in grid windows, resumably, and record its progress."""
    start, end = parse_time(args.start, "--start"), parse_time(args.end, "--end")
    if start >= end:
        raise ConfigurationError(f"--start {args.start} is not before --end {args.end}")
    with pipeline_lock(args.pipeline_name):
        return backfill_locked(args, start, end)


def backfill_locked(args: argparse.Namespace, start: datetime, end: datetime) -> int:
    pipeline = make_pipeline(args)
    backfill = Backfill(start, end, force=args.force)
    summary = run_pipeline(pipeline, backfill=backfill, **source_args(args))
    states = resource_states(pipeline)
    records = [
        p for p in backfill_progress(states) if p.start == format_time(start) and p.end == format_time(end)
    ]
    rows = loaded_backfill_rows(pipeline, [p.backfill_id for p in records])
    status = "FailedRetryable" if summary.failed else "Completed"
    pipeline.run(backfills_resource(records, status, rows))
    print("\n".join(summary.lines()))
    for progress in records:
        print(
            f"  backfill     {progress.finished_runs}/{progress.total_runs} windows ({progress.percent:.1f}%)"
        )
    return 1 if summary.failed else 0


def loaded_backfill_rows(pipeline: dlt.Pipeline, backfill_ids: list[str]) -> dict[str, int]:
    if not backfill_ids:
        return {}
    with pipeline.sql_client() as client:
        table = client.make_qualified_table_name(RUNS_TABLE)
        marks = ", ".join("%s" for _ in backfill_ids)
        query = (
            f"SELECT backfill_id, sum(total_records_count) FROM {table} "
            f"WHERE status = 'Completed' AND backfill_id IN ({marks}) GROUP BY 1"
        )
        try:
            with client.execute_query(query, *backfill_ids) as cursor:
                return {row[0]: int(row[1] or 0) for row in cursor.fetchall()}
        except DatabaseUndefinedRelation:
            return {}  # nothing was ever loaded into this destination


def cmd_status(args: argparse.Namespace) -> int:
    """Exit 1 when the last run had failed windows; 2 when there is no such pipeline."""
    local = Path(get_dlt_pipelines_dir()) / args.pipeline_name / "state.json"
    if local.exists():
        return print_status(make_pipeline(args))
    # a fresh machine (a CI runner): the state lives in the destination too. Look there with a
    # throwaway local copy, so that asking about a pipeline that does not exist creates nothing
    with tempfile.TemporaryDirectory(prefix="fullstory-status-") as scratch:
        pipeline = make_pipeline(args, pipelines_dir=scratch)
        database = duckdb_file(pipeline)
        if database is None or database.exists():
            pipeline.sync_destination()
        if pipeline.first_run:
            where = (
                f"no DuckDB file {database}"
                if database and not database.exists()
                else "no state in the destination"
            )
            raise ConfigurationError(
                f"no pipeline {args.pipeline_name!r} (dataset {args.dataset_name!r}) here: no local "
                f"state in {local.parent} and {where}; run `fullstory-pipeline run` first, or pass the "
                "--pipeline-name/--dataset-name (and DESTINATION__DUCKDB__CREDENTIALS) it ran with"
            )
        return print_status(pipeline)


def print_status(pipeline: dlt.Pipeline) -> int:
    lines, failed = status_lines(pipeline)
    print("\n".join(lines))
    return 1 if failed else 0


def cmd_demo(args: argparse.Namespace) -> int:
    database = Path(args.output).resolve()
    if (
        database.exists()
        and not args.overwrite
        and not is_demo_database(database)
        and not confirmed(f"{database} exists and is not a demo database; replace it? [y/N] ")
    ):
        raise ConfigurationError(
            f"{database} exists and is not a demo database: choose another --output, "
            "or pass --overwrite to replace it"
        )
    with pipeline_lock(DEMO_PIPELINE):
        return demo_locked(database)


def demo_locked(database: Path) -> int:
    from fullstory_sandbox import Sandbox

    for stale in (database, database.with_name(database.name + ".wal")):
        stale.unlink(missing_ok=True)
    # 60 events an hour: sessions of a dozen events over several pages for the models (make demo)
    with Sandbox(api_key="demo-key", flavor="live", operation_polls=2, events_per_hour=60) as sandbox:
        print(f"FullStory sandbox listening on {sandbox.base_url}")
        pipeline = dlt.pipeline(
            pipeline_name=DEMO_PIPELINE,
            destination=duckdb_destination.duckdb(str(database)),
            dataset_name="fullstory",
        )
        pipeline.drop()  # a demo starts from scratch every time
        summary = run_pipeline(
            pipeline,
            api_key="demo-key",
            base_url=sandbox.base_url,
            api_flavor="live",
            start_date=DEMO_START,
            end_date=DEMO_END,
            window="1d",
            poll_interval=0.05,
            max_creates_per_minute=6000,  # the sandbox has no rate limit
        )
    print("\n".join(summary.lines()))
    print_samples(database)
    python, path = Path(sys.executable).as_posix(), database.as_posix()
    print(
        f"\nLoaded into {database} (dataset 'fullstory'). Try:\n"
        f"  {python} -c \"import duckdb; print(duckdb.connect('{path}')"
        ".sql('select event_type, count(*) from fullstory.events group by 1'))\""
    )
    return 1 if summary.failed else 0


def confirmed(question: str) -> bool:
    """Ask on a terminal; anywhere else (cron, CI, a pipe) the answer is no."""
    return sys.stdin.isatty() and input(question).strip().lower() in ("y", "yes")


def is_demo_database(path: Path) -> bool:
    """A DuckDB file an earlier demo wrote (which a demo replaces without asking)."""
    import duckdb

    try:
        with duckdb.connect(str(path), read_only=True) as con:
            found = con.execute(
                "SELECT 1 FROM fullstory._dlt_pipeline_state WHERE pipeline_name = ? LIMIT 1", [DEMO_PIPELINE]
            ).fetchone()
    except duckdb.Error:
        return False  # not DuckDB, or no demo state in it
    return found is not None


def print_samples(database: Path) -> None:
    import duckdb

    with duckdb.connect(str(database), read_only=True) as con:
        print("\nSample events:")
        print(
            con.sql(
                "SELECT segment_id, event_start, event_type, indv_id, page_url "
                "FROM fullstory.events ORDER BY event_start, segment_id LIMIT 5"
            )
        )
        print("Events per segment:")
        print(con.sql("SELECT segment_id, count(*) AS events FROM fullstory.events GROUP BY 1 ORDER BY 1"))


def cmd_segments(args: argparse.Namespace) -> int:
    from fullstory_source.client import FullStoryClient, resolve_base_url
    from fullstory_source.registry import DIALECTS

    api_key = dlt.secrets.get("sources.fullstory.api_key") or ""
    flavor = args.api_flavor or dlt.config.get("sources.fullstory.api_flavor") or "live"
    if flavor not in DIALECTS:
        raise ConfigurationError(f"api_flavor={flavor!r} is unknown; use 'live' or 'spec'")
    base_url = resolve_base_url(
        args.base_url or dlt.config.get("sources.fullstory.base_url"),
        args.region or dlt.config.get("sources.fullstory.region"),
        api_key,
    )
    client = FullStoryClient(api_key, base_url)
    print(f"{'id':<32} {'name':<32} {'creator':<28} created")
    for page in client.segment_pages(DIALECTS[flavor].segments_cursor_param):
        for segment in page:
            print(
                f"{segment.get('id', ''):<32} {segment.get('name', ''):<32} "
                f"{segment.get('creator', ''):<28} {segment.get('created', '(built-in)')}"
            )
    return 0


def missing_config(error: ConfigFieldMissingException) -> str:
    """dlt's message is a page long; say in one line which value is missing and where it goes."""
    if "api_key" in error.fields:
        return (
            "no FullStory API key: set SOURCES__FULLSTORY__API_KEY, or api_key under "
            "[sources.fullstory] in .dlt/secrets.toml (copy .dlt/secrets.toml.example)"
        )
    names = ", ".join(error.fields)
    return f"missing configuration {names} of {error.spec_name}: see .dlt/config.toml"


def csv_list(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fullstory-pipeline", description="Load FullStory segment exports with dlt."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="every step of every export (DEBUG)")
    # `-v` also after the command name (`run -v`), without resetting one given before it
    verbose = argparse.ArgumentParser(add_help=False)
    verbose.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="as above")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", parents=[verbose], help="export new windows and load them")
    add_pipeline_args(run)
    add_export_args(run)
    run.add_argument("--start", help="first window start when no cursor exists yet (RFC 3339)")
    run.add_argument("--end", help="last window end instead of now minus export delay (RFC 3339)")
    run.add_argument("--export-delay", help="windows end no later than now minus this (default 24h)")
    run.add_argument(
        "--lookback", help="also re-export loaded windows ending within this of the newest (e.g. 24h)"
    )
    run.add_argument(
        "--resources",
        type=csv_list,
        help="comma list of resources to load (default all): segments, events, individuals, "
        "batch_import_jobs, batch_imported_events, batch_import_errors",
    )
    run.add_argument("--batch-job", action="append", help="v2 batch import job id; repeat for several")
    add_connection_args(run)
    run.set_defaults(handler=cmd_run)

    backfill = commands.add_parser(
        "backfill",
        parents=[verbose],
        help="re-export [start, end) in grid windows; re-run the same command to resume",
    )
    add_pipeline_args(backfill)
    add_export_args(backfill)
    backfill.add_argument("--start", required=True, help="first window start (RFC 3339)")
    backfill.add_argument("--end", required=True, help="last window end (RFC 3339)")
    backfill.add_argument("--force", action="store_true", help="export again the windows already done")
    add_connection_args(backfill)
    backfill.set_defaults(handler=cmd_backfill)

    status = commands.add_parser(
        "status", parents=[verbose], help="cursors, last run outcomes and open backfills"
    )
    add_pipeline_args(status)
    status.set_defaults(handler=cmd_status)

    demo = commands.add_parser(
        "demo", parents=[verbose], help="offline demo: local FullStory sandbox -> DuckDB"
    )
    demo.add_argument("--output", default=DEMO_DATABASE, help=f"DuckDB file (default {DEMO_DATABASE})")
    demo.add_argument(
        "--overwrite",
        action="store_true",
        help="replace --output even if it is not an earlier demo's database",
    )
    demo.set_defaults(handler=cmd_demo)

    segments = commands.add_parser(
        "segments", parents=[verbose], help="list the segments the API key can see"
    )
    add_connection_args(segments)
    segments.set_defaults(handler=cmd_segments)

    add_models_parser(commands, add_pipeline_args)
    return parser


def add_pipeline_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--destination", default="duckdb", help="dlt destination (default duckdb)")
    parser.add_argument("--dataset-name", default=DEFAULT_DATASET, help=f"default {DEFAULT_DATASET}")
    parser.add_argument(
        "--pipeline-name",
        default=DEFAULT_PIPELINE,
        help=f"dlt pipeline name; names the DuckDB file too (default {DEFAULT_PIPELINE}.duckdb)",
    )
    parser.add_argument(
        "--staging",
        choices=["filesystem"],
        help="stage load files in a bucket (DESTINATION__FILESYSTEM__BUCKET_URL) for the warehouse to copy",
    )


def add_export_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--segment", action="append", help="segment id; repeat for several (default: all)")
    parser.add_argument("--types", type=csv_list, help="comma list of events,individuals (default both)")
    parser.add_argument("--format", choices=["json", "ndjson", "csv"], help="export format (default json)")
    parser.add_argument("--window", help="window length dividing 24h: 15m, 1h, 6h, 1d (default 1d)")
    parser.add_argument(
        "--yes", action="store_true", help="go ahead even above max_windows_per_run windows (default 5000)"
    )


def add_connection_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--api-flavor", choices=["live", "spec"], help="API shape (default live)")
    parser.add_argument("--base-url", help="API host, overrides --region")
    parser.add_argument("--region", choices=["us", "eu1"], help="FullStory region")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(make_console(), args.verbose)
    with stop_on_signals() as stop:
        try:
            return run_command(args)
        except BaseException:
            if stop.signal is None:
                raise
        print(stop.line(), file=sys.stderr)
        return stop.exit_code


def run_command(args: argparse.Namespace) -> int:
    try:
        return int(args.handler(args))
    except ConfigFieldMissingException as error:
        print(f"error: {missing_config(error)}", file=sys.stderr)
        return 2
    except ConfigurationException as error:  # any other config value dlt could not resolve
        print(f"error: {describe_config_error(error)}", file=sys.stderr)
        return 2
    except (FullStoryError, PipelineStepFailed) as error:
        cause = root_cause(error)
        if not isinstance(cause, FullStoryError):
            raise  # a stop signal (main says it in one line), or a bug: its traceback
        print(f"error: {cause}", file=sys.stderr)
        return 2 if isinstance(cause, ConfigurationError) else 1


if __name__ == "__main__":
    sys.exit(main())
