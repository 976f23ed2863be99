"""What the simulator knows about one change: each table as release N and release N+1 see it.

Writes are checked per *slot*: a plain column that both releases share, or a sync group (old
columns A, new columns B). The last committed write to a slot decides what each release must read.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sqlalchemy as sa

from ..change import Change
from ..ddl import apply_to_schema
from ..errors import CrossfadeError
from ..schema import Schema
from ..sync import BlockRule, FillRule, SyncGroup

RELEASE_N, RELEASE_N1 = "N", "N+1"


@dataclass
class TablePlan:
    name: str
    key: str  # the single-column primary key both releases share
    tables: dict[str, sa.Table]  # release -> that release's Table
    groups: list[SyncGroup] = field(default_factory=list)
    fills: list[FillRule] = field(default_factory=list)
    blocks: list[BlockRule] = field(default_factory=list)

    def writable(self, release: str) -> list[sa.Column]:
        """Columns release `release` writes: all but the key and derived (one-way) columns."""
        derived = {c for g in self.groups if g.down is None for c in g.new}
        return [c for c in self.tables[release].columns if c.name != self.key and c.name not in derived]

    def synced(self, release: str) -> list[sa.Column]:
        names = {f.column for f in self.fills}
        for group in self.groups:
            names.update(group.old + group.new)
        return [c for c in self.writable(release) if c.name in names]

    def plain(self, release: str) -> list[sa.Column]:
        synced = {c.name for c in self.synced(release)}
        return [c for c in self.writable(release) if c.name not in synced]

    def slot_of(self, column: str) -> str:
        """The slot a column belongs to: its two-way group, or the column itself."""
        for group in self.groups:
            if group.down is not None and column in group.old + group.new:
                return "group:" + ",".join(group.old + group.new)
        return column

    def group_of_slot(self, slot: str) -> SyncGroup | None:
        for group in self.groups:
            if group.down is not None and slot == "group:" + ",".join(group.old + group.new):
                return group
        return None

    def fill_of(self, column: str) -> FillRule | None:
        return next((f for f in self.fills if f.column == column), None)


def plan_tables(change: Change, release_n: sa.MetaData, release_n1: sa.MetaData) -> dict[str, TablePlan]:
    """One TablePlan per table of the change, with the change's sync rules after expand."""
    planned = Schema.from_metadata(release_n)
    change.validate(planned)
    for intent in change.expand_intents(planned):
        apply_to_schema(planned, intent)
    syncs = change.table_syncs(planned)
    plans = {}
    for name in sorted(change.tables()):
        tables = {RELEASE_N: _table(release_n, name, RELEASE_N), RELEASE_N1: _table(release_n1, name, RELEASE_N1)}
        key = _shared_key(tables)
        sync = syncs.get(name)
        plans[name] = TablePlan(name, key, tables, list(sync.groups) if sync else [],
                                list(sync.fills) if sync else [], list(sync.blocks) if sync else [])
    return plans


def _table(metadata: sa.MetaData, name: str, release: str) -> sa.Table:
    if name not in metadata.tables:
        raise CrossfadeError(f"release {release}'s metadata has no table {name!r}")
    return metadata.tables[name]


def _shared_key(tables: dict[str, sa.Table]) -> str:
    keys = {release: [c.name for c in t.primary_key.columns] for release, t in tables.items()}
    n, n1 = keys[RELEASE_N], keys[RELEASE_N1]
    if len(n) != 1 or n != n1:
        name = tables[RELEASE_N].name
        raise CrossfadeError(f"the simulator needs table {name!r} to keep one primary-key column in both "
                             f"releases (release N: {n}, release N+1: {n1})")
    return n[0]
