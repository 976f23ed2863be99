"""Whole rows for the simulator's writers, where a column's value depends on more than its type.

- Keys the application supplies (a string key, a composite key): each writer makes its own,
  unique by the writer's tag and a counter.
- Unique columns (a UNIQUE constraint or index, alone or with others): one column of each gets a
  value unique per writer the same way; one the example gives values for is left to it.
- Foreign keys to another simulated table's key: an existing row's key (that table's rows are
  never deleted by the writers); a unique one is given to one row only.
- Sources of a derived value whose op refuses disagreeing sources (derive_column's default):
  every source row of one target row holds the same value, as the application keeps them.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from ..derived import DeriveRule
from .journal import LiveRows
from .model import TablePlan
from .values import NULL_SHARE, ValueSource

_ROOM = 100_000  # integers each writer may make before running into the next writer's


class NoParent(Exception):
    """No row for a foreign key to point at: the write is not made."""


@dataclass
class Namer:
    """One writer's unique values: `tag` starts its strings, `index` spaces its integers."""

    tag: str
    index: int
    count: int = 0

    def string(self, length: int | None) -> str:
        self.count += 1
        made = f"{self.tag}-{self.count}"
        if length is not None and len(made) > length:
            raise ValueError(f"a unique value {made!r} does not fit String({length})")
        return made

    def number(self) -> int:
        self.count += 1
        return self.index * _ROOM + self.count


@dataclass
class RowMaker:
    plans: Mapping[str, TablePlan]
    values: ValueSource
    rows: LiveRows
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _claimed: dict = field(default_factory=lambda: defaultdict(set))  # (table, column) -> parent keys given
    _agreed: dict = field(default_factory=dict)  # (rule, target key) -> the value its sources hold

    # --- what a column needs ---------------------------------------------------------------
    def unique_columns(self, plan: TablePlan, release: str) -> set[str]:
        """The columns this maker makes unique: one of each unique set the example gives no
        values for (the key's, where the application supplies it)."""
        table = plan.shapes[release].main
        sets = [[c.name for c in table.primary_key.columns]] if plan.supplies_keys() else []
        sets += [[c.name for c in u.columns] for u in table.constraints if isinstance(u, sa.UniqueConstraint)]
        sets += [[c.name for c in i.columns] for i in table.indexes if i.unique]
        sets += [[c.name] for c in table.columns if c.unique]
        made = set()
        for names in sets:
            if any(self._referenced(table.c[n]) for n in names) and len(names) == 1:
                continue  # a unique foreign key: claimed parents (below)
            free = [n for n in names if not self._overridden(table.c[n]) and not self._referenced(table.c[n])
                    and isinstance(table.c[n].type, (sa.String, sa.Integer))]
            if free and not any(n in made for n in names):
                made.add(free[0])
        return made

    def agreeing(self, plan: TablePlan) -> dict[str, tuple[DeriveRule, str]]:
        """Columns of this table that are sources of a derived value whose sources must agree:
        column -> (rule, the column that names the target row)."""
        return {s.column: (rule, s.via) for rule in plan.derives if rule.refuse_conflicts
                for s in rule.sources if s.table == plan.name}

    def _overridden(self, column: sa.Column) -> bool:
        return f"{column.table.name}.{column.name}" in self.values.overrides

    def _referenced(self, column: sa.Column) -> str | None:
        """The simulated table whose key this column references (None: none)."""
        for key in column.foreign_keys:
            target = self.plans.get(key.column.table.name)
            if target is not None and not target.composite and key.column.name == target.key:
                return target.name
        return None

    # --- rows ------------------------------------------------------------------------------
    def row(self, plan: TablePlan, release: str, rng, namer: Namer, names: list[str], *,
            insert: bool) -> dict:
        """Values of `names` (and, for an insert, of a key the application supplies)."""
        wanted = ([k for k in plan.keys] if insert and plan.supplies_keys() else []) + list(names)
        unique, agreeing = self.unique_columns(plan, release), self.agreeing(plan)
        row = {}
        for name in [n for n in wanted if n not in agreeing]:
            row[name] = self._value(plan, release, rng, namer, name, unique)
        for name in [n for n in wanted if n in agreeing]:
            column = plan.column(release, name)
            value = self.values.value(rng, column.table, column, allow_null=name not in plan.keys)
            rule, via = agreeing[name]
            row[name] = value if value is None or row.get(via) is None else self.agree(rule, row[via], value)
        return row

    def agree(self, rule: DeriveRule, target_key: Any, value: Any) -> Any:
        """The value every source row of `target_key` holds: the first one offered."""
        with self._lock:
            return self._agreed.setdefault((rule, target_key), value)

    def _value(self, plan: TablePlan, release: str, rng, namer: Namer, name: str, unique: set[str]) -> Any:
        column = plan.column(release, name)
        if self._overridden(column):
            return self.values.value(rng, column.table, column, allow_null=name not in plan.keys)
        parent = self._referenced(column)
        if parent is not None:
            if column.nullable and rng.random() < NULL_SHARE:
                return None
            return self._parent(parent, column, rng, only_once=column.unique or name in unique)
        if name in unique:
            return namer.string(column.type.length) if isinstance(column.type, sa.String) else namer.number()
        return self.values.value(rng, column.table, column, allow_null=name not in plan.keys)

    def _parent(self, parent: str, column: sa.Column, rng, *, only_once: bool) -> Any:
        if not only_once:
            found = self.rows.pick(parent, rng)
            if found is None:
                raise NoParent(parent)
            return found
        with self._lock:
            claimed = self._claimed[column.table.name, column.name]
            free = [k for k in self.rows.keys(parent) if k not in claimed]
            if not free:
                raise NoParent(parent)
            chosen = rng.choice(free)
            claimed.add(chosen)
            return chosen
