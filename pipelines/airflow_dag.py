"""Example Airflow DAG: FullStory -> BigQuery (or Snowflake) every hour, one task per segment.

Copy this file into the DAGs folder of an Airflow 2.5+ deployment that has this package installed
(`pip install 'fullstory-dlt[bigquery]'`, or `[snowflake]`). Configuration is dlt's: environment
variables on the workers (SOURCES__FULLSTORY__API_KEY, DESTINATION__BIGQUERY__CREDENTIALS, ...) or
the Airflow Variable `dlt_secrets_toml` holding the text of a secrets.toml. docs/scheduling.md
explains the choices below.

- dlt's `PipelineTasksGroup` runs each task in a fresh, empty dlt working directory: the pipeline
  state (the cursors) is restored from the destination at the start of every task, as on a fresh
  CI runner, and nothing needs to persist on the workers.
- One pipeline per segment (`fullstory_<segment>`), so each task has its own state, and tasks run
  one after another: dlt's merge goes through one shared staging dataset (`<dataset>_staging`),
  which concurrent loads into the same dataset would overwrite. Each task still runs up to
  `max_concurrent_exports` FullStory exports at once.
- The source is built when the task runs, not when Airflow parses this file.
- A window that fails fails its task (nothing of that segment is loaded by that attempt, no cursor
  moves) and Airflow retries it.

Imported where Airflow is not installed (tests, docs), the module defines no DAG.
"""

from __future__ import annotations

import functools
import os
import re
from datetime import datetime, timedelta

import dlt
from dlt.extract import DltSource

from fullstory_source import fullstory_source
from fullstory_source.warehouses import apply_warehouse_hints

DESTINATION = os.environ.get("FULLSTORY_DESTINATION", "bigquery")
DATASET = os.environ.get("FULLSTORY_DATASET", "fullstory")
# segment ids, as listed by `fullstory-pipeline segments`
SEGMENTS = [s for s in os.environ.get("FULLSTORY_SEGMENTS", "everyone").split(",") if s]
SCHEDULE = "17 * * * *"  # hourly; 1h windows that end 24h ago at most (export_delay)
WINDOW = "1h"
EXPORT_DELAY = "24h"  # FullStory's recommendation: each window exported once, complete


def pipeline_name(segment_id: str) -> str:
    return "fullstory_" + re.sub(r"[^0-9A-Za-z_]+", "_", segment_id)


def segment_source(segment_id: str, destination: str = DESTINATION) -> DltSource:
    """The FullStory source of one segment, with the table design of `destination`."""
    source = fullstory_source(segment_ids=[segment_id], window=WINDOW, export_delay=EXPORT_DELAY)
    return apply_warehouse_hints(source, destination)


try:
    from airflow.decorators import dag
    from dlt.helpers.airflow_helper import PipelineTasksGroup
except ImportError:  # not in Airflow
    dag = None

if dag is not None:

    @dag(
        dag_id="fullstory",
        schedule=SCHEDULE,
        start_date=datetime(2026, 1, 1),
        catchup=False,  # every run exports all windows since the cursors anyway
        max_active_runs=1,  # no overlapping runs
        default_args={"retries": 2, "retry_delay": timedelta(minutes=10)},
    )
    def fullstory() -> None:
        # before any dlt.pipeline(): the group points dlt at a fresh working directory
        tasks = PipelineTasksGroup("fullstory_segments", use_data_folder=False, wipe_local_data=True)
        previous = None
        for segment_id in SEGMENTS:
            pipeline = dlt.pipeline(
                pipeline_name=pipeline_name(segment_id), destination=DESTINATION, dataset_name=DATASET
            )
            # a callable: evaluated when the task runs; the task is named after the pipeline
            (task,) = tasks.add_run(pipeline, functools.partial(segment_source, segment_id), decompose="none")
            if previous is not None:
                previous >> task
            previous = task

    fullstory()
