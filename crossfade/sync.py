"""Sync groups and the sync law, free of any dialect.

A sync group ties old columns A (release N) to new columns B (release N+1) with `up: A -> B` and
`down: B -> A`. Triggers keep `A = down(B)` after every statement (DESIGN section 2). This module
builds the law's conditions as SQLAlchemy expressions over the trigger's NEW and OLD rows; each
dialect only decides how to say "assign" and "if".
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql import quoted_name, visitors
from sqlalchemy.sql.elements import ColumnElement

from .errors import CrossfadeError, TransformRaisedError
from .expressions import for_column, is_distinct

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
    # True when the user accepts that down(up(a)) differs from a for some values the old columns'
    # types can hold: the round-trip law is then checked on sample values and existing rows only.
    lossy: bool = False

    def up_exprs(self, row: sa.TableClause) -> tuple[ColumnElement, ...]:
        result = call_transform(self.up, [row.c[name] for name in self.old], "up", self.table, self.new)
        return _as_exprs(result, _types(row, self.new), "up")

    def down_exprs(self, row: sa.TableClause) -> tuple[ColumnElement, ...]:
        assert self.down is not None
        result = call_transform(self.down, [row.c[name] for name in self.new], "down", self.table, self.old)
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
        result = call_transform(self.fill, [row_namespace(row, self.table)], "fill", self.table, (self.column,))
        return _as_exprs(result, _types(row, (self.column,)), "fill")[0]


@dataclass(frozen=True)
class BlockRule:
    """Writes fail with `message` while the triggers are installed (block_writes).

    A column's block (`column` given): an INSERT is refused when it gives the column a value
    other than `default` (what the column gets when the INSERT leaves it out; None for NULL); an
    UPDATE when it changes it. A table's block (`column` None): each of `on_insert`, `on_update`
    and `on_delete` is None (allowed), True (every such write) or a condition, a callable that
    receives the rows as attributes (`new` for an insert, `new, old` for an update, `old` for a
    delete) and returns a SQLAlchemy expression true for the writes to refuse.

    `old_release_only`: where the database can tell who writes (writer identification), release
    N+1's writes pass. A table's block always lets crossfade's own writes through (a Python
    backfill, a data step), which the dialects mark (`crossfade_writing_sql`).
    """

    table: str
    column: str | None
    message: str
    default: Any = None  # a SQL expression (the server default) or None
    on_insert: Any = None
    on_update: Any = None
    on_delete: Any = None
    old_release_only: bool = False

    @property
    def whole_table(self) -> bool:
        return self.column is None

    def insert_violation(self, new: sa.TableClause) -> ColumnElement | None:
        if self.whole_table:
            return self._condition(self.on_insert, [new], "insert")
        value = new.c[self.column]
        if self.default is None:
            return value.is_not(None)
        return sa.and_(value.is_not(None), is_distinct(value, self.default))

    def update_violation(self, new: sa.TableClause, old: sa.TableClause) -> ColumnElement | None:
        if self.whole_table:
            return self._condition(self.on_update, [new, old], "update")
        return is_distinct(new.c[self.column], old.c[self.column])

    def delete_violation(self, old: sa.TableClause) -> ColumnElement | None:
        if self.whole_table:
            return self._condition(self.on_delete, [old], "delete")
        return None

    def blocks(self, event: str) -> bool:
        """Whether the rule refuses any write of `event` ("insert", "update", "delete")."""
        if not self.whole_table:
            return event in ("insert", "update")
        return getattr(self, f"on_{event}") not in (None, False)

    def _condition(self, rule: Any, rows: list[sa.TableClause], event: str) -> ColumnElement | None:
        if rule in (None, False):
            return None
        if rule is True:
            return sa.true()
        result = call_transform(rule, [row_namespace(r, self.table) for r in rows], f"block_writes {event} condition",
                                self.table, ())
        return _as_exprs(result, [sa.Boolean()], f"block_writes {event} condition")[0]


@dataclass
class TableSync:
    """Everything one table's triggers must do: the merged rules of every op on that table."""

    table: sa.Table
    groups: list[SyncGroup] = field(default_factory=list)
    fills: list[FillRule] = field(default_factory=list)
    blocks: list[BlockRule] = field(default_factory=list)
    # Old NOT NULL columns that expand relaxed (SQLite): the triggers must still refuse NULL there.
    required: list[str] = field(default_factory=list)
    # Release N+1 identifies its connections (identification.py): its writes are authoritative,
    # a NULL new value included, where the dialect can tell who writes.
    identified: bool = False

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
        columns = {f.column for f in self.fills} | {b.column for b in self.blocks if not b.whole_table}
        for group in self.groups:
            columns.update(group.old + group.new)
        return columns

    def value_types(self) -> list[sa.types.TypeEngine]:
        """Every type a value takes on its way through the table's rules: the synced columns'
        and each part of the transforms' expressions (casts, functions, literals)."""
        table = self.table
        exprs = [table.c[name] for name in self.synced_columns()]
        for group in self.groups:
            exprs += group.up_exprs(table)
            exprs += group.down_exprs(table) if group.down is not None else ()
        exprs += [fill.fill_expr(table) for fill in self.fills]
        return [e.type for expr in exprs for e in visitors.iterate(expr) if isinstance(getattr(e, "type", None),
                                                                                      sa.types.TypeEngine)]


