"""The scheduled GitHub Actions workflow: it parses, runs on a schedule and by hand without
overlapping runs, gives secrets to dlt under the names dlt reads, installs extras that exist, and
every `fullstory-pipeline` command in it parses with the real command-line parser. Its `run`
command line is then run as a fresh runner would run it (an empty dlt data dir every time): the
second run continues from the cursor that the first one committed to the destination."""

from __future__ import annotations

import json
import os
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import dlt
import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from fullstory_sandbox import Sandbox
from pipelines.fullstory_pipeline import build_parser, main

from .support import API_KEY, DAY1, query

REPO = Path(__file__).resolve().parents[1]
WORKFLOW = REPO / ".github" / "workflows" / "fullstory.yml"


def _private_key_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


# what a repository would hold: fake, but in the formats the secrets take
FAKE_SECRETS = {
    "FULLSTORY_API_KEY": "na1.fake-key",
    "BIGQUERY_CREDENTIALS": json.dumps(
        {
            "type": "service_account",
            "project_id": "acme-analytics",
            "private_key_id": "0123",
            "private_key": "-----BEGIN PRIVATE KEY-----\nnot-a-key\n-----END PRIVATE KEY-----\n",
            "client_email": "fullstory-loader@acme-analytics.iam.gserviceaccount.com",
            "client_id": "1234",
            "token_uri": "https://oauth2.googleapis.com/token",
        }
    ),
    "SNOWFLAKE_ACCOUNT": "acme-xy12345",
    "SNOWFLAKE_USER": "FULLSTORY_LOADER",
    "SNOWFLAKE_PRIVATE_KEY": _private_key_pem(),
}


@pytest.fixture(scope="module")
def workflow() -> dict[Any, Any]:
    return yaml.safe_load(WORKFLOW.read_text())


def evaluate(value: Any, secrets: dict[str, str], variables: dict[str, str], inputs: dict[str, str]) -> str:
    """The `${{ a || 'b' }}` expressions this workflow uses, as GitHub evaluates them."""

    def expression(match: re.Match[str]) -> str:
        for term in match.group(1).split("||"):
            term = term.strip()
            if term.startswith("'") and term.endswith("'"):
                return term[1:-1]
            scope, _, name = term.partition(".")
            found = {"secrets": secrets, "vars": variables, "inputs": inputs}[scope].get(name, "")
            if found:
                return found
        return ""

    return re.sub(r"\$\{\{(.*?)\}\}", expression, str(value))


def environment(
    workflow: dict[Any, Any], job: dict[str, Any], step: dict[str, Any], **scopes: Any
) -> dict[str, str]:
    env: dict[str, str] = {}
    for level in (workflow, job, step):
        for name, value in (level.get("env") or {}).items():
            env[name] = evaluate(
                value, scopes.get("secrets", {}), scopes.get("vars", {}), scopes.get("inputs", {})
            )
    return env


def command_lines(step: dict[str, Any], env: dict[str, str]) -> list[list[str]]:
    """Each `fullstory-pipeline ...` line of a step, split like the shell, variables expanded."""
    script = str(step.get("run", "")).replace("\\\n", " ")
    out = []
    for line in script.splitlines():
        words = shlex.split(line, comments=True)
        if words and words[0] == "fullstory-pipeline":
            out.append([re.sub(r"\$\{?(\w+)\}?", lambda m: env[m.group(1)], w) for w in words])
    return out


