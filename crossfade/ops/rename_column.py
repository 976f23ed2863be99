"""rename_column: the new name is a synced copy until contract drops the old one."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from ..ddl import AddColumn, DropColumn, Intent
from ..schema import Schema, plain_default
from ..sync import SyncGroup
from .base import Op, Sync, check_not_primary_key, final_constraints, require_new_column, transitional


def _identity(value):
    return value


@dataclass(frozen=True)
class RenameColumnOp(Op):
    table: str
    old: str
    new: str

    def describe(self) -> str:
        return f"rename_column {self.table}.{self.old} -> {self.new}"

    def validate(self, schema: Schema) -> None:
        schema.column(self.table, self.old)
        check_not_primary_key(schema, self.table, self.old)
        require_new_column(schema, self.table, self.new)

    def expand(self, schema: Schema) -> list[Intent]:
        return [AddColumn(self.table, transitional(self.table, self._renamed(schema)))]

    def sync(self, schema: Schema) -> Sync:
        return Sync(groups=(SyncGroup(self.table, (self.old,), (self.new,), _identity, _identity),))

    def contract(self, schema: Schema) -> list[Intent]:
        return [DropColumn(self.table, self.old), *final_constraints(self.table, self._renamed(schema))]

    def rollback(self, schema: Schema) -> list[Intent]:
        return [DropColumn(self.table, self.new)]

    def added_columns(self) -> tuple[str, ...]:
        return (self.new,)

    def final_columns(self, schema: Schema) -> tuple[sa.Column, ...]:
        return (self._renamed(schema),)

    def dropped_columns(self) -> tuple[str, ...]:
        return (self.old,)

    def _renamed(self, schema: Schema) -> sa.Column:
        old = schema.column(self.table, self.old)
        default = plain_default(old)
        return sa.Column(self.new, old.type, nullable=old.nullable, server_default=default)


def rename_column(table: str, old: str, new: str) -> RenameColumnOp:
    """Rename `table.old` to `new`: both names readable and writable until contract."""
    return RenameColumnOp(table, old, new)