def row(table: sa.Table, which: str) -> sa.TableClause:
    """The trigger's NEW or OLD row as a table clause, so transforms compile to `NEW.col`."""
    return sa.table(
        quoted_name(which, quote=False), *[sa.column(c.name, c.type) for c in table.columns]
    )


def row_namespace(row_clause: sa.TableClause, table: str) -> SimpleNamespace:
    """The row's columns as attributes (`row.name`), for transforms that take the whole row."""
    return RowColumns(table, {c.name: c for c in row_clause.columns})


class RowColumns(SimpleNamespace):
    """A row's columns as attributes; reading one the table lacks names the table and column."""

    def __init__(self, table: str, columns: dict[str, Any]):
        super().__init__(**columns)
        self.__table = table

    def __getattr__(self, name: str):
        raise AttributeError(f"table {self.__table!r} has no column {name!r}")


def call_transform(transform: Transform, args: Sequence[Any], what: str, table: str,
                   columns: Sequence[str]) -> Any:
    """Call a user's transform (`what`: up, down, fill, backfill...) that computes `table.columns`.
    Whatever it raises, other than crossfade's own errors, becomes one TransformRaisedError
    naming the columns: every place crossfade calls a transform goes through here."""
    try:
        return transform(*args)
    except CrossfadeError:
        raise
    except Exception as exc:
        raise TransformRaisedError(what, table, ", ".join(columns), exc) from exc


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
        return for_column(value, type_)
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


@dataclass(frozen=True)
class MoveRule:
    """Columns of `source` that move to the related `target` (move_column): DESIGN section 2's
    cross-table group with identity transforms.

    A source row matches the target row whose `target_key` equals its `source_key` (users.org_id =
    orgs.id, many-to-one; or users.id = local_users.user_id, one-to-one), and the two hold the same
    values in `columns` (pairs of source column, target column). A write to either side reaches
    the other; when several source rows share a target row (`many`), a write to one reaches its
    siblings too, where the database lets a trigger write its own table (not MySQL: error 1442).

    NULL in every target column means "not derived yet", as for a sync group's new columns: a
    source row meeting such a target row fills it; otherwise a source row whose moved columns are
    all NULL takes the target's values. A value that matches no target row stays where release N
    wrote it; contract refuses to drop it.
    """

    source: str
    target: str
    source_key: str
    target_key: str
    source_pk: str
    target_pk: str
    columns: tuple[tuple[str, str], ...]
    many: bool = True

    def tables(self) -> tuple[str, str]:
        return self.source, self.target

    @property
    def source_columns(self) -> tuple[str, ...]:
        return tuple(s for s, _ in self.columns)

    @property
    def target_columns(self) -> tuple[str, ...]:
        return tuple(t for _, t in self.columns)

    def merged(self, other: MoveRule) -> MoveRule:
        """One rule for two moves across the same relation (one trigger per table and event)."""
        return dataclasses.replace(self, columns=self.columns + other.columns)

    def relation(self) -> tuple:
        return (self.source, self.target, self.source_key, self.target_key)


