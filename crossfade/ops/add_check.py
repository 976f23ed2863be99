"""add_check: a CHECK constraint, added in contract (release N may write failing rows until then).

`condition(row)` receives the row's columns as attributes, like add_column's backfill, and
returns a SQLAlchemy boolean expression: `lambda row: row.size >= 0`. Contract first looks for
rows it is false for and refuses, naming one, before its first DDL. Then PostgreSQL adds it NOT
VALID (instant) and VALIDATEs it (a scan that blocks no write); MariaDB has no online form and
copies the table (ALGORITHM=COPY, LOCK=SHARED: writes wait for the copy); SQLite rebuilds it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from ..ddl import AddCheck, Intent
from ..errors import UnknownColumnError, ValidationError
from ..schema import Schema
from ..sync import call_transform
from .base import Op


@dataclass(frozen=True)
class AddCheckOp(Op):
    table: str
    name: str
    condition: Callable[[Any], Any]

    def describe(self) -> str:
        return f"add_check {self.name} on {self.table}"

    def validate(self, schema: Schema) -> None:
        schema.require_new_name(self.table, self.name)
        self._expression(schema)

    def contract(self, schema: Schema) -> list[Intent]:
        return [AddCheck(self.table, self.name, self._expression(schema))]

    def _expression(self, schema: Schema) -> sa.ColumnElement:
        expr = call_transform(self.condition, [_Row(self.table, schema.table(self.table))],
                              f"check condition {self.name}", self.table, ())
        if not isinstance(expr, sa.ColumnElement):
            raise ValidationError(f"add_check {self.name} on {self.table}: the condition must return a "
                                  f"SQLAlchemy boolean expression, not {expr!r}")
        return expr


class _Row:
    """The row's columns, unqualified (`size`, not `images.size`), as a CHECK names them."""

    def __init__(self, table: str, columns: sa.Table):
        self._table = table
        self._columns = {c.name: sa.column(c.name, c.type) for c in columns.columns}

    def __getattr__(self, name: str) -> sa.ColumnClause:
        if name.startswith("__"):
            raise AttributeError(name)
        try:
            return self._columns[name]
        except KeyError:
            raise UnknownColumnError(self._table, name) from None


def add_check(table: str, name: str, condition: Callable[[Any], Any]) -> AddCheckOp:
    """Add CHECK constraint `name` to `table` at contract; `condition(row)` is its expression."""
    if not callable(condition):
        raise ValidationError(f"add_check {name}: condition must be a callable receiving the row's columns")
    return AddCheckOp(table, name, condition)
