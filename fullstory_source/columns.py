"""Which columns an export becomes: the name each field loads under and its type.

- Types: the field catalog (fields.py) by name; for a field it does not know, a JSON export's
  own value types decide (numbers stay numbers), and CSV, which has no types, gives text.
- Names: dlt snake_cases column names, so two export fields can land on one column
  (`evt_Coupon_str` and `evt_coupon_str`, `evt_a.b_str` and `evt_a_b_str`), and an export field
  can land on a column the source owns (`segment_id`, `window_start`, `window_end`,
  `event_bucket`, dlt's `_dlt_...`). Export data never overwrites one of ours and no field
  overwrites another: the later one loads under `export_<its name>` (and the reader warns).
- Empty text: FullStory writes every one of its own fields in every row and "" where a field has
  no value (hauser's test export: `"PageIp":""`, `"UserEmail":""`), so "" in FullStory's own
  text fields loads as NULL. A custom `_str` variable keeps "" in JSON (absent variables have no
  key at all, so "" is a value the customer set); CSV cannot tell "" from a missing value: NULL.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from dlt.common.normalizers.naming.snake_case import NamingConvention

from .fields import BIGINT, BOOLEAN, DOUBLE, JSON, VARCHAR, declared_type, is_custom_variable

# Columns the source adds to every row after the reader (tables.py), besides the constants
OWN_COLUMNS = ("event_bucket",)
RENAME_PREFIX = "export_"
_naming = NamingConvention()


@dataclass(frozen=True)
class Column:
    field: str  # the key (JSON) or header (CSV) in the export
    name: str  # the column it loads as
    sql_type: str  # its type in the Arrow batches (fields.py spelling)

    @property
    def renamed(self) -> bool:
        return self.field != self.name

    @property
    def empty_is_null(self) -> bool:
        return not is_custom_variable(self.field)


def normalized(name: str) -> str:
    """The column name dlt gives `name` (its default snake_case naming)."""
    return _naming.normalize_identifier(name)


def plan(
    fields: Sequence[str], value_types: dict[str, set[str]] | None, reserved: Iterable[str]
) -> list[Column]:
    """The columns of `fields`, in their order. `value_types`: JSON value types seen per field
    not in the catalog (json_type spellings); None for CSV."""
    taken = {normalized(name) for name in (*reserved, *OWN_COLUMNS)}
    columns = []
    for field in fields:
        name = field
        while normalized(name) in taken or normalized(name).startswith("_dlt"):
            name = RENAME_PREFIX + name
        taken.add(normalized(name))
        sql_type = declared_type(field) or _undeclared_type((value_types or {}).get(field, set()))
        columns.append(Column(field, name, sql_type))
    return columns


def _undeclared_type(seen: set[str]) -> str:
    """A field the catalog does not know: JSON numbers load as numbers, true/false as booleans,
    arrays/objects as JSON text, anything else (or a mix) as text."""
    seen = seen - {"NULL"}
    if not seen:
        return VARCHAR
    if seen <= {"BIGINT", "UBIGINT"}:
        return BIGINT
    if seen <= {"BIGINT", "UBIGINT", "DOUBLE"}:
        return DOUBLE
    if seen == {"BOOLEAN"}:
        return BOOLEAN
    if seen <= {"ARRAY", "OBJECT"}:
        return JSON
    return VARCHAR


def read_type(column: Column) -> str:
    """How the JSON reader hands a field over: its text, or its JSON for lists and objects."""
    return JSON if column.sql_type == JSON or column.sql_type.endswith("[]") else VARCHAR
