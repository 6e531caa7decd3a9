"""The dlt resources of the source: `segments`, one export resource per export type, and
`export_runs` (runs.py).

An export resource plans its windows from its resource state (plans.py), runs their
`WindowExport`s in the shared pool, and as each one finishes: yields its rows, moves the cursor,
and hands a run record to `export_runs`. A failed window follows the error policy: "raise" stops
the extract (nothing of this run is loaded), "record" records it as failed, keeps its cursor
before it, and goes on with the other windows.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import dlt
from dlt.sources import DltResource

from .errors import ConfigurationError
from .exports import ExportJob
from .lifecycle import WindowExport
from .plans import WindowPlan, most_windows_per_segment
from .readers import read_export
from .registry import EXPORT_TYPES
from .run import ExportRun
from .runs import run_record
from .warehouses import apply_table_design
from .windows import duration_text

logger = logging.getLogger(__name__)


def segments_resource(run: ExportRun) -> DltResource:
    @dlt.resource(name="segments", write_disposition="merge", primary_key="id")
    def segments() -> Iterator[list[dict[str, Any]]]:
        yield from run.segment_pages()

    return segments


def export_resource(export_type: str, run: ExportRun) -> DltResource:
    resource = dlt.resource(
        export_windows, name=export_type, parallelized=True, **EXPORT_TYPES[export_type].table_hints
    )
    return resource(export_type, run)


def export_windows(export_type: str, run: ExportRun) -> Iterator[Any]:
    started = run.start()
    try:
        allow_columns_to_differ_between_windows()
        apply_table_design(dlt.current.resource(), dlt.current.pipeline().destination)
        state = dlt.current.resource_state()
        # the extract that committed last: its windows are done (journal entries dropped); the
        # state with this run's id is committed together with this run's rows, or not at all
        started.services.journal.forget_committed(export_type, state.get("extract_id"))
        state["extract_id"] = started.services.extract_id
        _refuse_too_many_windows(export_type, state, run, started.newest)
        plan = WindowPlan(
            export_type,
            state,
            run.config.windows,
            run.segment_ids(),
            started.newest,
            run.backfill,
        )
        load_id = dlt.current.load_package_state()["load_id"]
        work = (WindowExport(job, started.services, load_id) for job in plan.jobs())  # as the pool asks
        for export in started.pool.run(WindowExport.fetch, work):
            started.services.stop.check()  # stopping: record nothing, load nothing of this run
            yield from _finish(export, plan, run)
    finally:
        run.producer_done()


def _refuse_too_many_windows(export_type: str, state: dict[str, Any], run: ExportRun, newest: Any) -> None:
    limit = run.config.exports.max_windows
    if not limit:
        return
    windows = run.config.windows
    most = most_windows_per_segment(
        state.get("cursors", {}), windows, run.segment_ids(), newest, run.backfill
    )
    if most > limit:
        raise ConfigurationError(
            f"this run would export {most:,} {duration_text(windows.window)} {export_type} windows for one "
            "segment, "
            f"more than max_windows_per_run={limit:,}: check --start and --window, or pass --yes "
            "(SOURCES__FULLSTORY__MAX_WINDOWS_PER_RUN=0) to go ahead"
        )


def _finish(export: WindowExport, plan: WindowPlan, run: ExportRun) -> Iterator[Any]:
    kind = plan.kind(export.job)
    if export.error is not None:
        outcome = export.outcome(kind)
        if run.config.exports.on_window_error == "raise":
            raise export.error
        # recorded (the outcome's error): a display shows it once, in full
        logger.info("window failed: %s", export.error)
        _record(export, run, outcome)
        return
    yield from export.rows(read_export, export.load_id)
    delta = plan.finished(export.job, export.rows_read)
    export.extracted()
    _log_extracted(export.job, kind, export.rows_read, delta)
    _record(export, run, export.outcome(kind, delta))


def _record(export: WindowExport, run: ExportRun, outcome: Any) -> None:
    run.start().run_log.add(run_record(outcome, export.operation_id, run.backfill_id))


def _log_extracted(job: ExportJob, kind: str, rows: int, delta: int | None) -> None:
    since = "" if delta is None else f", {delta:+d} since last load"
    logger.info("extracted %s (%s): %d rows%s", job, kind, rows, since)


def allow_columns_to_differ_between_windows() -> None:
    """Windows of one run can carry different columns: a custom variable present in one window
    only, which dlt then fills in the others with nulls typed from its schema (text for a list
    column). dlt's Arrow writer must then put such batches in separate files instead of failing
    the extract; its "default" promotion does that and never alters data. Set when the extract
    starts, unless the user configured `data_writer.arrow_concat_promote_options` themselves."""
    if dlt.config.get("data_writer.arrow_concat_promote_options") is None:
        dlt.config["data_writer.arrow_concat_promote_options"] = "default"
