"""Example Airflow DAG: every run loads exactly its data interval, one task group per segment.

Copy this file into the DAGs folder of an Airflow 2.11 deployment (the version the tests run it
under) that has this package installed (`pip install 'fullstory-dlt[bigquery]'`, or
`[snowflake]`). Configuration is dlt's: environment variables on the workers
(SOURCES__FULLSTORY__API_KEY, DESTINATION__BIGQUERY__CREDENTIALS, ...) or the Airflow Variable
`dlt_secrets_toml` holding the text of a secrets.toml. docs/scheduling.md explains the choices.

- The run of the data interval [start, end) exports exactly the 1h windows of [start, end)
  (the source's backfill mode), never "whatever is new by the clock". So Airflow's own tools are
  the backfill and the retry: `airflow dags backfill` re-exports past intervals, clearing a task
  re-exports its interval for its segment, and a failed try is retried by Airflow. Loading a
  window replaces exactly that window's rows, so running an interval twice duplicates nothing.
- A run first waits (sensor, reschedule mode) until `export_delay` after its interval ended:
  FullStory still adds events to recent time spans.
- One dlt Airflow task group (`PipelineTasksGroup`) per segment, each with its own pipeline
  (`fullstory_<segment>`), chained one after another: dlt's merge goes through one shared staging
  dataset (`<dataset>_staging`), which concurrent loads into the same dataset would overwrite.
  Each task still runs up to `max_concurrent_exports` FullStory exports at once.
- Every task starts with empty dlt state (no restore from the destination): the interval, not a
  cursor, says what to export, and state that is never read is not carried from run to run.
- The source is built when the task runs, not when Airflow parses this file.

Imported where Airflow is not installed (tests, docs), the module defines no DAG.
"""

from __future__ import annotations

import functools
import os
import re
from datetime import UTC, datetime, timedelta

import dlt
from dlt.extract import DltSource

from fullstory_source import Backfill, ConfigurationError, duckdb_destination, fullstory_source
from fullstory_source.warehouses import apply_warehouse_hints

DESTINATION = os.environ.get("FULLSTORY_DESTINATION", "bigquery")
DATASET = os.environ.get("FULLSTORY_DATASET", "fullstory")
# segment ids, as listed by `fullstory-pipeline segments`
SEGMENTS = [s for s in os.environ.get("FULLSTORY_SEGMENTS", "everyone").split(",") if s]
# the first data interval; Airflow runs every interval from here on (catchup)
START_DATE = datetime.fromisoformat(
    os.environ.get("FULLSTORY_START_DATE", "2026-11-01T00:00:00Z").replace("Z", "+00:00")
)
# Data intervals must lie on the window grid: hourly intervals [HH:00, HH+1:00) of 1h windows.
# A daily schedule with 1h windows works too (24 windows per run).
SCHEDULE = "@hourly"
WINDOW = timedelta(hours=1)
# the source's default: FullStory recommends waiting 24 h before exporting a time span, values
# settle late (docs/fullstory-api.md, "Time windows")
EXPORT_DELAY = timedelta(hours=24)


def pipeline_name(segment_id: str) -> str:
    return "fullstory_" + re.sub(r"[^0-9A-Za-z_]+", "_", segment_id)


def check_interval(start: datetime, end: datetime, now: datetime) -> None:
    """An interval the DAG can export exactly: whole windows, and old enough."""
    grid = [t for t in (start, end) if (t - datetime(1970, 1, 1, tzinfo=UTC)) % WINDOW]
    if start >= end or grid:
        raise ConfigurationError(
            f"data interval [{start.isoformat()}, {end.isoformat()}) is not a whole number of "
            f"{WINDOW} windows of the UTC grid: give the DAG a schedule whose intervals start and "
            "end on it (@hourly for 1h windows)"
        )
    if end > now - EXPORT_DELAY:
        raise RuntimeError(
            f"data interval [{start.isoformat()}, {end.isoformat()}) is not ready before "
            f"{(end + EXPORT_DELAY).isoformat()} (export delay {EXPORT_DELAY}); FullStory may still "
            "add events to it"
        )


def interval_source(
    segment_id: str, start: datetime, end: datetime, destination: str = DESTINATION
) -> DltSource:
    """The FullStory source that exports exactly the windows of [start, end) of one segment,
    with the table design of `destination`. `force`: a cleared task exports its interval again
    even where dlt state says it was done."""
    check_interval(start, end, datetime.now(UTC))
    source = fullstory_source(
        segment_ids=[segment_id],
        window=f"{int(WINDOW.total_seconds())}s",
        backfill=Backfill(start, end, force=True),
    )
    return apply_warehouse_hints(source, destination)


def _utc(moment: datetime) -> datetime:
    # Airflow hands out pendulum datetimes; the source wants plain UTC ones
    return datetime.fromtimestamp(moment.timestamp(), UTC)


def data_interval_source(segment_id: str) -> DltSource:
    """What a segment's task runs: the source of the task's own data interval."""
    start, end = airflow_get_execution_dates()
    if start is None or end is None:
        raise RuntimeError("no data interval in the Airflow task context")
    return interval_source(segment_id, _utc(start), _utc(end))


try:
    from airflow.decorators import dag
    from dlt.helpers.airflow_helper import PipelineTasksGroup, airflow_get_execution_dates

    try:
        from airflow.sensors.time_delta import TimeDeltaSensor
    except ImportError:  # Airflow 3
        from airflow.providers.standard.sensors.time_delta import TimeDeltaSensor
except ImportError:  # not in Airflow
    dag = None

if dag is not None:

    @dag(
        dag_id="fullstory",
        schedule=SCHEDULE,
        start_date=START_DATE,
        catchup=True,  # every interval is exported once, also those the scheduler missed
        max_active_runs=1,  # loads into one dataset must not overlap (shared staging tables)
        default_args={"retries": 2, "retry_delay": timedelta(minutes=10)},
    )
    def fullstory() -> None:
        previous = TimeDeltaSensor(
            task_id="wait_for_export_delay", delta=EXPORT_DELAY, mode="reschedule", poke_interval=600
        )
        for segment_id in SEGMENTS:
            # before its dlt.pipeline(): the group points dlt at a fresh working directory
            group = PipelineTasksGroup(
                "segment_" + pipeline_name(segment_id).removeprefix("fullstory_"),
                use_data_folder=False,
                wipe_local_data=True,
            )
            pipeline = dlt.pipeline(
                pipeline_name=pipeline_name(segment_id),
                destination=duckdb_destination.for_command(DESTINATION),  # as the command loads
                dataset_name=DATASET,
            )
            pipeline.config.restore_from_destination = False
            # a callable: evaluated when the task runs; the task is named after the pipeline
            group.add_run(pipeline, functools.partial(data_interval_source, segment_id), decompose="none")
            previous >> group
            previous = group

    fullstory()
