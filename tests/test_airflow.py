"""The example DAG under real Airflow (2.11, in its own virtualenv, `make airflow-venv`), against
the sandbox, into a DuckDB file: Airflow's own `dags backfill` runs two consecutive hourly data
intervals, each exporting exactly its windows; after FullStory received late events, clearing one
segment's task of the first interval and running the backfill again re-exports exactly that
(segment, interval) and replaces its rows."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dlt
import pytest

from fullstory_sandbox import Sandbox
from fullstory_sandbox.data import LateData
from fullstory_source import ConfigurationError
from fullstory_source.windows import format_time

from .support import API_KEY, DAY1, expected_multiset, loaded_multiset, query

REPO = Path(__file__).resolve().parents[1]
HOUR = timedelta(hours=1)
SEGMENTS = ["everyone", "power-users"]


def airflow_venv() -> Path:
    """`make test` creates it and names it in FULLSTORY_AIRFLOW_VENV; missing, the test fails."""
    venv = Path(os.environ.get("FULLSTORY_AIRFLOW_VENV", REPO / ".venv-airflow"))
    if not (venv / "bin" / "airflow").exists():
        pytest.fail(
            f"no Airflow virtualenv at {venv}: run `make airflow-venv` (or `make test`, which creates it)",
            pytrace=False,
        )
    return venv


@pytest.fixture
def late_sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    with Sandbox(api_key=API_KEY, flavor="live", events_per_hour=30, workdir=str(tmp_path / "sb")) as sb:
        sb.late_data = LateData(fraction=0.3, age=timedelta(hours=3))  # 30% of events arrive 3 h late
        yield sb


class Airflow:
    """The `airflow` command of the Airflow venv, with its own home, database and DAGs folder
    (holding a copy of the example DAG, as a user deploys it)."""

    def __init__(self, venv: Path, home: Path, env: dict[str, str]) -> None:
        self.command = str(venv / "bin" / "airflow")
        dags = home / "dags"
        dags.mkdir(parents=True)
        shutil.copy(REPO / "pipelines" / "airflow_dag.py", dags / "fullstory_dag.py")
        self.env = {
            "PATH": f"{venv / 'bin'}:{os.environ['PATH']}",
            "HOME": str(home),
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "SequentialExecutor",
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
            "DLT_DATA_DIR": str(home / "dlt"),
            **env,
        }

    def __call__(self, *args: str) -> str:
        done = subprocess.run(
            [self.command, *args], env=self.env, capture_output=True, text=True, timeout=600, check=False
        )
        assert done.returncode == 0, f"airflow {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
        return done.stdout


def test_each_run_exports_exactly_its_data_interval(late_sandbox: Sandbox, tmp_path: Path) -> None:
    venv = airflow_venv()
    database = tmp_path / "warehouse.duckdb"
    airflow = Airflow(
        venv,
        tmp_path / "airflow",
        {
            "FULLSTORY_DESTINATION": "duckdb",
            "FULLSTORY_SEGMENTS": ",".join(SEGMENTS),
            "FULLSTORY_START_DATE": format_time(DAY1),
            "DESTINATION__DUCKDB__CREDENTIALS": str(database),
            "SOURCES__FULLSTORY__API_KEY": API_KEY,
            "SOURCES__FULLSTORY__BASE_URL": late_sandbox.base_url,
            "SOURCES__FULLSTORY__EXPORT_TYPES": '["events"]',
            "SOURCES__FULLSTORY__POLL_INTERVAL": "0.02",
            "SOURCES__FULLSTORY__MAX_CREATES_PER_MINUTE": "60000",
        },
    )
    airflow("db", "migrate")
    first, second = DAY1, DAY1 + HOUR  # data intervals [00:00, 01:00) and [01:00, 02:00)

    def exports() -> list[tuple[str, str, str]]:
        bodies = late_sandbox.created_exports()
        return sorted((b["segmentId"], b["timeRange"]["start"], b["timeRange"]["end"]) for b in bodies)

    def loaded(segment: str, start) -> object:
        where = (
            f"segment_id = '{segment}' AND event_start >= '{start.isoformat()}' "
            f"AND event_start < '{(start + HOUR).isoformat()}'"
        )
        return loaded_multiset(database, "events", where)

    def visible(segment: str, start, as_of) -> object:
        rows = late_sandbox.expected_rows("events", segment, start, start + HOUR, as_of=as_of)
        return expected_multiset(
            rows, {"segment_id": segment, "window_start": start, "window_end": start + HOUR}
        )

    # 02:00: both intervals are exported; FullStory has 70% of their events so far
    late_sandbox.clock = early = DAY1 + 2 * HOUR
    airflow("dags", "backfill", "fullstory", "-s", first.isoformat(), "-e", second.isoformat())
    assert exports() == sorted(
        (s, format_time(t), format_time(t + HOUR)) for s in SEGMENTS for t in (first, second)
    )
    for segment in SEGMENTS:
        for start in (first, second):
            assert loaded(segment, start) == visible(segment, start, early)
    total = query(database, "SELECT count(*) FROM fullstory.events")[0][0]
    assert total == sum(len(late_sandbox.expected_rows("events", s, first, second + HOUR, as_of=early))
                        for s in SEGMENTS)  # fmt: skip
    assert total < sum(len(late_sandbox.expected_rows("events", s, first, second + HOUR)) for s in SEGMENTS)

    # 06:00: every event has arrived. Clear the first interval's task of one segment and let
    # Airflow run it again: only that (segment, interval) is exported again and replaced.
    late_sandbox.clock = DAY1 + 6 * HOUR
    late_sandbox.clear_log()
    airflow("tasks", "clear", "fullstory", "-s", first.isoformat(), "-e", first.isoformat(),
            "-t", "segment_everyone", "-y")  # fmt: skip
    airflow("dags", "backfill", "fullstory", "-s", first.isoformat(), "-e", first.isoformat())
    assert exports() == [("everyone", format_time(first), format_time(first + HOUR))]
    assert loaded("everyone", first) == visible("everyone", first, None)  # complete now, no duplicates
    assert loaded("power-users", first) == visible("power-users", first, early)  # untouched
    for segment in SEGMENTS:
        assert loaded(segment, second) == visible(segment, second, early)
    # nothing outside the two intervals
    outside = query(
        database,
        f"SELECT count(*) FROM fullstory.events WHERE event_start < '{first.isoformat()}' "
        f"OR event_start >= '{(second + HOUR).isoformat()}'",
    )
    assert outside == [(0,)]


def test_the_dag_module_without_airflow(
    live_sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Imported without Airflow the module defines no DAG; what a task runs, the source of one
    segment and one data interval, loads exactly that interval of that segment, and intervals
    the DAG cannot export exactly are refused with one clear line."""
    from pipelines import airflow_dag

    assert airflow_dag.dag is None and not hasattr(airflow_dag, "fullstory")
    assert airflow_dag.pipeline_name("power-users") == "fullstory_power_users"
    monkeypatch.setenv("SOURCES__FULLSTORY__API_KEY", API_KEY)
    monkeypatch.setenv("SOURCES__FULLSTORY__BASE_URL", live_sandbox.base_url)
    monkeypatch.setenv("SOURCES__FULLSTORY__POLL_INTERVAL", "0.01")
    end = DAY1 + 2 * HOUR
    bigquery_source = airflow_dag.interval_source("power-users", DAY1, end, "bigquery")
    assert bigquery_source.resources["events"].columns["event_start"]["x-bigquery-partition"] is True
    with pytest.raises(ConfigurationError, match=r"not a whole number of 1:00:00 windows"):
        airflow_dag.interval_source("everyone", DAY1 + HOUR / 2, end, "duckdb")
    with pytest.raises(RuntimeError, match=r"not ready before .* \(export delay 1 day, 0:00:00\)"):
        recent = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        airflow_dag.interval_source("everyone", recent - HOUR, recent, "duckdb")

    database = tmp_path / "warehouse.duckdb"
    pipeline = dlt.pipeline(
        airflow_dag.pipeline_name("power-users"),
        destination=dlt.destinations.duckdb(str(database)),
        dataset_name="fullstory",
    )
    pipeline.run(airflow_dag.interval_source("power-users", DAY1, end, "duckdb"))
    rows = query(database, "SELECT segment_id, count(*) FROM fullstory.events GROUP BY 1")
    expected = len(live_sandbox.expected_rows("events", "power-users", DAY1, end))
    assert rows == [("power-users", expected)]
    starts = [e["timeRange"]["start"] for e in live_sandbox.created_exports() if e["type"] == "TYPE_EVENT"]
    assert sorted(starts) == [format_time(DAY1), format_time(DAY1 + HOUR)]


def test_the_airflow_lock_keeps_the_package_pins() -> None:
    """Every `==` pin of pyproject.toml's dependencies is the same in the Airflow venv's lock."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pins = dict(re.findall(r"^([\w-]+)(?:\[[\w,]+\])?==(\S+)$", "\n".join(project["dependencies"]), re.M))
    locked = dict(
        re.findall(r"^([\w.-]+)==(\S+)$", (REPO / ".ci" / "airflow-requirements.txt").read_text(), re.M)
    )
    assert pins and {name: locked.get(name) for name in pins} == pins


def test_airflow_venv_runs_this_checkout() -> None:
    """The Airflow venv imports the source from this checkout (installed editable), with the
    dlt that pyproject.toml pins."""
    venv = airflow_venv()
    code = "import dlt, fullstory_source; print(dlt.__version__); print(fullstory_source.__file__)"
    out = subprocess.run(
        [str(venv / "bin" / "python"), "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    pinned = re.search(r'"dlt\[duckdb\]==([^"]+)"', (REPO / "pyproject.toml").read_text())
    assert pinned and out == [pinned.group(1), str(REPO / "fullstory_source" / "__init__.py")]
