"""rename_table: release N+1's name is a writable stand-in for the table until contract.

PostgreSQL and MariaDB give the new name a plain view (writable, and inserts through it report
their generated key); SQLite's views cannot report an inserted rowid, so there the stand-in is a
mirror table kept in step by triggers. Contract replaces the stand-in by the table in one atomic
step, so no write sees the name missing.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..ddl import AddStandIn, DropStandIn, Intent, SwapStandIn
from ..schema import Schema
from ..sync import LinkRule
from .base import Op, Sync, require_new_table, single_key


@dataclass(frozen=True)
class RenameTableOp(Op):
    table: str
    new: str

    def describe(self) -> str:
        return f"rename_table {self.table} -> {self.new}"

    def tables(self) -> tuple[str, ...]:
        return (self.table, self.new)

    def exclusive(self) -> bool:
        return True  # the stand-in shows the table's columns as expand found them

    def validate(self, schema: Schema) -> None:
        single_key(schema, self.table, self.describe())
        require_new_table(schema, self.new)

    def expand(self, schema: Schema) -> list[Intent]:
        return [AddStandIn(self.table, self.new)]

    def sync(self, schema: Schema) -> Sync:
        key = single_key(schema, self.table, self.describe())
        # Generated columns compute themselves on both sides (SQLite's mirror keeps their definition).
        columns = tuple(c.name for c in schema.table(self.table).columns if c.name != key and c.computed is None)
        return Sync(links=(LinkRule(self.table, self.new, key, columns, mirror=True),))

    def contract(self, schema: Schema) -> list[Intent]:
        return [SwapStandIn(self.table, self.new)]

    def rollback(self, schema: Schema) -> list[Intent]:
        return [DropStandIn(self.table, self.new)]


def rename_table(table: str, new: str) -> RenameTableOp:
    """Rename `table` to `new`: both names readable and writable until contract."""
    return RenameTableOp(table, new)
