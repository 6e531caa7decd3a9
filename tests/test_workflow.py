"""The GitHub Actions workflows. Both are valid per GitHub's workflow schema (check-jsonschema's
vendored copy, offline), pin every action by commit and keep no git credentials. The scheduled
one runs on a schedule and by hand without overlapping runs, gives secrets only to the steps that
need them and under the names dlt reads, installs extras that exist, and every
`fullstory-pipeline` command in it parses with the real command-line parser. Its `run` command
line is then run as a fresh runner would run it (an empty dlt data dir every time): the second
run continues from the cursor that the first one committed to the destination, also when the
destination is the DuckDB file that the workflow carries in the Actions cache. The release
workflow checks the tag against the version, builds, twine-checks and smoke-tests the wheel,
and publishes with PyPI trusted publishing."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
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
WORKFLOWS = REPO / ".github" / "workflows"
WORKFLOW = WORKFLOWS / "fullstory.yml"
RELEASE = WORKFLOWS / "release.yml"


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
    "MOTHERDUCK_TOKEN": "fake-motherduck-token",
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
    # (the DuckDB "credentials" are the path of the file the cache carries)
    credentials = [
        n for n in raw if n.startswith("DESTINATION__") and "CREDENTIALS" in n and "DUCKDB__" not in n
    ]
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
    motherduck = dlt.destinations.motherduck().configuration(None, accept_partial=True)
    assert motherduck.credentials.is_resolved()
    assert (motherduck.credentials.database, motherduck.credentials.password) == (
        "fullstory",
        FAKE_SECRETS["MOTHERDUCK_TOKEN"],
    )


def test_commands_parse_and_extras_exist(workflow: dict[Any, Any]) -> None:
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    commands = []
    installs = []
    for job, step in steps(workflow):
        env = environment(workflow, job, step, secrets=FAKE_SECRETS)
        commands += command_lines(step, env)
        installs += re.findall(r"pip install -c constraints.txt '?\.\[([\w,]+)\]'?", str(step.get("run", "")))
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
    # the status report runs after a failed load too, without marking that failure a second time
    (status,) = [s for _, s in steps(workflow) if "fullstory-pipeline status" in str(s.get("run"))]
    assert status["if"] == "always()" and status["continue-on-error"] is True


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


def test_the_duckdb_file_carried_by_the_cache_continues_on_a_fresh_runner(
    workflow: dict[Any, Any], live_sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Destination duckdb: each runner starts in an empty checkout; the cache steps restore the
    newest saved file before the run and save it after, at the path the run loads into."""
    job = workflow["jobs"]["load"]
    by_name = {step.get("name"): step for step in job["steps"]}
    restore, save = by_name["Restore the DuckDB file"], by_name["Save the DuckDB file"]
    run_step = by_name["Load new windows"]
    path = job["env"]["DESTINATION__DUCKDB__CREDENTIALS"]
    assert not Path(path).is_absolute()  # in the checkout, where the cache steps look
    assert restore["uses"].startswith("actions/cache/restore@") and save["uses"].startswith(
        "actions/cache/save@"
    )
    assert restore["with"]["path"] == save["with"]["path"] == path
    assert restore["with"]["key"] == save["with"]["key"]  # a new entry per run ...
    assert save["with"]["key"].startswith(restore["with"]["restore-keys"])  # ... restored by prefix
    for step in (restore, save):
        assert "env.FULLSTORY_DESTINATION == 'duckdb'" in step["if"]
    assert "always()" in save["if"]  # also after a run with failed windows
    env = environment(workflow, job, run_step, secrets=FAKE_SECRETS)
    env.update(FULLSTORY_DESTINATION="duckdb", SOURCES__FULLSTORY__API_KEY=API_KEY)
    env.update(SOURCES__FULLSTORY__POLL_INTERVAL="0.01", SOURCES__FULLSTORY__MAX_CREATES_PER_MINUTE="60000")
    (words,) = command_lines(run_step, env)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    cache = tmp_path / "cache"
    cache.mkdir()
    here = ["--base-url", live_sandbox.base_url, "--segment", "everyone", "--types", "events",
            "--start", "2026-10-01T00:00:00Z"]  # fmt: skip

    def runner(number: int, end: str) -> Path:
        checkout = tmp_path / f"runner-{number}"
        checkout.mkdir()
        monkeypatch.chdir(checkout)
        monkeypatch.setenv("DLT_DATA_DIR", str(checkout / "dlt"))
        saved = sorted(cache.iterdir())
        if saved:  # restore: the newest entry
            shutil.copy(saved[-1], checkout / path)
        live_sandbox.clear_log()
        assert main([*words[1:], *here, "--end", end]) == 0
        shutil.copy(checkout / path, cache / f"{number:03d}")  # save
        return checkout / path

    runner(1, "2026-10-01T03:00:00Z")
    assert len(live_sandbox.created_exports()) == 3
    database = runner(2, "2026-10-01T05:00:00Z")
    assert sorted(e["timeRange"]["start"] for e in live_sandbox.created_exports()) == [
        "2026-10-01T03:00:00Z",
        "2026-10-01T04:00:00Z",
    ]
    expected = len(live_sandbox.expected_rows("events", "everyone", DAY1, DAY1.replace(hour=5)))
    assert query(database, "SELECT count(*) FROM fullstory.events")[0][0] == expected


