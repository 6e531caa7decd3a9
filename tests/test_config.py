"""`.dlt/config.toml` documents every option of the source, with its real default."""

from __future__ import annotations

import inspect
import re
import tomllib
from pathlib import Path

from fullstory_source import fullstory_source
from pipelines.duckdb_memory import DEFAULT_LIMIT

CONFIG = Path(__file__).resolve().parents[1] / ".dlt" / "config.toml"
NOT_CONFIG = {"api_key", "events", "backfill"}  # a secret, and two objects passed in code


def source_parameters() -> dict[str, inspect.Parameter]:
    function = inspect.unwrap(fullstory_source)
    return {n: p for n, p in inspect.signature(function).parameters.items() if n not in NOT_CONFIG}


def test_every_option_is_documented_with_a_comment() -> None:
    text = CONFIG.read_text()
    for name in source_parameters():
        match = re.search(rf"^(# )?{name} = ", text, re.M)
        assert match, f"{name} is missing from .dlt/config.toml"
        before = text[: match.start()].rstrip().splitlines()[-1]
        assert before.startswith("#"), f"{name} has no comment above it"


def test_set_values_are_the_defaults() -> None:
    values = tomllib.loads(CONFIG.read_text())["sources"]["fullstory"]
    parameters = source_parameters()
    for name, value in values.items():
        default = parameters[name].default
        if name == "export_types":
            default = ["events", "individuals"]  # None in the signature means both
        assert value == default, f"{name}: config.toml says {value!r}, the source defaults to {default!r}"


def test_the_duckdb_memory_cap_of_the_command_is_documented_with_its_default() -> None:
    config = tomllib.loads(CONFIG.read_text())
    assert config["fullstory_pipeline"]["duckdb_memory_limit"] == DEFAULT_LIMIT
