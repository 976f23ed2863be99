"""The shape every operation shares (after pgroll's Start/Complete/Rollback/Validate).

An op is a small dataclass holding what the user wrote. It describes intent only:
`validate` checks it against the release-N schema, `expand` / `contract` / `rollback` return DDL
intents, and `sync` returns the sync groups and fill rules that the triggers and the backfill
enforce. Dialects turn all of these into SQL.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from ..ddl import AddColumn, DropColumn, Intent, SetDefault, SetNullable
from ..errors import ColumnExistsError, GeneratedColumnError, PrimaryKeyColumnError, TableExistsError, ValidationError
from ..schema import Schema, plain_default
from ..sync import BlockRule, FillRule, LinkRule, MoveRule, SyncGroup, Transform


@dataclass(frozen=True)
class Sync:
    groups: tuple[SyncGroup, ...] = ()
    fills: tuple[FillRule, ...] = ()
    blocks: tuple[BlockRule, ...] = ()
    links: tuple[LinkRule, ...] = ()
    moves: tuple[MoveRule, ...] = ()
    derives: tuple = ()  # DeriveRule (derive_column): a value computed from other tables' rows


class Op:
    table: str
    # Whether writer identification makes release N+1's writes exact here (DESIGN 2): a moved
    # column's "not derived yet" lives in another table, which its triggers do not mark.
    follows_identification = True

    def describe(self) -> str:
        raise NotImplementedError

    def tables(self) -> tuple[str, ...]:
        """Every table the op touches (a stand-in's or a new table's name included)."""
        return (self.table,)

    def exclusive(self) -> bool:
        """True when no other op of the change may touch the op's tables (rename_table)."""
        return False

    def validate(self, schema: Schema) -> None:
        raise NotImplementedError

    def validate_in(self, change) -> None:
        """What the op needs of the rest of its change (a Python backfill, its block_writes)."""

    def expand(self, schema: Schema) -> list[Intent]:
        return []

    def sync(self, schema: Schema) -> Sync:
        return Sync()

    def migrate_work(self, schema: Schema) -> tuple:
        """What migrate runs for the op besides the triggers' backfill, in the order declared:
        Python backfills (compute.PythonBackfill) and data steps (compute.DataStep)."""
        return ()

    def contract(self, schema: Schema) -> list[Intent]:
        return []

    def moves(self, schema: Schema) -> tuple[MoveRule, ...]:
        """The values the op moves to another table (move_column), which contract must not strand."""
        return ()

    def rollback(self, schema: Schema) -> list[Intent]:
        return []

    def final_columns(self, schema: Schema) -> tuple[sa.Column, ...]:
        """The new columns of the op's two-way sync group as release N+1 declares them (nullable
        or not): where release N+1 may write NULL, DESIGN 2's NULL ambiguity applies."""
        return ()

    def added_columns(self) -> tuple[str, ...]:
        """Columns expand adds (rollback drops them; post-expand checks look for them)."""
        return ()

    def dropped_columns(self) -> tuple[str, ...]:
        """Columns contract drops."""
        return ()

    def added(self) -> list[tuple[str, str]]:
        """(table, column) for each column expand adds, in whichever of the op's tables."""
        return [(self.table, c) for c in self.added_columns()]

    def dropped(self) -> list[tuple[str, str]]:
        """(table, column) for each column contract drops."""
        return [(self.table, c) for c in self.dropped_columns()]


def require_column(schema: Schema, table: str, column: str) -> sa.Column:
    return schema.column(table, column)


def require_new_column(schema: Schema, table: str, column: str) -> None:
    schema.table(table)  # unknown table first: it is the clearer message
    if schema.has_column(table, column):
        raise ColumnExistsError(table, column)


def transitional(table: str, column: sa.Column) -> sa.Column:
    """The column as expand adds it: nullable, no server default (DESIGN section 2). Not a
    generated one: triggers and the backfill fill a new column, and the database refuses them that."""
    if column.computed is not None:
        raise GeneratedColumnError(table, column.name, "the change's triggers and backfill")
    return sa.Column(column.name, column.type, nullable=True)


def final_constraints(table: str, column: sa.Column) -> list[Intent]:
    """Contract's intents that give a new column its declared default and NOT NULL."""
    intents: list[Intent] = []
    if plain_default(column) is not None:
        intents.append(SetDefault(table, column.name, plain_default(column)))
    if not column.nullable:
        intents.append(SetNullable(table, column.name, False))
    return intents


def default_expr(column: sa.Column):
    """A server default as an expression, so triggers and backfill can fill with it."""
    arg = column.server_default.arg
    if isinstance(arg, str):
        return sa.literal(arg, column.type)
    return arg


def single_key(schema: Schema, table: str, op: str) -> str:
    """The table's one primary-key column, which the cross-table ops match rows by."""
    key = schema.primary_key(table)
    if len(key) != 1:
        raise ValidationError(f"{op}: table {table!r} needs a primary key of exactly one column to match rows "
                              f"across tables (it has {len(key)}: {', '.join(key) or 'none'})")
    return key[0]


def require_new_table(schema: Schema, name: str) -> None:
    if schema.name_taken(name):
        raise TableExistsError(name)


def require_lookup_index(schema: Schema, op: str, table: str, column: str, where: str) -> None:
    """A cross-table op's triggers look the other rows of a target up by `table.column` on every
    write: without an index each write would scan the whole table. `where` says where to add one."""
    if schema.has_index_on(table, column):
        return
    raise ValidationError(
        f"{op}: {table}.{column} has no index, and the triggers look rows up by it on every write (a scan "
        f"of {table} each time). Add one first, e.g. "
        f'ops.create_index("{table}", "ix_{table}_{column}", "{column}") {where}')


def check_not_primary_key(schema: Schema, table: str, column: str) -> None:
    if column in schema.primary_key(table):
        raise PrimaryKeyColumnError(table, column)


class ReplacesColumns(Op):
    """What replace_column, split_column and merge_columns share: old columns give way to new
    ones, kept in step by one two-way sync group (`up`: old -> new, `down`: new -> old)."""

    table: str
    up: Transform
    down: Transform
    lossy: bool

    @property
    def old_columns(self) -> tuple[str, ...]:
        raise NotImplementedError

    @property
    def new_columns(self) -> tuple[sa.Column, ...]:
        raise NotImplementedError

    def validate(self, schema: Schema) -> None:
        for name in self.old_columns:
            schema.column(self.table, name)
            check_not_primary_key(schema, self.table, name)
        for column in self.new_columns:
            require_new_column(schema, self.table, column.name)

    def expand(self, schema: Schema) -> list[Intent]:
        return [AddColumn(self.table, transitional(self.table, c)) for c in self.new_columns]

    def sync(self, schema: Schema) -> Sync:
        new = tuple(c.name for c in self.new_columns)
        return Sync(groups=(SyncGroup(self.table, self.old_columns, new, self.up, self.down, self.lossy),))

    def contract(self, schema: Schema) -> list[Intent]:
        intents: list[Intent] = [DropColumn(self.table, name) for name in self.old_columns]
        for column in self.new_columns:
            intents += final_constraints(self.table, column)
        return intents

    def rollback(self, schema: Schema) -> list[Intent]:
        return [DropColumn(self.table, c.name) for c in self.new_columns]

    def added_columns(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.new_columns)

    def final_columns(self, schema: Schema) -> tuple[sa.Column, ...]:
        return self.new_columns

    def dropped_columns(self) -> tuple[str, ...]:
        return self.old_columns
