"""The analytics models for BigQuery and Snowflake, compiled by their real dbt adapters without a
warehouse: `dbt parse` and `dbt compile --no-introspect` of the shipped project with the
`bigquery` and `snowflake` profiles of `fullstory_analytics/profiles`, dummy credentials, in the
full and the incremental form. The adapters live in their own venv (`make dbt-warehouses-venv`,
.ci/dbt-warehouses-requirements.txt): their pins clash with constraints.txt.

Nothing may connect: every HTTP(S) proxy points at a closed local port, so a client that tried
to reach BigQuery or Snowflake would fail the command. The compiled SQL of every model must parse
with sqlglot in the warehouse's dialect, call only functions that warehouse has (no DuckDB ones
left), read only fully qualified relations of the configured project/database, and carry the
warehouse's own parts (BigQuery: day partitions of session_date replaced by insert_overwrite,
`except`; Snowflake: delete+insert on session_date, `exclude`). This is all the suite knows of
those warehouses: the models have never run against a real one (docs/analytics.md).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tomllib
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import sqlglot
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.tokens import TokenType

REPO = Path(__file__).resolve().parents[1]
PROJECT = REPO / "fullstory_analytics"
LOCK = REPO / ".ci" / "dbt-warehouses-requirements.txt"
MODELS = {path.stem for path in (PROJECT / "models").glob("*.sql")}
INCREMENTAL_MODELS = {"sessions", "page_views"}
WAREHOUSES = ["bigquery", "snowflake"]
FORMS = ["full", "incremental"]
USER_COLUMNS = ["user_plan_str"]  # compiling without a connection cannot read the events' columns
# the BigQuery project / Snowflake database of the dummy credentials below
CATALOG = {"bigquery": "gcp-project-x", "snowflake": "FULLSTORY_DB"}
DATASETS = {"fullstory", "fullstory_analytics"}

# What the compiled SQL may call (a word followed by "("), each one a function or clause of that
# warehouse (BigQuery: cloud.google.com/bigquery/docs/reference/standard-sql/functions-and-operators;
# Snowflake: docs.snowflake.com/en/sql-reference/functions-all). A new one fails here until it is
# checked there and added: DuckDB's epoch_ms, timezone, strftime, list... are in neither.
CALLABLE = {
    "bigquery": {
        "cast", "coalesce", "count", "date", "except", "max", "min", "nullif", "regexp_extract",
        "round", "row_number", "string_agg", "sum", "timestamp_diff",
    },
    "snowflake": {
        "cast", "coalesce", "convert_timezone", "count", "datediff", "exclude", "group", "listagg",
        "max", "min", "nullif", "regexp_substr", "round", "row_number", "sum", "to_date",
    },
}  # fmt: skip
NOT_CALLS = {"as", "in", "from", "join", "over", "on", "and", "or", "not", "exists", "when", "then"}
# the incremental form rebuilds only the session days a load touched (macros/incremental.sql)
DAY_FILTER = "in (select session_date from changed_days)"


def warehouses_venv() -> Path:
    """`make test` creates it and names it in FULLSTORY_DBT_WAREHOUSES_VENV; missing or not the
    pinned one, the test fails."""
    venv = Path(os.environ.get("FULLSTORY_DBT_WAREHOUSES_VENV", REPO / ".venv-dbt-warehouses"))
    fix = "run `make dbt-warehouses-venv` (or `make test`, which creates it)"
    if not (venv / "bin" / "dbt").exists():
        pytest.fail(f"no dbt BigQuery/Snowflake virtualenv at {venv}: {fix}", pytrace=False)
    wanted = dict(line.split("==") for line in LOCK.read_text().splitlines() if line.startswith("dbt-"))
    code = (
        "import importlib.metadata as m, json, sys; "
        "print(json.dumps({n: m.version(n) for n in sys.argv[1:]}))"
    )
    done = subprocess.run(
        [str(venv / "bin" / "python"), "-c", code, *wanted], capture_output=True, text=True, check=False
    )
    installed = json.loads(done.stdout) if done.returncode == 0 else done.stderr.strip()
    if installed != wanted:
        pytest.fail(f"{venv} holds {installed}, {LOCK.name} pins {wanted}: {fix}", pytrace=False)
    return venv


def dummy_key() -> str:
    """dbt-bigquery builds its client, which parses the key, before it compiles: a well-formed
    PEM made here, never a real secret."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return pem.decode()


