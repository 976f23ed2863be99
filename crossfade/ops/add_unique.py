"""add_unique: a UNIQUE constraint, added in contract (release N may write duplicates until then).

Contract first looks for duplicated values and refuses, naming one, before its first DDL. Then
PostgreSQL builds the unique index CONCURRENTLY and attaches it (ADD CONSTRAINT ... UNIQUE USING
INDEX, instant); MariaDB adds a unique index with ALGORITHM=INPLACE, LOCK=NONE; SQLite creates a
unique index, blocking writers while it builds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..ddl import AddUnique, Intent
from ..schema import Schema, column_names
from .base import Op


@dataclass(frozen=True)
class AddUniqueOp(Op):
    table: str
    name: str
    columns: tuple[str, ...]

    def describe(self) -> str:
        return f"add_unique {self.name} on {self.table}"

    def validate(self, schema: Schema) -> None:
        schema.require_columns(self.table, self.columns)
        schema.require_new_name(self.table, self.name)

    def contract(self, schema: Schema) -> list[Intent]:
        return [AddUnique(self.table, self.name, self.columns)]


def add_unique(table: str, name: str, columns: str | Sequence[str]) -> AddUniqueOp:
    """Make `columns` of `table` unique at contract, as constraint `name`."""
    return AddUniqueOp(table, name, column_names(columns, f"add_unique {name}"))
