"""`.dlt/config.toml` documents every option of the source, with its real default; the source's
signature and its dlt spec declare the same options with the same defaults."""

from __future__ import annotations

import inspect
import re
import tomllib
from pathlib import Path

import dlt
from dlt.common.configuration.specs.base_configuration import is_secret_hint

from fullstory_source import fullstory_source
from fullstory_source.config_specs import (
    BatchImportsConfiguration,
    ConnectionConfiguration,
    ExportsConfiguration,
    FullStorySourceConfiguration,
    PollingConfiguration,
    RetriesConfiguration,
    WindowsConfiguration,
)
from pipelines.duckdb_memory import DEFAULT_LIMIT

CONFIG = Path(__file__).resolve().parents[1] / ".dlt" / "config.toml"
IN_CODE = {"events", "backfill", "config"}  # objects passed in code, not config values
SECRET = "api_key"


def spec_defaults() -> dict[str, object]:
    spec = FullStorySourceConfiguration()
    return {name: spec[name] for name in FullStorySourceConfiguration.get_resolvable_fields()}


def test_the_signature_declares_exactly_the_specs_options_with_its_defaults() -> None:
    parameters = inspect.signature(inspect.unwrap(fullstory_source)).parameters
    declared = {n: p.default for n, p in parameters.items() if n not in IN_CODE}
    assert declared == {**spec_defaults(), SECRET: dlt.secrets.value}


def test_the_groups_split_the_options_and_only_the_key_is_a_secret() -> None:
    groups = [
        ConnectionConfiguration,
        RetriesConfiguration,
        PollingConfiguration,
        WindowsConfiguration,
        ExportsConfiguration,
        BatchImportsConfiguration,
    ]
    names = [name for group in groups for name in group.get_resolvable_fields()]
    assert sorted(names) == sorted(spec_defaults())  # each option in exactly one group
    hints = FullStorySourceConfiguration.get_resolvable_fields()
    assert [name for name, hint in hints.items() if is_secret_hint(hint)] == [SECRET]


def test_every_option_is_documented_with_a_comment() -> None:
    text = CONFIG.read_text()
    for name in spec_defaults():
        if name == SECRET:
            continue  # secrets.toml, never config.toml
        match = re.search(rf"^(# )?{name} = ", text, re.M)
        assert match, f"{name} is missing from .dlt/config.toml"
        before = text[: match.start()].rstrip().splitlines()[-1]
        assert before.startswith("#"), f"{name} has no comment above it"


def test_set_values_are_the_defaults() -> None:
    values = tomllib.loads(CONFIG.read_text())["sources"]["fullstory"]
    defaults = spec_defaults()
    for name, value in values.items():
        default = defaults[name]
        if name == "export_types":
            default = ["events", "individuals"]  # None in the spec means both
        assert value == default, f"{name}: config.toml says {value!r}, the source defaults to {default!r}"


def test_the_duckdb_memory_cap_of_the_command_is_documented_with_its_default() -> None:
    config = tomllib.loads(CONFIG.read_text())
    assert config["fullstory_pipeline"]["duckdb_memory_limit"] == DEFAULT_LIMIT
