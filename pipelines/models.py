"""`fullstory-pipeline models`: build the analytics models (sessions, users, page views, daily
activity, funnels; docs/analytics.md) with dbt, into the destination the pipeline loaded, with the
same credentials.

dbt runs in a child process (its logging and global state stay out of ours) with the project
shipped in `fullstory_analytics/`, a profile per destination, and the pipeline's destination
credentials passed as DLT__CREDENTIALS__* variables, the names dlt's own dbt runner uses.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import dlt

from fullstory_analytics import PROFILES_DIR, PROJECT_DIR
from fullstory_source import ConfigurationError

MODELS_DATASET = "fullstory_analytics"
_ADAPTERS = {
    "duckdb": "dbt.adapters.duckdb",
    "bigquery": "dbt.adapters.bigquery",
    "snowflake": "dbt.adapters.snowflake",
}
_EXTRAS = {"duckdb": "models", "bigquery": "models-bigquery", "snowflake": "models-snowflake"}
# environment variables a child process must not see (the FullStory key has nothing to do in dbt)
_PRIVATE_ENV = ("SOURCES__FULLSTORY__API_KEY",)


def add_models_parser(commands: Any, add_pipeline_args: Any) -> None:
    models = commands.add_parser(
        "models", help="build the analytics models (sessions, users, page views...) with dbt"
    )
    add_pipeline_args(models)
    models.add_argument(
        "--models-dataset",
        default=MODELS_DATASET,
        help=f"dataset the models go to (default {MODELS_DATASET})",
    )
    models.add_argument("--full-refresh", action="store_true", help="rebuild the incremental models whole")
    models.add_argument(
        "--vars", help='dbt vars as JSON, e.g. \'{"fullstory_org_id": "o-1A2B3C-na1"}\' (replay links)'
    )
    models.set_defaults(handler=cmd_models)


def cmd_models(args: argparse.Namespace) -> int:
    from .fullstory_pipeline import make_pipeline  # the command's own pipeline: same names, same checks

    dbt_vars = parse_vars(args.vars)
    pipeline = make_pipeline(args)
    destination = pipeline.destination.destination_type.rsplit(".", 1)[-1]
    if destination not in _ADAPTERS:
        raise ConfigurationError(
            f"models are built for duckdb, bigquery or snowflake, not {destination!r}; "
            "pass --destination duckdb|bigquery|snowflake"
        )
    if not installed(_ADAPTERS[destination]):
        raise ConfigurationError(
            f"dbt's {destination} adapter is not installed: "
            f"pip install 'fullstory-dlt[{_EXTRAS[destination]}]'"
        )
    require_loaded_tables(pipeline)
    config = pipeline.destination_client().config
    env = dbt_environment(config, Path(pipeline.working_dir) / "dbt")
    dbt_vars = {
        "source_dataset_name": pipeline.dataset_name,
        "destination_dataset_name": args.models_dataset,
        **dbt_vars,
    }
    command = ["build", "--vars", json.dumps(dbt_vars)] + (["--full-refresh"] if args.full_refresh else [])
    code = run_dbt(command, profile_name(destination, config), env)
    if code != 0:
        print(f"dbt build failed (exit {code}); its output above says which model or test", file=sys.stderr)
        return 1
    if destination == "duckdb":
        print_sessions(Path(config.credentials.database), args.models_dataset)
    print(f"\nModels built in dataset '{args.models_dataset}' of {destination}: see docs/analytics.md")
    return 0


def installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # not even dbt itself
        return False


def parse_vars(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError as error:
        raise ConfigurationError(
            f'--vars is not JSON ({error}); pass e.g. \'{{"fullstory_org_id": "o-1"}}\''
        ) from None
    if not isinstance(value, dict):
        raise ConfigurationError("--vars must be a JSON object of dbt vars")
    return value


def require_loaded_tables(pipeline: dlt.Pipeline) -> None:
    """The models read `events` and `export_runs`: say so plainly when nothing was loaded yet."""
    try:
        with pipeline.sql_client() as client:
            for table in ("events", "export_runs"):
                client.execute_sql(f"SELECT 1 FROM {client.make_qualified_table_name(table)} WHERE 1 = 0")
    except Exception:  # noqa: BLE001 - any failure here means the same thing to the user
        raise ConfigurationError(
            f"dataset '{pipeline.dataset_name}' of pipeline '{pipeline.pipeline_name}' has no loaded "
            "FullStory events yet; run `fullstory-pipeline run` first (or pass the --pipeline-name, "
            "--dataset-name and --destination it loaded with)"
        ) from None


def profile_name(destination: str, config: Any) -> str:
    """The profile in fullstory_analytics/profiles/profiles.yml for these credentials."""
    credentials = config.credentials
    if destination == "bigquery" and getattr(credentials, "has_default_credentials", lambda: False)():
        return "bigquery_default"
    if destination == "snowflake" and getattr(credentials, "private_key", None):
        return "snowflake_pkey"
    return destination


def dbt_environment(config: Any, work_dir: Path) -> dict[str, str]:
    """The child's environment: ours, less secrets it has no use for, plus the destination's
    credentials and where dbt may write (never into the installed project)."""
    env = {name: value for name, value in os.environ.items() if name not in _PRIVATE_ENV}
    for name, value in dict(config.credentials).items():
        if value is not None and isinstance(value, str | int | float | bool):
            env[f"DLT__CREDENTIALS__{name.upper()}"] = str(value)
    if getattr(config, "location", None):
        env["DLT__LOCATION"] = str(config.location)
    work_dir.mkdir(parents=True, exist_ok=True)
    env.update(
        {
            "DBT_TARGET_PATH": str(work_dir / "target"),
            "DBT_LOG_PATH": str(work_dir / "logs"),
            "DBT_PACKAGES_INSTALL_PATH": str(work_dir / "dbt_packages"),
            "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",  # no calls home: CI and users may be offline
            "DBT_VERSION_CHECK": "false",
        }
    )
    return env


def run_dbt(command: list[str], profile: str, env: dict[str, str]) -> int:
    args = [
        sys.executable,
        "-c",
        "import sys; from dbt.cli.main import cli; sys.exit(cli())",
        *command,
        "--project-dir",
        str(PROJECT_DIR),
        "--profiles-dir",
        str(PROFILES_DIR),
        "--profile",
        profile,
    ]
    return subprocess.run(args, env=env, check=False).returncode


def print_sessions(database: Path, dataset: str) -> None:
    import duckdb

    with duckdb.connect(str(database), read_only=True) as con:
        print("\nA few sessions:")
        print(
            con.sql(
                "SELECT indv_id, started_at, round(duration_seconds) AS seconds, page_views, events, "
                f"rage_clicks, entry_url, exit_url, browser, segments FROM {dataset}.sessions "
                "ORDER BY events DESC, session_key LIMIT 5"
            )
        )
