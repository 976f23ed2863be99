"""create_index: an index release N+1 may need, built online in expand; rollback drops it.

Building it is additive, so it happens before release N+1 starts: PostgreSQL builds it
CONCURRENTLY, MariaDB with ALGORITHM=INPLACE, LOCK=NONE, SQLite (one writer) blocks writers
while it builds. A unique index enforces from expand on, so release N's writes must already be
unique; to make a column unique once release N is gone, use add_unique (contract).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..ddl import CreateIndex, DropIndex, Intent
from ..schema import Schema, column_names
from .base import Op


@dataclass(frozen=True)
class CreateIndexOp(Op):
    table: str
    name: str
    columns: tuple[str, ...]
    unique: bool = False

    def describe(self) -> str:
        return f"create_index {self.name} on {self.table}"

    def validate(self, schema: Schema) -> None:
        schema.require_columns(self.table, self.columns)
        schema.require_new_name(self.table, self.name)

    def expand(self, schema: Schema) -> list[Intent]:
        return [CreateIndex(self.table, self.name, self.columns, self.unique)]

    def rollback(self, schema: Schema) -> list[Intent]:
        return [DropIndex(self.table, self.name)]


def create_index(table: str, name: str, columns: str | Sequence[str], unique: bool = False) -> CreateIndexOp:
    """Create index `name` on `table` (`columns`) in expand, online; rollback drops it."""
    return CreateIndexOp(table, name, column_names(columns, f"create_index {name}"), unique)