def all_workflows() -> dict[str, dict[Any, Any]]:
    return {p.name: yaml.safe_load(p.read_text()) for p in sorted(WORKFLOWS.glob("*.yml"))}


def test_workflows_are_valid_github_workflows() -> None:
    """GitHub's workflow schema as check-jsonschema vendors it: no network."""
    files = sorted(str(p) for p in WORKFLOWS.glob("*.y*ml"))
    assert [Path(f).name for f in files] == ["fullstory.yml", "release.yml"]
    checker = Path(sys.executable).with_name("check-jsonschema")
    done = subprocess.run(
        [str(checker), "--builtin-schema", "vendor.github-workflows", *files],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_actions_are_pinned_by_commit_and_checkouts_keep_no_credentials() -> None:
    for name, flow in all_workflows().items():
        for job in flow["jobs"].values():
            for step in job["steps"]:
                if "uses" not in step:
                    continue
                assert re.fullmatch(r"[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40}", step["uses"]), (name, step)
                if step["uses"].startswith("actions/checkout@"):
                    assert step["with"]["persist-credentials"] is False, name
        assert flow["permissions"] == {"contents": "read"}, name  # jobs widen it only where needed


def test_secrets_reach_only_the_steps_that_use_them(workflow: dict[Any, Any]) -> None:
    """Not the workflow or job env (every step would get them), not `pip install` (a package's
    build could read them), and the FullStory key only the step that calls FullStory."""
    for name, flow in all_workflows().items():
        assert "secrets." not in json.dumps(flow.get("env") or {}), name
        for job in flow["jobs"].values():
            assert "secrets." not in json.dumps(job.get("env") or {}), name
            for step in job["steps"]:
                if "pip install" in str(step.get("run")) or "uses" in step:
                    assert "secrets." not in json.dumps(step), (name, step)
    with_key = [s["name"] for _, s in steps(workflow) if "FULLSTORY_API_KEY" in json.dumps(s)]
    assert with_key == ["Load new windows"]


def test_release_builds_checks_and_publishes_on_a_version_tag() -> None:
    release = all_workflows()["release.yml"]
    triggers = release.get("on") or release[True]
    assert triggers["push"]["tags"] == ["v*"] and set(triggers) == {"push"}
    build, publish = release["jobs"]["build"], release["jobs"]["publish"]
    script = "\n".join(str(s.get("run", "")) for s in build["steps"])
    for command in ("python -m build", "twine check --strict dist/*", 'fullstory-pipeline" demo'):
        assert command in script
    assert "GITHUB_REF_NAME" in script and "CHANGELOG.md" in script  # tag == version, dated entry
    # publish: only after the build, from the built files, by PyPI trusted publishing (no token)
    assert publish["needs"] == "build" and publish["permissions"] == {"id-token": "write"}
    assert publish["environment"]["name"] == "pypi"
    uses = [s["uses"].split("@")[0] for s in publish["steps"]]
    assert uses == ["actions/download-artifact", "pypa/gh-action-pypi-publish"]
    assert "secrets." not in json.dumps(release)
