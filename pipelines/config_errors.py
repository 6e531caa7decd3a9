"""dlt's configuration errors as the one line the command prints (exit code 2).

dlt raises these before any of our code runs, while it resolves the source's arguments from
config.toml, secrets.toml and environment variables: a value that cannot be read as its type
(`SOURCES__FULLSTORY__SEGMENT_IDS=everyone` instead of a JSON list), a required value missing.
The value itself is never printed: it may be a secret."""

from __future__ import annotations

from dlt.common.configuration.exceptions import (
    ConfigFieldMissingException,
    ConfigurationException,
    ConfigValueCannotBeCoercedException,
)

_EXAMPLES = {list: '\'["everyone", "power-users"]\'', dict: '\'{"start": "...", "end": "..."}\''}


def describe_config_error(error: ConfigurationException) -> str:
    if isinstance(error, ConfigValueCannotBeCoercedException):
        name = error.field_name
        kind = getattr(error.hint, "__origin__", error.hint)
        kind_name = getattr(kind, "__name__", str(kind))
        example = f", e.g. {_EXAMPLES[kind]}" if kind in _EXAMPLES else ""
        return (
            f"config value {name} (SOURCES__FULLSTORY__{name.upper()} or [sources.fullstory] {name}) "
            f"cannot be read as a {kind_name}; write it as JSON{example}"
        )
    if isinstance(error, ConfigFieldMissingException):
        names = ", ".join(error.fields)
        upper = ", ".join(f"SOURCES__FULLSTORY__{n.upper()}" for n in error.fields)
        return f"missing config value(s) {names}: set {upper} or put them in .dlt/secrets.toml"
    return str(error).strip().splitlines()[0]
