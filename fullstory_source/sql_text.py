"""SQL text for DuckDB statements built from values we do not control (file paths, keys, ids)."""

from __future__ import annotations


def literal(text: str) -> str:
    """`text` as a SQL string literal."""
    return "'" + text.replace("'", "''") + "'"
