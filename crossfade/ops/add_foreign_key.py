"""add_foreign_key: a foreign key, added in contract (release N may write orphans until then).

Contract first looks for rows referencing nothing and refuses, naming one, before its first DDL.
Then PostgreSQL adds the key NOT VALID (instant) and VALIDATEs it (a scan that blocks no write);
MariaDB adds it INPLACE with foreign_key_checks=0 and crossfade validates the rows right after;
SQLite rebuilds the table (and enforces the key only on connections with PRAGMA foreign_keys=ON).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..ddl import REFERENTIAL_ACTIONS, AddForeignKey, Intent
from ..errors import ValidationError
from ..schema import Schema, column_names
from .base import Op


@dataclass(frozen=True)
class AddForeignKeyOp(Op):
    table: str
    name: str
    columns: tuple[str, ...]
    ref_table: str
    ref_columns: tuple[str, ...]
    ondelete: str | None = None
    onupdate: str | None = None

    def describe(self) -> str:
        return f"add_foreign_key {self.name} on {self.table} -> {self.ref_table}"

    def validate(self, schema: Schema) -> None:
        schema.require_columns(self.table, self.columns)
        schema.require_new_name(self.table, self.name)
        if len(self.columns) != len(self.ref_columns):
            raise ValidationError(f"add_foreign_key {self.name}: {len(self.columns)} column(s) cannot reference "
                                  f"{len(self.ref_columns)}")
        # The referenced table is in the snapshot when a plan has release N's metadata; against a
        # live database contract checks it before its first DDL.
        if schema.has_table(self.ref_table):
            schema.require_columns(self.ref_table, self.ref_columns)

    def contract(self, schema: Schema) -> list[Intent]:
        return [AddForeignKey(self.table, self.name, self.columns, self.ref_table, self.ref_columns,
                              self.ondelete, self.onupdate)]


def add_foreign_key(table: str, name: str, columns: str | Sequence[str], ref_table: str,
                    ref_columns: str | Sequence[str], ondelete: str | None = None,
                    onupdate: str | None = None) -> AddForeignKeyOp:
    """Make `table.columns` reference `ref_table.ref_columns` at contract, as constraint `name`.
    `ondelete`, `onupdate`: CASCADE, SET NULL, SET DEFAULT, RESTRICT or NO ACTION, in any case
    (default: the database's)."""
    what = f"add_foreign_key {name}"
    return AddForeignKeyOp(table, name, column_names(columns, what), ref_table, column_names(ref_columns, what),
                           _action(what, "ondelete", ondelete), _action(what, "onupdate", onupdate))


def _action(what: str, option: str, value: str | None) -> str | None:
    """A referential action in the form the SQL takes, or a one-line error naming the option."""
    if value is None:
        return None
    if not isinstance(value, str) or value.upper() not in REFERENTIAL_ACTIONS:
        raise ValidationError(f"{what}: {option} must be one of {', '.join(REFERENTIAL_ACTIONS)}, not {value!r}")
    return value.upper()