def steps(workflow: dict[Any, Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    return [(job, step) for job in workflow["jobs"].values() for step in job["steps"]]


def test_schedule_dispatch_and_no_overlap(workflow: dict[Any, Any]) -> None:
    triggers = workflow.get("on") or workflow[True]  # YAML 1.1 reads a bare `on` as true
    (schedule,) = triggers["schedule"]
    minute, hour, *rest = schedule["cron"].split()
    assert minute.isdigit() and hour == "*" and rest == ["*", "*", "*"]  # hourly
    assert "workflow_dispatch" in triggers
    assert workflow["concurrency"]["cancel-in-progress"] is False
    assert workflow["concurrency"]["group"]
    assert all(job.get("timeout-minutes") for job in workflow["jobs"].values())


def test_secrets_reach_dlt_under_its_own_names(
    workflow: dict[Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    ((job, step),) = [(j, s) for j, s in steps(workflow) if "fullstory-pipeline run" in str(s.get("run"))]
    raw = {**(workflow.get("env") or {}), **(job.get("env") or {}), **(step.get("env") or {})}
    # every credential comes from a secret, never from the file
    assert raw["SOURCES__FULLSTORY__API_KEY"] == "${{ secrets.FULLSTORY_API_KEY }}"
    credentials = [n for n in raw if n.startswith("DESTINATION__") and "CREDENTIALS" in n]
    secret_like = [
        n for n in credentials if n.endswith(("CREDENTIALS", "PRIVATE_KEY", "PASSWORD", "USERNAME", "HOST"))
    ]
    assert secret_like and all(raw[n].startswith("${{ secrets.") for n in secret_like)
    assert "SNOWFLAKE_PRIVATE_KEY" in str(raw)  # key-pair auth
    env = environment(workflow, job, step, secrets=FAKE_SECRETS)
    for name in [n for n in os.environ if n.startswith(("DESTINATION__", "GOOGLE_APPLICATION"))]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    assert dlt.secrets["sources.fullstory.api_key"] == FAKE_SECRETS["FULLSTORY_API_KEY"]
    bigquery = dlt.destinations.bigquery().configuration(None, accept_partial=True)
    assert bigquery.credentials.is_resolved() and bigquery.credentials.project_id == "acme-analytics"
    assert bigquery.credentials.client_email.startswith("fullstory-loader@")
    assert bigquery.location == "US"
    snowflake = dlt.destinations.snowflake().configuration(None, accept_partial=True)
    assert snowflake.credentials.is_resolved()
    params = snowflake.credentials.to_connector_params()  # decodes the key, does not connect
    assert (params["account"], params["user"], params["database"]) == (
        "acme-xy12345",
        "FULLSTORY_LOADER",
        "FULLSTORY",
    )
    assert params["warehouse"] and params["role"] and isinstance(params["private_key"], bytes)
    assert params.get("password") is None


def test_commands_parse_and_extras_exist(workflow: dict[Any, Any]) -> None:
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    commands = []
    installs = []
    for job, step in steps(workflow):
        env = environment(workflow, job, step, secrets=FAKE_SECRETS)
        commands += command_lines(step, env)
        installs += re.findall(r"pip install '?\.\[([\w,]+)\]'?", str(step.get("run", "")))
    destination = workflow["env"]["FULLSTORY_DESTINATION"]
    assert destination in ("bigquery", "snowflake")
    (installed,) = installs
    assert destination in installed.split(",") and set(installed.split(",")) <= set(extras)
    handlers = []
    for words in commands:
        args = build_parser().parse_args(words[1:])
        assert args.destination == destination
        handlers.append(args.handler.__name__)
    assert handlers == ["cmd_run", "cmd_status"]


def test_the_scheduled_command_continues_on_a_fresh_runner(
    workflow: dict[Any, Any],
    live_sandbox: Sandbox,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The workflow's own `run` line, with DuckDB as the destination: each run starts with an
    empty dlt data dir, like a new runner, and the second one exports only the windows after the
    cursor that the first one stored in the destination."""
    ((job, step),) = [(j, s) for j, s in steps(workflow) if "fullstory-pipeline run" in str(s.get("run"))]
    env = environment(workflow, job, step, secrets=FAKE_SECRETS)
    env["FULLSTORY_DESTINATION"] = "duckdb"
    (words,) = command_lines(step, env)
    database = tmp_path / "warehouse.duckdb"
    monkeypatch.setenv("SOURCES__FULLSTORY__API_KEY", API_KEY)
    monkeypatch.setenv("DESTINATION__DUCKDB__CREDENTIALS", str(database))
    monkeypatch.setenv("SOURCES__FULLSTORY__POLL_INTERVAL", "0.01")
    monkeypatch.setenv("SOURCES__FULLSTORY__MAX_CREATES_PER_MINUTE", "60000")
    here = ["--base-url", live_sandbox.base_url, "--segment", "everyone", "--types", "events",
            "--start", "2026-10-01T00:00:00Z"]  # fmt: skip

    def fresh_run(end: str, runner: str) -> None:
        monkeypatch.setenv("DLT_DATA_DIR", str(tmp_path / runner))
        live_sandbox.clear_log()
        assert main([*words[1:], *here, "--end", end]) == 0

    fresh_run("2026-10-01T03:00:00Z", "runner-1")
    assert len(live_sandbox.created_exports()) == 3  # 1h windows
    fresh_run("2026-10-01T05:00:00Z", "runner-2")
    assert sorted(e["timeRange"]["start"] for e in live_sandbox.created_exports()) == [
        "2026-10-01T03:00:00Z",
        "2026-10-01T04:00:00Z",
    ]
    expected = len(live_sandbox.expected_rows("events", "everyone", DAY1, DAY1.replace(hour=5)))
    assert query(database, "SELECT count(*) FROM fullstory.events")[0][0] == expected
    capsys.readouterr()
    monkeypatch.setenv("DLT_DATA_DIR", str(tmp_path / "runner-3"))
    assert main(["status", "--destination", "duckdb"]) == 0
    assert re.search(r"everyone\s+events\s+2026-10-01T05:00:00Z", capsys.readouterr().out)


def test_airflow_dag_module_and_its_per_segment_source(
    live_sandbox: Sandbox, database: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The example DAG imports without Airflow (it then defines no DAG), and what one of its tasks
    runs, the source of one segment, loads only that segment. (Airflow itself is not a test
    dependency: the DAG was run with Airflow 2.10 by hand, see docs/scheduling.md.)"""
    from pipelines import airflow_dag

    assert airflow_dag.dag is None and not hasattr(airflow_dag, "fullstory")
    assert airflow_dag.pipeline_name("power-users") == "fullstory_power_users"
    assert airflow_dag.SCHEDULE.split()[1:] == ["*", "*", "*", "*"]
    monkeypatch.setenv("SOURCES__FULLSTORY__API_KEY", API_KEY)
    monkeypatch.setenv("SOURCES__FULLSTORY__BASE_URL", live_sandbox.base_url)
    monkeypatch.setenv("SOURCES__FULLSTORY__START_DATE", "2026-10-01T00:00:00Z")
    monkeypatch.setenv("SOURCES__FULLSTORY__END_DATE", "2026-10-01T02:00:00Z")
    monkeypatch.setenv("SOURCES__FULLSTORY__POLL_INTERVAL", "0.01")
    bigquery_source = airflow_dag.segment_source("power-users", "bigquery")
    assert bigquery_source.resources["events"].columns["event_start"]["x-bigquery-partition"] is True
    pipeline = dlt.pipeline(
        airflow_dag.pipeline_name("power-users"),
        destination=dlt.destinations.duckdb(str(database)),
        dataset_name="fullstory",
    )
    pipeline.run(airflow_dag.segment_source("power-users", "duckdb"))
    rows = query(database, "SELECT segment_id, count(*) FROM fullstory.events GROUP BY 1")
    expected = len(live_sandbox.expected_rows("events", "power-users", DAY1, DAY1.replace(hour=2)))
    assert rows == [("power-users", expected)]
