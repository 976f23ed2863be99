"""replace_column: a type or representation change, with `up` and `down` between the two forms."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from ..ddl import AddColumn, DropColumn, Intent
from ..schema import Schema
from ..sync import SyncGroup, Transform
from .base import Op, Sync, check_not_primary_key, final_constraints, require_new_column, transitional


@dataclass(frozen=True)
class ReplaceColumnOp(Op):
    table: str
    old: str
    column: sa.Column
    up: Transform
    down: Transform

    def describe(self) -> str:
        return f"replace_column {self.table}.{self.old} -> {self.column.name}"

    def validate(self, schema: Schema) -> None:
        schema.column(self.table, self.old)
        check_not_primary_key(schema, self.table, self.old)
        require_new_column(schema, self.table, self.column.name)

    def expand(self, schema: Schema) -> list[Intent]:
        return [AddColumn(self.table, transitional(self.column))]

    def sync(self, schema: Schema) -> Sync:
        group = SyncGroup(self.table, (self.old,), (self.column.name,), self.up, self.down)
        return Sync(groups=(group,))

    def contract(self, schema: Schema) -> list[Intent]:
        return [DropColumn(self.table, self.old), *final_constraints(self.table, self.column)]

    def rollback(self, schema: Schema) -> list[Intent]:
        return [DropColumn(self.table, self.column.name)]

    def added_columns(self) -> tuple[str, ...]:
        return (self.column.name,)

    def dropped_columns(self) -> tuple[str, ...]:
        return (self.old,)


def replace_column(table: str, old: str, column: sa.Column, *, up: Transform, down: Transform) -> ReplaceColumnOp:
    """Replace `table.old` by `column`; `up(old) -> new` and `down(new) -> old` must round-trip."""
    return ReplaceColumnOp(table, old, column, up, down)
