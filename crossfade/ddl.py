"""DDL intents: what an op wants done to the schema, before any dialect says how.

Ops return these; a dialect turns each into one or more `Step`s (SQL plus a check that tells
whether the step already happened, which makes every phase safe to rerun).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from .names import portable
from .schema import plain_default


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


@dataclass(frozen=True)
class CreateIndex:
    table: str
    name: str
    columns: tuple[str, ...]
    unique: bool = False

    def describe(self) -> str:
        kind = "unique index" if self.unique else "index"
        return f"create {kind} {self.name} on {self.table} ({', '.join(self.columns)})"


@dataclass(frozen=True)
class DropIndex:
    table: str
    name: str

    def describe(self) -> str:
        return f"drop index {self.name} on {self.table}"


@dataclass(frozen=True)
class AddUnique:
    table: str
    name: str
    columns: tuple[str, ...]

    def describe(self) -> str:
        return f"add unique constraint {self.name} on {self.table} ({', '.join(self.columns)})"

    def violating_rows(self, key: Sequence[str] = ()) -> sa.Select:
        """Values more than one row holds, with how many (NULLs never collide in a UNIQUE)."""
        t = _table(self.table, self.columns)
        columns = [t.c[c] for c in self.columns]
        return (sa.select(*columns, sa.func.count().label("rows")).select_from(t)
                .where(*[c.is_not(None) for c in columns]).group_by(*columns).having(sa.func.count() > 1))


@dataclass(frozen=True)
class AddForeignKey:
    table: str
    name: str
    columns: tuple[str, ...]
    ref_table: str
    ref_columns: tuple[str, ...]
    ondelete: str | None = None  # one of REFERENTIAL_ACTIONS, checked by the op
    onupdate: str | None = None  # likewise

    def describe(self) -> str:
        return (f"add foreign key {self.name} on {self.table} ({', '.join(self.columns)}) "
                f"-> {self.ref_table} ({', '.join(self.ref_columns)})")

    def violating_rows(self, key: Sequence[str] = ()) -> sa.Select:
        """Rows whose key matches no referenced row (MATCH SIMPLE: a NULL in it is no reference)."""
        child = _table(self.table, [*key, *self.columns])
        ref = _table(self.ref_table, self.ref_columns).alias("ref")  # an alias: it may be the same table
        match = sa.exists().where(*[ref.c[r] == child.c[c] for c, r in zip(self.columns, self.ref_columns)])
        return (sa.select(*[child.c[c] for c in dict.fromkeys([*key, *self.columns])])
                .where(*[child.c[c].is_not(None) for c in self.columns], ~match))


@dataclass(frozen=True)
class AddCheck:
    table: str
    name: str
    # A boolean expression over unattached columns (`sa.column("size") > 0`), so it renders
    # unqualified in CHECK (...) and in the query that looks for rows failing it.
    condition: Any = field(compare=False)

    def describe(self) -> str:
        return f"add check constraint {self.name} on {self.table}"

    def violating_rows(self, key: Sequence[str] = ()) -> sa.Select:
        """Rows the check refuses: those where it is false (NULL, unknown, passes a CHECK)."""
        t = _table(self.table, key)
        return sa.select(*[t.c[c] for c in key]).select_from(t).where(sa.not_(self.condition))


@dataclass(frozen=True)
class CreateTable:
    """A new table keyed like `ref_table` (split_table's): `columns` include the key, which
    references `ref_table`'s key (ON DELETE `ondelete`)."""

    table: str
    columns: tuple[sa.Column, ...] = field(compare=False)
    key: str
    ref_table: str
    ondelete: str | None = "CASCADE"

    def describe(self) -> str:
        return f"create table {self.table} keyed by {self.ref_table}.{self.key}"

    def build(self, metadata: sa.MetaData, ref_key_type) -> sa.Table:
        """The table in `metadata` (with a stand-in for the referenced table, so the key resolves)."""
        ref_key = f"{metadata.schema}.{self.ref_table}" if metadata.schema else self.ref_table
        if ref_key not in metadata.tables:
            sa.Table(self.ref_table, metadata, sa.Column(self.key, ref_key_type, primary_key=True))
        columns = [sa.Column(c.name, c.type, nullable=c.nullable, primary_key=c.name == self.key,
                             autoincrement=False,
                             server_default=plain_default(c))
                   for c in self.columns]
        return sa.Table(self.table, metadata, *columns,
                        sa.ForeignKeyConstraint([self.key], [f"{self.ref_table}.{self.key}"],
                                                name=portable(f"fk_{self.table}_{self.key}"), ondelete=self.ondelete))


@dataclass(frozen=True)
class DropTable:
    table: str

    def describe(self) -> str:
        return f"drop table {self.table}"


@dataclass(frozen=True)
class AddStandIn:
    """rename_table's expand: `name` reads and writes `table` until contract renames it.
    PostgreSQL and MariaDB make it a view; SQLite, whose views cannot report an inserted rowid,
    a mirror table kept in step by triggers."""

    table: str
    name: str

    def describe(self) -> str:
        return f"make {self.name} a writable stand-in for {self.table}"


@dataclass(frozen=True)
class SwapStandIn:
    """rename_table's contract: the stand-in goes and `table` takes its name, atomically."""

    table: str
    name: str

    def describe(self) -> str:
        return f"rename table {self.table} to {self.name}, replacing its stand-in"


@dataclass(frozen=True)
class DropStandIn:
    table: str
    name: str

    def describe(self) -> str:
        return f"drop the stand-in {self.name} for {self.table}"


Intent = (AddColumn | DropColumn | SetNullable | SetDefault | CreateIndex | DropIndex | AddUnique
          | AddForeignKey | AddCheck | CreateTable | DropTable | AddStandIn | SwapStandIn | DropStandIn)

# What ON DELETE and ON UPDATE of a foreign key take, on every dialect.
REFERENTIAL_ACTIONS = ("CASCADE", "SET NULL", "SET DEFAULT", "RESTRICT", "NO ACTION")


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
    # PostgreSQL's CONCURRENTLY: runs outside any transaction block. Its lock waits stall no
    # writer, and an interrupted build starts over, so its one attempt may wait as long as the
    # phase may (max_lock_wait) rather than lock_timeout.
    concurrent: bool = False
    # What the step locks, for `crossfade plan` ("no write lock (CONCURRENTLY)", ...).
    locks: str = ""
    # Catalog only: no row is read or copied, whatever the table's size (`crossfade plan` says so).
    instant: bool = False
    # What runs instead when the database refuses the ALGORITHM `sql` asks for on this table.
    fallback: list[Step] | None = None
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
    elif isinstance(intent, CreateIndex):
        schema.add_index(intent.table, intent.name, intent.columns, intent.unique)
    elif isinstance(intent, AddUnique):
        schema.add_index(intent.table, intent.name, intent.columns, unique=True)
    elif isinstance(intent, DropIndex):
        schema.drop_index(intent.table, intent.name)
    elif isinstance(intent, AddForeignKey):
        schema.add_foreign_key(intent.table, intent.name, intent.columns, intent.ref_table,
                               intent.ref_columns, intent.ondelete, intent.onupdate)
    elif isinstance(intent, AddCheck):
        schema.add_check(intent.table, intent.name, intent.condition)
    elif isinstance(intent, CreateTable):
        schema.create_table(intent)
    elif isinstance(intent, DropTable):
        schema.drop_table(intent.table)
    elif isinstance(intent, SwapStandIn):
        schema.rename_table(intent.table, intent.name)
    # A stand-in is not one of the change's tables: the Schema does not show it.


def _table(name: str, columns: Sequence[str]) -> sa.TableClause:
    return sa.table(name, *[sa.column(c) for c in dict.fromkeys(columns)])


def new_names(intents: Iterable[object]) -> Iterator[tuple[str, str, str]]:
    """(kind, table, name) for every name a list of DDL intents creates."""
    for intent in intents:
        if isinstance(intent, AddColumn):
            yield "column", intent.table, intent.column.name
        elif isinstance(intent, CreateTable):
            yield "table", intent.table, intent.table
            for column in intent.columns:
                yield "column", intent.table, column.name
        elif isinstance(intent, (CreateIndex, AddUnique)):
            yield "index", intent.table, intent.name
        elif isinstance(intent, (AddForeignKey, AddCheck)):
            yield "constraint", intent.table, intent.name
        elif isinstance(intent, (AddStandIn, SwapStandIn)):
            yield "table", intent.name, intent.name
