"""Text of an export value -> its typed value, in SQL, without ever changing a value.

The readers take every value as its text (a JSON number as written, a CSV cell) and convert it
here. DuckDB's own conversions would change values silently: a typed JSON read rounds 12.7 into
an integer column to 13 and 1.9 to 2, and turns "yes" into true; `CAST('12.7' AS BIGINT)` rounds
as well. So:
- integers: digits only, or a decimal that is exactly whole (`3.0`, `1e3`, below 2**53 so that
  the double holding it is exact); a fraction is no integer;
- booleans: `true` / `false` only;
- doubles, timestamps: whatever DuckDB parses as one (RFC 3339 with any offset, read as UTC);
- lists: a JSON array, each element converted as above.
A value that does not fit is NULL, and counted (`misfit_sql`): the reader reports how many, by
field, and never fails a window over it.
"""

from __future__ import annotations

from .fields import BIGINT, BOOLEAN, DOUBLE, JSON, TIMESTAMP, VARCHAR

_EXACT_DOUBLE = 2**53  # above it a double no longer holds every whole number


def typed_sql(text: str, sql_type: str, *, empty_is_null: bool) -> str:
    """SQL turning `text` (a VARCHAR expression; JSON for lists and objects) into `sql_type`.
    `empty_is_null`: for text fields, whether "" means "no value"."""
    if sql_type.endswith("[]"):
        element = sql_type[:-2]
        items = _array_items(text)
        if element == VARCHAR:
            return items
        return f"list_transform({items}, lambda x: {scalar_sql('x', element)})"
    if sql_type == JSON:
        return f"CAST({text} AS VARCHAR)"
    if sql_type == VARCHAR:
        return f"NULLIF({text}, '')" if empty_is_null else text
    return scalar_sql(text, sql_type)


def scalar_sql(text: str, sql_type: str) -> str:
    if sql_type == BIGINT:
        as_double = f"TRY_CAST({text} AS DOUBLE)"
        return (
            f"CASE WHEN contains({text}, '.') OR contains({text}, 'e') OR contains({text}, 'E') THEN "
            f"CASE WHEN {as_double} = trunc({as_double}) AND abs({as_double}) < {_EXACT_DOUBLE} "
            f"THEN CAST({as_double} AS BIGINT) END "
            f"ELSE TRY_CAST({text} AS BIGINT) END"
        )
    if sql_type == BOOLEAN:
        return f"CASE {text} WHEN 'true' THEN true WHEN 'false' THEN false END"
    if sql_type in (DOUBLE, TIMESTAMP):
        return f"TRY_CAST({text} AS {sql_type})"
    raise ValueError(f"no conversion to {sql_type}")


def misfit_sql(text: str, sql_type: str, typed: str) -> str | None:
    """SQL that is true when `text` held a value that `typed` could not keep; None when every
    value fits (text)."""
    if sql_type in (VARCHAR, JSON):
        return None
    if sql_type.endswith("[]"):
        items = _array_items(text)
        return f"({text} IS NOT NULL AND ({typed} IS NULL OR list_count({typed}) < list_count({items})))"
    return f"({text} IS NOT NULL AND {typed} IS NULL)"


def _array_items(text: str) -> str:
    """The elements of a JSON array as text (NULL when `text` is no JSON array)."""
    return (
        f"CASE WHEN json_valid({text}) AND json_type({text}) = 'ARRAY' "
        f"THEN from_json({text}, '[\"VARCHAR\"]') END"
    )
