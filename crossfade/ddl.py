"""DDL intents: what an op wants done to the schema, before any dialect says how.

Ops return these; a dialect turns each into one or more `Step`s (SQL plus a check that tells
whether the step already happened, which makes every phase safe to rerun).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa


@dataclass(frozen=True)
class AddColumn:
    table: str
    column: sa.Column  # added nullable and without server default during the transition

    def describe(self) -> str:
        return f"add column {self.table}.{self.column.name}"


@dataclass(frozen=True)
class DropColumn:
    table: str
    column: str

    def describe(self) -> str:
        return f"drop column {self.table}.{self.column}"


@dataclass(frozen=True)
class SetNullable:
    table: str
    column: str
    nullable: bool

    def describe(self) -> str:
        what = "allow NULL in" if self.nullable else "set NOT NULL on"
        return f"{what} {self.table}.{self.column}"


@dataclass(frozen=True)
class SetDefault:
    table: str
    column: str
    default: Any  # a server default (str or SQL text), or None to drop it

    def describe(self) -> str:
        return f"set default of {self.table}.{self.column}"


Intent = AddColumn | DropColumn | SetNullable | SetDefault


@dataclass
class Step:
    """One unit of work a phase checkpoints: SQL statements plus an 'already done?' probe."""

    name: str
    sql: list[str]
    is_done: Callable[[sa.Connection], bool] | None = None
    # Statements run one per transaction (PostgreSQL's online NOT NULL needs that), or together.
    one_transaction: bool = True
    # The table a SQLite rebuild replaces: it runs with foreign keys off (DROP TABLE would
    # cascade) and keeps the table's triggers.
    rebuild: str | None = None
    extra: dict = field(default_factory=dict)


def apply_to_schema(schema, intent: Intent) -> None:
    """Simulate an intent on a Schema snapshot (for plans made without a database)."""
    if isinstance(intent, AddColumn):
        schema.add_column(intent.table, intent.column)
    elif isinstance(intent, DropColumn):
        schema.drop_column(intent.table, intent.column)
    elif isinstance(intent, SetNullable):
        schema.set_nullable(intent.table, intent.column, intent.nullable)
    elif isinstance(intent, SetDefault):
        schema.set_default(intent.table, intent.column, intent.default)