class Dbt:
    """The warehouse venv's `dbt` on a copy of the shipped project (target/ and logs/ land there,
    not in the repository), one run per (warehouse, command, form: full or incremental, which only
    compile tells apart), cached for the module."""

    def __init__(self, venv: Path, work: Path) -> None:
        self.command = str(venv / "bin" / "dbt")
        self.project = work / "fullstory_analytics"
        shutil.copytree(PROJECT, self.project, ignore=shutil.ignore_patterns("target", "logs", "__pycache__"))
        (work / "home").mkdir()
        closed = "http://127.0.0.1:9"  # the discard port: nothing listens, any connection fails
        self.env = {
            "PATH": f"{venv / 'bin'}:{os.environ['PATH']}",
            "HOME": str(work / "home"),
            "DO_NOT_TRACK": "1",
            **dict.fromkeys(("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"), closed),
            # what `fullstory-pipeline models` passes from the pipeline's dlt credentials
            "DLT__CREDENTIALS__PROJECT_ID": CATALOG["bigquery"],
            "DLT__CREDENTIALS__CLIENT_EMAIL": "loader@gcp-project-x.iam.gserviceaccount.com",
            "DLT__CREDENTIALS__PRIVATE_KEY": dummy_key(),
            "DLT__CREDENTIALS__HOST": "xy12345.eu-west-1",
            "DLT__CREDENTIALS__USERNAME": "loader",
            "DLT__CREDENTIALS__PASSWORD": "not-a-password",
            "DLT__CREDENTIALS__DATABASE": CATALOG["snowflake"],
        }

    @cache  # noqa: B019 - one instance per module
    def manifest(self, warehouse: str, command: str, form: str) -> dict[str, Any]:
        target = self.project / f"target-{warehouse}-{command}-{form}"
        args = [self.command, command, "--project-dir", str(self.project), "--profiles-dir",
                str(self.project / "profiles"), "--profile", warehouse, "--target-path", str(target),
                "--no-version-check", "--no-send-anonymous-usage-stats"]  # fmt: skip
        if command == "compile":
            incremental = form == "incremental"
            variables = {"fullstory_user_columns": USER_COLUMNS, "fullstory_compile_incremental": incremental}
            args += ["--no-introspect", "--no-populate-cache", "--vars", json.dumps(variables)]
        done = subprocess.run(args, env=self.env, capture_output=True, text=True, timeout=600, check=False)
        assert done.returncode == 0, f"dbt {command} {warehouse} {form} failed:\n{done.stdout}\n{done.stderr}"
        manifest: dict[str, Any] = json.loads((target / "manifest.json").read_text())
        return manifest


@pytest.fixture(scope="module")
def dbt(tmp_path_factory: pytest.TempPathFactory) -> Dbt:
    return Dbt(warehouses_venv(), tmp_path_factory.mktemp("dbt-warehouses"))