class MoveStatements:
    """The statements a MoveRule's triggers and backfill run, as SQLAlchemy expressions over the
    live tables and the trigger's NEW / OLD rows; every write only touches rows that differ, so
    the trigger it fires in turn finds nothing to do (SQLite's recursion guard; PostgreSQL and
    MySQL also switch the other side's triggers off while they write)."""

    def __init__(self, rule: MoveRule, source: sa.Table, target: sa.Table):
        self.rule, self.s, self.t = rule, source, target

    @staticmethod
    def _locked(select: sa.Select) -> sa.Select:
        """Every read of the other table's (or the sibling rows') values is a locking read: a
        concurrent write of those rows, which pushes its value here, is waited for and then seen,
        never missed (two writers would otherwise each copy what the other had not committed).
        PostgreSQL FOR SHARE, MariaDB LOCK IN SHARE MODE; SQLite has one writer and no such clause."""
        return select.with_for_update(read=True)

    # --- on the source side (NEW is a source row) -----------------------------------------------
    def source_values(self, new) -> list[ColumnElement]:
        return [new.c[c] for c in self.rule.source_columns]

    def target_values_for(self, new_source) -> list[ColumnElement]:
        """The matching target row's values, one scalar subquery each (NULL when there is none)."""
        match = self.t.c[self.rule.target_key] == new_source.c[self.rule.source_key]
        return [self._locked(sa.select(self.t.c[c]).where(match)).scalar_subquery() for c in self.rule.target_columns]

    def target_is_derived(self, new_source) -> ColumnElement:
        """A target row matches and holds a value (it is not waiting for the backfill). The row is
        locked whatever it holds: a writer about to give it its first value is waited for."""
        match = self.t.c[self.rule.target_key] == new_source.c[self.rule.source_key]
        holds = sa.not_(all_null([self.t.c[c] for c in self.rule.target_columns]))
        return sa.func.coalesce(self._locked(sa.select(holds).where(match)).scalar_subquery(), sa.false())

    def shared_values_for(self, new_source) -> list[ColumnElement]:
        """What the row's target holds: its values once derived, else (before the backfill reached
        it) the values its other source rows hold, as the backfill will give it."""
        sibling = self._first_sibling(new_source)
        from_siblings = [self._locked(sa.select(self.s.c[c]).where(self.s.c[self.rule.source_pk] == sibling))
                         .scalar_subquery() for c in self.rule.source_columns]
        derived = self.target_is_derived(new_source)
        return [sa.case((derived, value), else_=fallback)
                for value, fallback in zip(self.target_values_for(new_source), from_siblings)]

    def has_shared_values(self, new_source) -> ColumnElement:
        return sa.or_(self.target_is_derived(new_source), sa.exists().where(
            self.s.c[self.rule.source_pk] == self._first_sibling(new_source)))

    def _first_sibling(self, new_source):
        s, rule = self.s, self.rule
        return self._locked(sa.select(s.c[rule.source_pk])
                            .where(s.c[rule.source_key] == new_source.c[rule.source_key],
                                   s.c[rule.source_pk] != new_source.c[rule.source_pk],
                                   sa.not_(all_null([s.c[c] for c in rule.source_columns])))
                            .order_by(s.c[rule.source_pk]).limit(1)).scalar_subquery()

    def push_to_target(self, new_source) -> sa.Update:
        values = self.source_values(new_source)
        targets = [self.t.c[c] for c in self.rule.target_columns]
        return (sa.update(self.t)
                .where(self.t.c[self.rule.target_key] == new_source.c[self.rule.source_key],
                       any_distinct(targets, values))
                .values({c: v for c, v in zip(self.rule.target_columns, values)}))

    def push_to_siblings(self, new_source) -> sa.Update:
        """The other source rows of the same target row take the values just written."""
        values = self.source_values(new_source)
        own = [self.s.c[c] for c in self.rule.source_columns]
        return (sa.update(self.s)
                .where(self.s.c[self.rule.source_key] == new_source.c[self.rule.source_key],
                       self.s.c[self.rule.source_pk] != new_source.c[self.rule.source_pk],
                       any_distinct(own, values))
                .values({c: v for c, v in zip(self.rule.source_columns, values)}))

    # --- on the target side (NEW / OLD is a target row) -----------------------------------------
    def source_values_for(self, new_target) -> list[ColumnElement]:
        """The first matching source row's values (by key; siblings agree), one subquery each."""
        s = self.s
        first = self._locked(sa.select(s.c[self.rule.source_pk])
                             .where(s.c[self.rule.source_key] == new_target.c[self.rule.target_key],
                                    sa.not_(all_null([s.c[c] for c in self.rule.source_columns])))
                             .order_by(s.c[self.rule.source_pk]).limit(1).correlate_except(s)).scalar_subquery()
        return [self._locked(sa.select(s.c[c]).where(s.c[self.rule.source_pk] == first).correlate_except(s))
                .scalar_subquery() for c in self.rule.source_columns]

    def sources_hold_values(self, new_target) -> ColumnElement:
        s = self.s
        holding = sa.select(s.c[self.rule.source_pk]).where(
            s.c[self.rule.source_key] == new_target.c[self.rule.target_key],
            sa.not_(all_null([s.c[c] for c in self.rule.source_columns])))
        return self._locked(holding).exists()

    def push_to_sources(self, new_target) -> sa.Update:
        values = [new_target.c[c] for c in self.rule.target_columns]
        own = [self.s.c[c] for c in self.rule.source_columns]
        return (sa.update(self.s)
                .where(self.s.c[self.rule.source_key] == new_target.c[self.rule.target_key],
                       any_distinct(own, values))
                .values({c: v for c, v in zip(self.rule.source_columns, values)}))

    def clear_sources(self, old_target) -> sa.Update:
        """The target row went (or took another key): its source rows lose the moved values."""
        own = [self.s.c[c] for c in self.rule.source_columns]
        return (sa.update(self.s)
                .where(self.s.c[self.rule.source_key] == old_target.c[self.rule.target_key],
                       sa.not_(all_null(own)))
                .values({c: None for c in self.rule.source_columns}))

    # --- the backfill, batched over the source's key -------------------------------------------
    def backfill(self, batch: ColumnElement) -> list[sa.Update]:
        """For the source rows `batch` picks: target rows not derived yet take their values, then
        source rows left empty (inserted before their target row was derived) take the target's.
        Both read the source through `batch` (its primary key), so no index on the relation is needed."""
        s, t, rule = self.s, self.t, self.rule
        has_values = sa.not_(self.source_empty(s))
        # The batch's first source row with values per target key, as a derived table joined to
        # the target: a correlated IN (...) would be run again for every target row by MariaDB.
        firsts = (sa.select(s.c[rule.source_key].label("key"), sa.func.min(s.c[rule.source_pk]).label("first"))
                  .where(batch, has_values).group_by(s.c[rule.source_key]).subquery("crossfade_firsts"))
        first_row = s.alias("crossfade_first")
        fill_target = (sa.update(t)
                       .where(t.c[rule.target_key] == firsts.c.key, first_row.c[rule.source_pk] == firsts.c.first,
                              all_null([t.c[c] for c in rule.target_columns]))
                       .values({tc: first_row.c[sc] for sc, tc in rule.columns}))
        fill_sources = (sa.update(s)
                        .where(batch, self.source_empty(s), self.target_is_derived(s))
                        .values({sc: v for sc, v in zip(rule.source_columns, self.target_values_for(s))}))
        return [fill_target, fill_sources]

    # --- conditions on the trigger's rows ---------------------------------------------------------
    def source_empty(self, source_row) -> ColumnElement:
        return all_null([source_row.c[c] for c in self.rule.source_columns])

    def target_empty(self, target_row) -> ColumnElement:
        return all_null([target_row.c[c] for c in self.rule.target_columns])

    def source_changed(self, new, old) -> ColumnElement:
        return changed(self.rule.source_columns, new, old)

    def source_key_changed(self, new, old) -> ColumnElement:
        return changed((self.rule.source_key,), new, old)

    def target_changed(self, new, old) -> ColumnElement:
        return changed(self.rule.target_columns, new, old)

    def target_key_changed(self, new, old) -> ColumnElement:
        return changed((self.rule.target_key,), new, old)
