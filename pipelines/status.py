"""`fullstory-pipeline status`: where every cursor stands, how the last runs went, and any
backfill that has not finished."""

from __future__ import annotations

from typing import Any

import dlt
from dlt.common.destination.exceptions import DestinationUndefinedEntity

from fullstory_source.plans import backfill_progress
from fullstory_source.registry import EXPORT_TYPES
from fullstory_source.runs import RUNS_TABLE


def resource_states(pipeline: dlt.Pipeline) -> dict[str, Any]:
    resources = pipeline.state.get("sources", {}).get("fullstory", {}).get("resources", {})
    return {name: resources[name] for name in EXPORT_TYPES if name in resources}


def last_runs(pipeline: dlt.Pipeline) -> dict[tuple[str, str], tuple[Any, ...]]:
    """The newest export_runs row per (segment, export type), from the destination."""
    query = """
        SELECT segment_id, export_type, start_at, end_at, status, total_records_count, error, finished_at
        FROM (
            SELECT *, row_number() OVER (
                PARTITION BY segment_id, export_type ORDER BY last_updated_at DESC, end_at DESC
            ) AS newest
            FROM {table}
        ) WHERE newest = 1
    """
    return {(row[0], row[1]): tuple(row) for row in _runs_query(pipeline, query)}


def failed_in_last_run(pipeline: dlt.Pipeline) -> list[tuple[Any, ...]]:
    """The windows that failed in the newest load that wrote run records. Windows of one run
    finish in any order, so the newest row per segment can be a success while another window
    of the same run failed: look at the whole load."""
    query = """
        SELECT segment_id, export_type, start_at, end_at, error FROM {table}
        WHERE status = 'Failed' AND _dlt_load_id = (SELECT max(_dlt_load_id) FROM {table})
        ORDER BY segment_id, export_type, start_at
    """
    return _runs_query(pipeline, query)


def _runs_query(pipeline: dlt.Pipeline, query: str) -> list[tuple[Any, ...]]:
    try:
        with pipeline.sql_client() as client:
            table = client.make_qualified_table_name(RUNS_TABLE)
            with client.execute_query(query.format(table=table)) as cursor:
                return [tuple(row) for row in cursor.fetchall()]
    except DestinationUndefinedEntity:  # nothing loaded yet (covers a missing table too)
        return []


def status_lines(pipeline: dlt.Pipeline) -> tuple[list[str], bool]:
    """The report, and whether the last run had failed windows."""
    states = resource_states(pipeline)
    runs = last_runs(pipeline)
    lines = [f"pipeline {pipeline.pipeline_name}, dataset {pipeline.dataset_name}"]
    keys = sorted({(s, t) for t, state in states.items() for s in state.get("cursors", {})} | set(runs))
    if not keys:
        lines.append("  no windows loaded yet")
    lines.append(f"  {'segment':<28} {'type':<12} {'cursor':<21} last run")
    for segment, export_type in keys:
        cursor = states.get(export_type, {}).get("cursors", {}).get(segment, "(none)")
        run = runs.get((segment, export_type))
        outcome = "-"
        if run:
            _, _, start, end, status, rows, error, _ = run
            outcome = f"{status} [{start:%Y-%m-%dT%H:%MZ}, {end:%Y-%m-%dT%H:%MZ}) {rows or 0:,} rows"
            if error:
                outcome += f": {error[:120]}"
        lines.append(f"  {segment:<28} {export_type:<12} {cursor:<21} {outcome}")
    backfills = backfill_progress(states)
    if backfills:
        lines.append("backfills")
        for progress in backfills:
            state = "Completed" if progress.complete else "Running (re-run the same command to resume)"
            lines.append(
                f"  {progress.start} .. {progress.end}: {progress.finished_runs}/{progress.total_runs} "
                f"windows ({progress.percent:.1f}%), {state}"
            )
    failed = failed_in_last_run(pipeline)
    if failed:
        lines.append(f"the last run had {len(failed)} failed window(s); the next run retries them:")
        for segment, export_type, start, end, error in failed:
            window = f"[{start:%Y-%m-%dT%H:%MZ}, {end:%Y-%m-%dT%H:%MZ})"
            lines.append(f"  FAILED segment {segment!r}, {export_type}, {window}: {error}")
    return lines, bool(failed)
