"""add_column: a new column, filled from existing columns (or its server default) while both run."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import sqlalchemy as sa

from ..ddl import AddColumn, DropColumn, Intent
from ..errors import NotNullWithoutFillError
from ..schema import Schema
from ..sync import RowColumns, SyncGroup, call_transform, row, row_namespace
from .base import Op, Sync, default_expr, final_constraints, require_new_column, transitional


@dataclass(frozen=True)
class AddColumnOp(Op):
    table: str
    column: sa.Column
    backfill: Callable[[SimpleNamespace], Any] | None = None

    def describe(self) -> str:
        return f"add_column {self.table}.{self.column.name}"

    def validate(self, schema: Schema) -> None:
        require_new_column(schema, self.table, self.column.name)
        fillable = self.backfill is not None or self.column.server_default is not None
        if not self.column.nullable and not fillable:
            raise NotNullWithoutFillError(
                self.table, self.column.name,
                "release N inserts rows without it; give backfill=... or a server_default",
            )
        if self.backfill is not None:
            self._sources(schema)

    def expand(self, schema: Schema) -> list[Intent]:
        return [AddColumn(self.table, transitional(self.table, self.column))]

    def sync(self, schema: Schema) -> Sync:
        if self.backfill is not None:
            sources = self._sources(schema)
            return Sync(groups=(SyncGroup(self.table, sources, (self.column.name,), self._up(sources)),))
        if self.column.server_default is not None:
            constant = default_expr(self.column)
            return Sync(groups=(SyncGroup(self.table, (), (self.column.name,), lambda: constant),))
        return Sync()

    def contract(self, schema: Schema) -> list[Intent]:
        return final_constraints(self.table, self.column)

    def rollback(self, schema: Schema) -> list[Intent]:
        return [DropColumn(self.table, self.column.name)]

    def added_columns(self) -> tuple[str, ...]:
        return (self.column.name,)

    def _sources(self, schema: Schema) -> tuple[str, ...]:
        """The existing columns the backfill reads: found by walking the expression it returns."""
        probe = row(schema.table(self.table), "NEW")
        expr = self._call_backfill(row_namespace(probe, self.table))
        if not isinstance(expr, sa.sql.ClauseElement):
            return ()
        names = {c.name for c in sa.sql.visitors.iterate(expr) if isinstance(c, sa.ColumnClause)
                 and getattr(c, "table", None) is probe}
        return tuple(c.name for c in schema.table(self.table).columns if c.name in names)

    def _up(self, sources: tuple[str, ...]):
        def up(*columns):
            return self._call_backfill(RowColumns(self.table, dict(zip(sources, columns))))
        return up

    def _call_backfill(self, row_columns: RowColumns):
        return call_transform(self.backfill, [row_columns], "backfill", self.table, (self.column.name,))


def add_column(table: str, column: sa.Column, *, backfill: Callable | None = None) -> AddColumnOp:
    """Add `column` to `table`; `backfill(row)` computes it from the row's existing columns."""
    return AddColumnOp(table, column, backfill)
