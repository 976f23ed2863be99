"""drop_column: release N+1 stops writing the column; contract drops it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..ddl import DropColumn, Intent, SetNullable
from ..errors import NotNullWithoutFillError
from ..schema import Schema
from ..sync import FillRule
from .base import Op, Sync, check_not_primary_key


@dataclass(frozen=True)
class DropColumnOp(Op):
    table: str
    column: str
    fill: Callable[..., Any] | Any = None
    relax: bool = False  # expand makes the column nullable (release N+1 leaves it NULL); rollback restores it

    def describe(self) -> str:
        return f"drop_column {self.table}.{self.column}"

    def validate(self, schema: Schema) -> None:
        check_not_primary_key(schema, self.table, self.column)
        if schema.needs_a_value(self.table, self.column) and self.fill is None and not self.relax:
            raise NotNullWithoutFillError(
                self.table, self.column,
                "release N+1 inserts rows without it; give fill=... (what release N reads for them) or relax=True",
            )

    def expand(self, schema: Schema) -> list[Intent]:
        if self.relax and not schema.column(self.table, self.column).nullable:
            return [SetNullable(self.table, self.column, True)]
        return []

    def rollback(self, schema: Schema) -> list[Intent]:
        # Release N's NOT NULL again; refused (with the rows named) where release N+1 left NULLs.
        return [SetNullable(self.table, self.column, False)] if self.relax else []

    def sync(self, schema: Schema) -> Sync:
        if self.fill is None:
            return Sync()
        fill = self.fill if callable(self.fill) else (lambda _row, value=self.fill: value)
        return Sync(fills=(FillRule(self.table, self.column, fill),))

    def contract(self, schema: Schema) -> list[Intent]:
        return [DropColumn(self.table, self.column)]

    def dropped_columns(self) -> tuple[str, ...]:
        return (self.column,)


def drop_column(table: str, column: str, *, fill: Callable | Any = None, relax: bool = False) -> DropColumnOp:
    """Drop `table.column` at contract. `fill(row)` (or a constant) fills it for rows release N+1
    inserts, when the column is NOT NULL without a server default; or `relax=True` makes it
    nullable at expand (Keystone's credential.blob), and rollback makes it NOT NULL again."""
    return DropColumnOp(table, column, fill, relax)
