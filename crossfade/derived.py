"""Values derived across tables (derive_column): the rule and the statements that keep it, free of
any dialect.

A target column (user.domain_id) holds a value computed from related rows: each source is a
column of another table (local_user.domain_id) whose rows reach the target row through a
foreign key (local_user.user_id -> user.id). The law, after every committed statement:

    target.column = the first source, in declared order, that has a non-NULL value for the row;
                    within one source, the least of its rows' non-NULL values; NULL when none has one.

By default expand refuses data where two non-NULL values for one target row differ (the rule would
pick one and silently drop the other; `conflicts="resolve"` lets the rule pick). While both
releases write, a disagreement written meanwhile is resolved by the rule, deterministically, so a
recomputation from the remaining rows (after a delete, or a row moving to another parent) always
gives the same answer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from .expressions import is_distinct


@dataclass(frozen=True)
class DeriveSource:
    """One source of a derived value: `table.column`, reaching the target row through the
    foreign-key column `via` (which references the target's primary key)."""

    table: str
    column: str
    via: str

    def describe(self) -> str:
        return f"{self.table}.{self.column} via {self.via}"


@dataclass(frozen=True)
class DeriveRule:
    """`target.column` derived from `sources` (in order of precedence), matched by `target_key`
    (the target's primary key). A cross-table rule like LinkRule and MoveRule: the runner installs
    its triggers, the backfill walks the target, the data check reads its law."""

    target: str
    column: str
    target_key: str
    sources: tuple[DeriveSource, ...]
    source_keys: tuple[tuple[str, ...], ...]  # each source table's primary key (the row a trigger writes)
    refuse_conflicts: bool = True  # expand refuses rows whose sources disagree (else the rule picks)
    mirror = False  # what the runner asks of every cross-table rule (only rename_table's link mirrors)

    @property
    def source(self) -> str:
        """The table the backfill walks (and the data check reads): the target itself."""
        return self.target

    def tables(self) -> tuple[str, ...]:
        return (*dict.fromkeys(s.table for s in self.sources), self.target)

    def source_tables(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(s.table for s in self.sources))

    def describe(self) -> str:
        return f"{self.target}.{self.column} <- {', '.join(s.describe() for s in self.sources)}"


class DeriveStatements:
    """The expressions a DeriveRule's triggers, backfill and checks run, over the live tables and
    a trigger's NEW / OLD rows."""

    def __init__(self, rule: DeriveRule, table: Callable[[str], sa.Table]):
        """`table(name)`: the live table of that name (Schema.table)."""
        self.rule, self.t = rule, table(rule.target)
        self.sources = {name: table(name) for name in rule.source_tables()}

    def value_for(self, key: ColumnElement, *, locked: bool = False, firing: str | None = None,
                  without=None, plus=None) -> ColumnElement:
        """The derived value for the target row whose key is `key`.

        `locked`: each read of a source is a locking read (MariaDB: a current read, which sees
        what committed before the target row's lock was granted, not the transaction's snapshot).
        A BEFORE trigger on source table `firing` sees the table before its write: `without` (the
        OLD row) is left out and `plus` (the NEW row) joins in, where they belong to `key`."""
        values = [self._source_value(source, key, locked, without if source.table == firing else None,
                                     plus if source.table == firing else None) for source in self.rule.sources]
        value = values[0] if len(values) == 1 else sa.func.coalesce(*values)
        return sa.type_coerce(value, self.t.c[self.rule.column].type)

    def _source_value(self, source: DeriveSource, key, locked: bool, without, plus) -> ColumnElement:
        s = self.sources[source.table]
        column = s.c[source.column]
        conditions = [s.c[source.via] == key]  # min() passes NULLs over: no filter for them
        if without is not None:
            conditions.append(sa.not_(self._this_row(s, without)))
        select = sa.select(sa.func.min(column)).where(*conditions)
        found = (select.with_for_update(read=True) if locked else select).scalar_subquery()
        if plus is None:
            return found
        # The row about to be written joins the others: the least of both. Each branch reads the
        # table once (a subquery written twice in one branch would be run twice).
        added = plus.c[source.column]
        if key is not plus.c[source.via]:  # the row's own parent needs no test
            added = sa.case((plus.c[source.via] == key, added))
        return sa.case((added.is_(None), found), else_=sa.func.least(added, sa.func.coalesce(found, added)))

    def _this_row(self, s: sa.Table, old) -> ColumnElement:
        keys = self.rule.source_keys[self.rule.source_tables().index(s.name)]
        return sa.and_(*[s.c[k] == old.c[k] for k in keys])

    # --- writes of the target ------------------------------------------------------------------
    def refresh(self, key: ColumnElement, value: ColumnElement | None = None, *, only_changes: bool = True,
                from_subquery: bool = False) -> sa.Update:
        """UPDATE target SET column = its derived value WHERE key = `key` (a trigger's field).
        `only_changes`: only where the value differs (MariaDB skips an unchanged row by itself).
        `from_subquery`: the value computed once, in UPDATE ... FROM (PostgreSQL, SQLite)."""
        t, rule = self.t, self.rule
        value = self.value_for(key) if value is None else value
        where = [t.c[rule.target_key] == key]
        if from_subquery:
            # OFFSET 0 keeps PostgreSQL from pulling the subquery up into the UPDATE, which
            # would write the value out twice (in SET and WHERE) and compute it twice.
            derived = sa.select(value.label("v")).offset(0).subquery("crossfade_derived")
            value = derived.c.v
        if only_changes:
            where.append(is_distinct(t.c[rule.column], value))
        return sa.update(t).where(*where).values({rule.column: value})

    def forget(self, key: ColumnElement) -> sa.Update:
        """UPDATE target SET column = NULL WHERE key = `key`: the row back to "not derived yet",
        which the backfill fills (a placeholder trigger's write while the real ones go in)."""
        t = self.t
        return sa.update(t).where(t.c[self.rule.target_key] == key).values({self.rule.column: None})

    def lock_target(self, key: ColumnElement) -> sa.Select:
        """The target rows, locked (PostgreSQL FOR NO KEY UPDATE: a child's foreign-key check, which
        takes FOR KEY SHARE, still goes on) before their value is computed: two writers of one
        target row's sources then take turns, and the second reads what the first committed."""
        column = self.t.c[self.rule.target_key]
        return sa.select(column).where(column == key).with_for_update(key_share=True)

    def backfill(self, batch: ColumnElement, locked: bool = False) -> list:
        """The batch's target rows, locked, then given their derived value where they differ
        (`locked`: the sources are read with locking reads, as the dialect's triggers read them)."""
        t, rule = self.t, self.rule
        value = self.value_for(t.c[rule.target_key], locked=locked)
        lock = sa.select(t.c[rule.target_key]).where(batch).with_for_update(key_share=True)
        update = sa.update(t).where(batch, is_distinct(t.c[rule.column], value)).values({rule.column: value})
        return [lock, update]

    # --- the law -------------------------------------------------------------------------------
    def broken(self, target_row=None) -> ColumnElement:
        """A target row whose value is not the derived one."""
        t = self.t if target_row is None else target_row
        return is_distinct(t.c[self.rule.column], self.value_for(t.c[self.rule.target_key]))

    def conflicts(self) -> sa.Select:
        """Target keys whose sources hold more than one distinct non-NULL value, with the count."""
        parts = []
        for source in self.rule.sources:
            s = self.sources[source.table]
            parts.append(sa.select(s.c[source.via].label("k"), s.c[source.column].label("v"))
                         .where(s.c[source.via].is_not(None), s.c[source.column].is_not(None)))
        values = sa.union_all(*parts).subquery("crossfade_values") if len(parts) > 1 else parts[0].subquery(
            "crossfade_values")
        return (sa.select(values.c.k).group_by(values.c.k)
                .having(sa.func.count(sa.distinct(values.c.v)) > 1).order_by(values.c.k))

    def values_of(self, key) -> list[sa.Select]:
        """Each source's rows for target key `key`: (source, value), to show a conflict."""
        return [sa.select(self.sources[s.table].c[s.column]).where(self.sources[s.table].c[s.via] == key,
                                                                   self.sources[s.table].c[s.column].is_not(None))
                for s in self.rule.sources]
