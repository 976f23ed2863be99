"""Sync groups and the sync law, free of any dialect.

A sync group ties old columns A (release N) to new columns B (release N+1) with `up: A -> B` and
`down: B -> A`. Triggers keep `A = down(B)` after every statement (DESIGN section 2). This module
builds the law's conditions as SQLAlchemy expressions over the trigger's NEW and OLD rows; each
dialect only decides how to say "assign" and "if".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql import quoted_name
from sqlalchemy.sql.elements import ColumnElement

from .expressions import is_distinct

Transform = Callable[..., Any]


@dataclass(frozen=True)
class SyncGroup:
    """Old columns `old` kept equal to `down(new)`; new columns filled with `up(old)`.

    `up` receives the old columns positionally and returns one expression per new column (a
    single expression when there is one). `down` is the reverse; None makes a one-way group
    (a derived column that release N+1 may not write independently).
    """

    table: str
    old: tuple[str, ...]
    new: tuple[str, ...]
    up: Transform
    down: Transform | None = None

    def up_exprs(self, row: sa.TableClause) -> tuple[ColumnElement, ...]:
        result = self.up(*[row.c[name] for name in self.old])
        return _as_exprs(result, _types(row, self.new), "up")

    def down_exprs(self, row: sa.TableClause) -> tuple[ColumnElement, ...]:
        assert self.down is not None
        result = self.down(*[row.c[name] for name in self.new])
        return _as_exprs(result, _types(row, self.old), "down")


@dataclass(frozen=True)
class FillRule:
    """Whenever `column` is NULL after a write, set it to `fill(row)`.

    Used where release N+1 stops writing a NOT NULL column (drop_column) and where a column is
    about to become NOT NULL while release N may still write NULL (set_not_null).
    """

    table: str
    column: str
    fill: Transform  # receives the row's columns as attributes (`row.name`)

    def fill_expr(self, row: sa.TableClause) -> ColumnElement:
        return _as_exprs(self.fill(row_namespace(row)), _types(row, (self.column,)), "fill")[0]


@dataclass(frozen=True)
class BlockRule:
    """Writes to `column` fail with `message` while the triggers are installed (block_writes).

    An INSERT is refused when it gives the column a value other than `default` (what the
    column gets when the INSERT leaves it out; None for NULL); an UPDATE when it changes it.
    """

    table: str
    column: str
    message: str
    default: Any = None  # a SQL expression (the server default) or None

    def insert_violation(self, new: sa.TableClause) -> ColumnElement:
        value = new.c[self.column]
        if self.default is None:
            return value.is_not(None)
        return sa.and_(value.is_not(None), is_distinct(value, self.default))

    def update_violation(self, new: sa.TableClause, old: sa.TableClause) -> ColumnElement:
        return is_distinct(new.c[self.column], old.c[self.column])


@dataclass
class TableSync:
    """Everything one table's triggers must do: the merged rules of every op on that table."""

    table: sa.Table
    groups: list[SyncGroup] = field(default_factory=list)
    fills: list[FillRule] = field(default_factory=list)
    blocks: list[BlockRule] = field(default_factory=list)
    # Old NOT NULL columns that expand relaxed (SQLite): the triggers must still refuse NULL there.
    required: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.table.name

    def ordered_groups(self) -> list[SyncGroup]:
        """The groups in the order a trigger must run them: two-way before one-way.

        A one-way group may read an old column that a two-way group's `down` writes in the same
        row (a label derived from is_public, which visibility's down sets). Nothing reads what a
        one-way group writes: its new column is unknown to the other ops' transforms.
        """
        return sorted(self.groups, key=lambda group: group.down is None)

    def synced_columns(self) -> set[str]:
        columns = {f.column for f in self.fills} | {b.column for b in self.blocks}
        for group in self.groups:
            columns.update(group.old + group.new)
        return columns


def row(table: sa.Table, which: str) -> sa.TableClause:
    """The trigger's NEW or OLD row as a table clause, so transforms compile to `NEW.col`."""
    return sa.table(
        quoted_name(which, quote=False), *[sa.column(c.name, c.type) for c in table.columns]
    )


def row_namespace(row_clause: sa.TableClause) -> SimpleNamespace:
    return SimpleNamespace(**{c.name: c for c in row_clause.columns})


# --- the law's conditions ------------------------------------------------------------------

def all_null(columns: Sequence[ColumnElement]) -> ColumnElement:
    return sa.and_(*[c.is_(None) for c in columns])


def any_distinct(left: Sequence[ColumnElement], right: Sequence[ColumnElement]) -> ColumnElement:
    return sa.or_(*[is_distinct(a, b) for a, b in zip(left, right)])


def changed(names: Sequence[str], new: sa.TableClause, old: sa.TableClause) -> ColumnElement:
    return any_distinct([new.c[n] for n in names], [old.c[n] for n in names])


def conflict(group: SyncGroup, new: sa.TableClause) -> ColumnElement:
    """A is distinct from down(B) in the NEW row."""
    return any_distinct([new.c[n] for n in group.old], group.down_exprs(new))


def _types(source, names: tuple[str, ...]) -> list:
    """The target columns' types where `source` has them (a plain value becomes a typed literal)."""
    return [source.c[n].type if n in source.c else None for n in names]


def _as_exprs(result: Any, types: list, what: str) -> tuple[ColumnElement, ...]:
    values = result if isinstance(result, (tuple, list)) else (result,)
    if len(values) != len(types):
        raise TypeError(f"{what} returned {len(values)} value(s) for {len(types)} column(s)")
    return tuple(_as_expr(v, t) for v, t in zip(values, types))


def _as_expr(value: Any, type_) -> ColumnElement:
    if isinstance(value, sa.sql.ClauseElement):
        return value
    if value is None:
        return sa.null()
    return sa.literal(value, type_)


@dataclass(frozen=True)
class LinkRule:
    """Columns kept equal across two tables, row to row by a shared key (split_table, and
    rename_table's stand-in on SQLite): DESIGN section 2's cross-table groups, with identity
    transforms.

    The `source` row and the `target` row with the same `key` hold the same values in `columns`
    (named alike on both sides). With `mirror`, the target holds every column of the source and a
    row inserted or deleted on one side is inserted or deleted on the other. Without it (a split),
    a target row exists only where release N gave one of the columns a value or release N+1
    inserted it; a missing target row reads as NULL in every column.

    Each side's triggers write the other side only where a value differs, and under a guard
    (a transaction-local setting on PostgreSQL and MariaDB) so the other side's triggers do not
    write back: the guard, not luck, ends the recursion.
    """

    source: str
    target: str
    key: str
    columns: tuple[str, ...]
    mirror: bool = False

    def tables(self) -> tuple[str, str]:
        return self.source, self.target