def models(manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {node["name"]: node for node in manifest["nodes"].values() if node["resource_type"] == "model"}


def calls(sql: str, dialect: str) -> set[str]:
    """The words the SQL follows with "(" outside strings and comments: functions and clauses."""
    tokens = Dialect.get_or_raise(dialect).tokenize(sql)
    return {
        word.text.lower()
        for word, after in zip(tokens, tokens[1:], strict=False)
        if after.token_type == TokenType.L_PAREN
        and word.token_type != TokenType.STRING
        and re.fullmatch(r"[A-Za-z_]\w*", word.text)
        and word.text.lower() not in NOT_CALLS
    }


def relations(tree: exp.Expression) -> set[tuple[str, str, str]]:
    """(catalog, dataset, table) of every relation read that is not a CTE of the query."""
    ctes = {cte.alias for cte in tree.find_all(exp.CTE)}
    return {(t.catalog, t.db, t.name) for t in tree.find_all(exp.Table) if t.db or t.name not in ctes}


@pytest.mark.parametrize("warehouse", WAREHOUSES)
def test_dbt_parse_finds_the_project_in_the_warehouse(dbt: Dbt, warehouse: str) -> None:
    manifest = dbt.manifest(warehouse, "parse", "full")
    assert set(models(manifest)) == MODELS
    assert sum(node["resource_type"] == "test" for node in manifest["nodes"].values()) > 0
    sources = {(s["database"], s["schema"], s["name"]) for s in manifest["sources"].values()}
    assert sources == {(CATALOG[warehouse], "fullstory", t) for t in
                       ("events", "individuals", "segments", "export_runs", "_dlt_loads")}  # fmt: skip
    for name, node in models(manifest).items():
        assert (node["database"], node["schema"]) == (CATALOG[warehouse], "fullstory_analytics"), name


@pytest.mark.parametrize("warehouse", WAREHOUSES)
def test_sessions_and_page_views_are_incremental_by_session_day(dbt: Dbt, warehouse: str) -> None:
    """BigQuery replaces whole day partitions (insert_overwrite needs partition_by); Snowflake
    deletes and inserts the rebuilt days."""
    built = models(dbt.manifest(warehouse, "parse", "full"))
    for name in INCREMENTAL_MODELS:
        config = built[name]["config"]
        assert config["materialized"] == "incremental", name
        if warehouse == "bigquery":
            assert config["incremental_strategy"] == "insert_overwrite", name
            assert config["partition_by"] == {"field": "session_date", "data_type": "date"}, name
        else:
            assert config["incremental_strategy"] == "delete+insert", name
            assert config["unique_key"] == "session_date", name
    assert {name for name, node in built.items() if node["config"]["materialized"] == "incremental"} == (
        INCREMENTAL_MODELS
    )


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("warehouse", WAREHOUSES)
def test_every_model_compiles_to_sql_of_the_warehouse(dbt: Dbt, warehouse: str, form: str) -> None:
    compiled = models(dbt.manifest(warehouse, "compile", form))
    assert set(compiled) == MODELS
    for name, node in compiled.items():
        sql = node["compiled_code"]
        assert node["compiled"] and sql.strip(), name
        trees = sqlglot.parse(sql, read=warehouse, error_level=sqlglot.ErrorLevel.RAISE)
        assert len(trees) == 1 and trees[0] is not None, name
        tree = trees[0]
        unknown = sorted({f.name for f in tree.find_all(exp.Anonymous)})
        assert not unknown, f"{name} ({warehouse}) calls functions sqlglot does not know there: {unknown}"
        extra = calls(sql, warehouse) - CALLABLE[warehouse]
        assert not extra, f"{name} ({warehouse}) calls {sorted(extra)}: not in {warehouse}'s list above"
        read = relations(tree)
        assert read and all(c == CATALOG[warehouse] and d in DATASETS for c, d, _ in read), (name, read)
        # the incremental form reads the model's own rows and rebuilds only the touched days
        reads_itself = (CATALOG[warehouse], "fullstory_analytics", name) in read
        assert reads_itself == (form == "incremental" and name in INCREMENTAL_MODELS), name
        assert (DAY_FILTER in sql) == (form == "incremental" and name in INCREMENTAL_MODELS), name
        if name in INCREMENTAL_MODELS:
            assert "session_date" in tree.named_selects, name  # the partition / delete+insert key
        if name in {"sessions", "users"}:
            assert set(USER_COLUMNS) <= set(tree.named_selects), name


@pytest.mark.parametrize("warehouse", WAREHOUSES)
def test_warehouse_specific_sql(dbt: Dbt, warehouse: str) -> None:
    """The parts of macros/portable.sql that differ, as each warehouse spells them."""
    built = models(dbt.manifest(warehouse, "compile", "full"))
    compiled = {name: node["compiled_code"] for name, node in built.items()}
    star, other = ("except", "exclude") if warehouse == "bigquery" else ("exclude", "except")
    assert re.search(rf"select \* {star} \(segment_id, window_start, window_end,", compiled["events"])
    assert not re.search(rf"\* {other}\b", compiled["events"])
    day = (
        "to_date(convert_timezone('UTC', session_start))"
        if warehouse == "snowflake"
        else "date(session_start)"
    )
    assert f"{day} as session_date" in compiled["sessions"]
    assert f"min({day}) as session_date" in compiled["page_views"]
    if warehouse == "bigquery":
        # a raw string (no escaping) and no third argument: in BigQuery it is a position, not a group
        assert re.search(r"regexp_extract\(url, r'[^']+'\)", compiled["page_views"])
        assert "timestamp_diff(" in compiled["sessions"]
        quoted = f"`{CATALOG['bigquery']}`.`fullstory`.`events`"
        assert quoted in compiled["sessions"]  # the project id has a dash: quoted
    else:
        # the first group, not the whole match: parameters 'e' and 1
        assert re.search(r"regexp_substr\(url, '[^']+', 1, 1, 'e', 1\)", compiled["page_views"])
        assert "listagg(distinct segment_id, ',') within group (order by segment_id)" in compiled["sessions"]
        assert f"{CATALOG['snowflake']}.fullstory.events" in compiled["sessions"]


def test_the_venv_pins_the_adapters_the_extras_name() -> None:
    """pyproject's models-bigquery / models-snowflake extras and the lock of the tested venv agree."""
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    named = {pin for extra in ("models-bigquery", "models-snowflake") for pin in extras[extra]}
    locked = {line for line in LOCK.read_text().splitlines() if line.startswith("dbt-")}
    assert {pin for pin in named if pin.startswith("dbt-")} <= locked
