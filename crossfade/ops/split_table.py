"""split_table: some columns move to a new table keyed by the old primary key (one-to-one).

Release N keeps reading and writing the columns on the old table; release N+1 reads and writes
them on the new one. Triggers on both tables keep each row's values equal (a LinkRule); a row of
the new table exists where release N gave one of the columns a value or release N+1 inserted it.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from ..ddl import REFERENTIAL_ACTIONS, CreateTable, DropColumn, DropTable, Intent, SetNullable
from ..errors import ValidationError
from ..schema import Schema, column_names, plain_default
from ..sync import LinkRule
from .base import Op, Sync, check_not_primary_key, require_new_table, single_key


@dataclass(frozen=True)
class SplitTableOp(Op):
    table: str
    new_table: str
    columns: tuple[str, ...]
    ondelete: str | None = "CASCADE"

    def describe(self) -> str:
        return f"split_table {self.table} ({', '.join(self.columns)}) -> {self.new_table}"

    def tables(self) -> tuple[str, ...]:
        return (self.table, self.new_table)

    def validate(self, schema: Schema) -> None:
        single_key(schema, self.table, self.describe())
        if len(set(self.columns)) != len(self.columns):
            raise ValidationError(f"{self.describe()}: a column is named twice")
        for name in self.columns:
            schema.column(self.table, name)
            check_not_primary_key(schema, self.table, name)
        if self.ondelete is not None and self.ondelete.upper() not in REFERENTIAL_ACTIONS:
            raise ValidationError(f"{self.describe()}: ondelete must be one of {', '.join(REFERENTIAL_ACTIONS)}")
        require_new_table(schema, self.new_table)

    def expand(self, schema: Schema) -> list[Intent]:
        key = single_key(schema, self.table, self.describe())
        source = schema.table(self.table)
        # The new table's columns keep their final form: only release N's inserts (with N's
        # values) and release N+1's (with its own) ever create its rows.
        columns = (sa.Column(key, source.c[key].type, nullable=False),
                   *[_copy(source.c[name]) for name in self.columns])
        ondelete = self.ondelete.upper() if self.ondelete else None
        # Release N+1 inserts the old row before the new one, leaving these NULL in between.
        relax = [SetNullable(self.table, name, True) for name in self.columns if schema.needs_a_value(self.table, name)]
        return [CreateTable(self.new_table, columns, key, self.table, ondelete), *relax]

    def sync(self, schema: Schema) -> Sync:
        key = single_key(schema, self.table, self.describe())
        return Sync(links=(LinkRule(self.table, self.new_table, key, self.columns),))

    def contract(self, schema: Schema) -> list[Intent]:
        return [DropColumn(self.table, name) for name in self.columns]

    def rollback(self, schema: Schema) -> list[Intent]:
        restore = [SetNullable(self.table, name, False) for name in self.columns
                   if schema.has_column(self.table, name) and self._was_required(schema, name)]
        return [DropTable(self.new_table), *restore]

    def dropped_columns(self) -> tuple[str, ...]:
        return self.columns

    def _was_required(self, schema: Schema, name: str) -> bool:
        """Release N's NOT NULL, which expand relaxed: the new table's copy still carries it."""
        if schema.has_column(self.new_table, name):
            column = schema.column(self.new_table, name)
            return not column.nullable and column.server_default is None
        return False


def _copy(column: sa.Column) -> sa.Column:
    return sa.Column(column.name, column.type, nullable=column.nullable, server_default=plain_default(column))


def split_table(table: str, new_table: str, columns, *, ondelete: str | None = "CASCADE") -> SplitTableOp:
    """Move `columns` of `table` to `new_table`, one row per row of `table`, keyed (and
    referenced) by its primary key; both releases read and write them until contract."""
    return SplitTableOp(table, new_table, column_names(columns, "split_table"), ondelete)
