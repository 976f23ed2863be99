"""What the simulator knows about one change: each *logical* table, as release N and release N+1
store it.

A logical table is named by release N's table. Release N+1 may store it differently, as the
change's cross-table rules (LinkRules) say: under another name (rename_table), or with some of
its columns in an extension table whose row has the same key (split_table). Each release's
Shape says where that release's code reads and writes every column of the logical row; the
workers write through it, and the oracle reads each release's view through it.

Writes are checked per *slot*: a plain column that both releases share, or a sync group (old
columns A, new columns B). The last committed write to a slot decides what each release must read.
A column a move_column moves (MoveRule) is a slot shared by a row of the target table and every
source row that matches it: release N writes it through any of those rows, release N+1 through
the target's row (the oracle checks those slots apart, `shared_slots`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import sqlalchemy as sa

from ..change import Change
from ..ddl import apply_to_schema
from ..derived import DeriveRule
from ..errors import CrossfadeError
from ..schema import Schema
from ..sync import BlockRule, FillRule, LinkRule, MoveRule, SyncGroup

RELEASE_N, RELEASE_N1 = "N", "N+1"
SHARED = "shared"  # the slot of a moved value: checked across tables, not row by row


def other_release(release: str) -> str:
    return RELEASE_N1 if release == RELEASE_N else RELEASE_N


@dataclass(frozen=True)
class Place:
    """Where a release keeps one column of a logical row: `table.column`, in the row's main
    table (`via` None), or in the row of `table` whose `key` equals the main row's `via` column
    (a missing row reads as NULL)."""

    table: str
    column: str
    via: str | None = None
    key: str | None = None


@dataclass(frozen=True, eq=False)
class Extension:
    """A table in which a release keeps some columns of a logical row: the row whose `key`
    equals the main row's `via` column. split_table's new table is one, owned by its logical row
    (`via` is the logical key, one row each, deleted with it). A many-to-one relation (a column
    moved to a parent table that many rows share) would be an extension with another `via`.
    `columns` maps the logical names to this table's names."""

    table: sa.Table
    key: str
    via: str
    columns: Mapping[str, str]

    def required(self) -> list[str]:
        """Logical columns that must be given a value whenever this table's row is written."""
        return [name for name, column in self.columns.items()
                if not self.table.c[column].nullable and self.table.c[column].server_default is None]


@dataclass(frozen=True)
class Shape:
    """How one release stores a logical table: its main table (the key's) and the extensions."""

    main: sa.Table
    extensions: tuple[Extension, ...] = ()

    def tables(self) -> list[sa.Table]:
        return [self.main, *[e.table for e in self.extensions]]

    def column_names(self) -> list[str]:
        """The logical columns this release knows, the key included."""
        return [c.name for c in self.main.columns] + [n for e in self.extensions for n in e.columns]

    def extension_of(self, name: str) -> Extension | None:
        return next((e for e in self.extensions if name in e.columns), None)

    def column(self, name: str) -> sa.Column:
        extension = self.extension_of(name)
        if extension is not None:
            return extension.table.c[extension.columns[name]]
        return self.main.c[name]

    def place(self, name: str) -> Place | None:
        extension = self.extension_of(name)
        if extension is not None:
            return Place(extension.table.name, extension.columns[name], extension.via, extension.key)
        return Place(self.main.name, name) if name in self.main.c else None


@dataclass
class TablePlan:
    name: str  # release N's name of the table
    key: str  # the primary key's first column (its only one, where the key is one column)
    shapes: dict[str, Shape]  # release -> how that release stores the table
    groups: list[SyncGroup] = field(default_factory=list)
    fills: list[FillRule] = field(default_factory=list)
    blocks: list[BlockRule] = field(default_factory=list)
    links: list[LinkRule] = field(default_factory=list)  # cross-table rules from this table
    moves: list[MoveRule] = field(default_factory=list)  # moves from or to this table
    parent: bool = False  # another plan's rows reference this one's: no worker deletes its rows
    derives: list[DeriveRule] = field(default_factory=list)  # derived values of or from this table
    keys: tuple[str, ...] = ()  # every primary-key column both releases share (default: `key`)

    def __post_init__(self):
        if not self.keys:
            self.keys = (self.key,)

    @property
    def composite(self) -> bool:
        return len(self.keys) > 1

    def supplies_keys(self) -> bool:
        """The application gives the key (a string, a composite key), not the database."""
        column = self.shapes[RELEASE_N].main.c[self.key]
        return self.composite or not (isinstance(column.type, sa.Integer) and column.autoincrement in (True, "auto"))

    def key_of(self, values: Mapping) -> object:
        """A row's key as the journal names it: the value, or the tuple of a composite key's."""
        return tuple(values[k] for k in self.keys) if self.composite else values[self.key]

    def key_columns(self, table: sa.Table) -> list[sa.Column]:
        return [table.c[k] for k in self.keys]

    def is_key(self, table: sa.Table, key: object) -> sa.ColumnElement:
        """`table`'s row whose key is `key` (as key_of gives it)."""
        if not self.composite:
            return table.c[self.key] == key
        return sa.and_(*[table.c[k] == v for k, v in zip(self.keys, key)])

    def key_in(self, table: sa.Table, keys) -> sa.ColumnElement:
        ordered = sorted(keys, key=repr)
        if not self.composite:
            return table.c[self.key].in_(ordered)
        return sa.tuple_(*self.key_columns(table)).in_(ordered)

    def table_names(self, release: str) -> list[str]:
        return [t.name for t in self.shapes[release].tables()]

    def column(self, release: str, name: str) -> sa.Column:
        return self.shapes[release].column(name)

    def writable(self, release: str) -> list[str]:
        """Columns release `release` writes: all but the key and derived columns (one-way groups'
        and derive_column's, which release N+1 reads and writes through their sources)."""
        derived = {c for g in self.groups if g.down is None for c in g.new}
        derived |= {d.column for d in self.derives if d.target == self.name}
        return [n for n in self.shapes[release].column_names() if n not in self.keys and n not in derived]

    def key_given(self, release: str) -> list[str]:
        """[key] where an insert must give the key (a string key, Keystone's credential.id), else []
        (the database numbers the rows)."""
        column = self.shapes[release].main.c[self.key]
        numbered = isinstance(column.type, sa.Integer) and column.autoincrement in (True, "auto")
        return [] if numbered else [self.key]

    def insertable(self, release: str) -> list[str]:
        """Columns an insert gives: a moved value is left out, so the row takes its target's
        (release N's application would copy it from another row of that target)."""
        moved = set(self.moved_columns())
        return [n for n in self.writable(release) if n not in moved or not self.moved_from_here(n)]

    def updatable(self, release: str) -> list[str]:
        """Columns an update may give: not the key a move matches rows by, which the simulator
        keeps as inserted so that each write's target row is known (tests/test_move_column.py
        covers a row moving to another target), nor an agreeing derived value's source."""
        relations = {m.source_key for m in self.moves if m.source == self.name}
        # A derived value's source whose op refuses disagreeing sources keeps its value and its
        # target row as inserted: the writers make every source of a target row agree.
        relations |= {c for d in self.derives if d.refuse_conflicts for s in d.sources if s.table == self.name
                      for c in (s.column, s.via)}
        return [n for n in self.writable(release) if n not in relations]

    def synced(self, release: str) -> list[str]:
        names = {f.column for f in self.fills} | {c for link in self.links for c in link.columns}
        names |= set(self.moved_columns())
        for group in self.groups:
            names.update(group.old + group.new)
        return [n for n in self.updatable(release) if n in names]

    def moved_columns(self) -> list[str]:
        """This table's columns a move shares with another table (as source or as target)."""
        return [c for m in self.moves for c in (m.source_columns if m.source == self.name else m.target_columns)]

    def moved_from_here(self, column: str) -> MoveRule | None:
        """The move whose source column `column` is (release N's shared copy of the value)."""
        return next((m for m in self.moves if m.source == self.name and column in m.source_columns), None)

    def moved_to_here(self, column: str) -> MoveRule | None:
        return next((m for m in self.moves if m.target == self.name and column in m.target_columns), None)

    def plain(self, release: str) -> list[str]:
        synced = set(self.synced(release))
        return [n for n in self.updatable(release) if n not in synced]

    def with_required(self, release: str, names: list[str]) -> list[str]:
        """`names` and the required columns of every extension they write: a row of an
        extension may have to be made, and then needs them (as an ORM object would)."""
        shape = self.shapes[release]
        touched = {shape.extension_of(n) for n in names} - {None}
        extra = [n for e in shape.extensions if e in touched for n in e.required() if n not in names]
        return names + extra

    def slot_of(self, column: str) -> str:
        """The slot a column belongs to: its two-way group, a moved value's shared slot, or the
        column itself."""
        if column in self.moved_columns():
            return SHARED
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
    """One TablePlan per logical table of the change, with the change's sync rules after expand.
    A table that is only release N+1's way of storing another (a link's target) is no plan."""
    planned = Schema.from_metadata(release_n)
    change.validate(planned)
    for intent in change.expand_intents(planned):
        apply_to_schema(planned, intent)
    syncs = change.table_syncs(planned)
    rules = change.links(planned)
    links = [r for r in rules if isinstance(r, LinkRule)]
    moves = [r for r in rules if isinstance(r, MoveRule)]
    derives = [r for r in rules if isinstance(r, DeriveRule)]
    stored_elsewhere = {link.target for link in links}
    names = sorted(change.tables() - stored_elsewhere - _data_step_only(change))
    plans = {}
    for name in names:
        own = [link for link in links if link.source == name]
        shapes = {RELEASE_N: Shape(_table(release_n, name, RELEASE_N)),
                  RELEASE_N1: _linked_shape(release_n1, name, own)}
        keys = _shared_key(name, shapes)
        sync = syncs.get(name)
        plans[name] = TablePlan(name, keys[0], shapes, list(sync.groups) if sync else [],
                                list(sync.fills) if sync else [], list(sync.blocks) if sync else [], own,
                                [m for m in moves if name in m.tables()], _is_parent(release_n, name, names),
                                derives=[d for d in derives if name in d.tables()], keys=keys)
        _refuse_composite_with_relations(plans[name])
    for move in moves:
        _refuse_unsimulated(move)
    return plans


def _data_step_only(change: Change) -> set[str]:
    """Tables only a data step writes: the change does not change their schema, so no worker
    writes them (as an Alembic revision's plain tables, phases.tables_beyond_plans)."""
    from ..ops import DataStepOp

    stepped = {t for op in change.ops if isinstance(op, DataStepOp) for t in op.tables()}
    return stepped - {t for op in change.ops if not isinstance(op, DataStepOp) for t in op.tables()}


def _is_parent(metadata: sa.MetaData, name: str, names: list[str]) -> bool:
    return any(key.column.table.name == name for other in names if other != name and other in metadata.tables
               for key in metadata.tables[other].foreign_keys)


def _refuse_unsimulated(move: MoveRule) -> None:
    if move.source_key == move.source_pk:
        raise CrossfadeError(f"the simulator verifies a move_column whose foreign key is in the moved column's table "
                             f"({move.source} -> {move.target}); this one's is in {move.target} "
                             "(tests/test_move_column.py covers that shape)")


def _linked_shape(metadata: sa.MetaData, name: str, links: list[LinkRule]) -> Shape:
    """Release N+1's shape of table `name`, as the links from it say: a mirror link gives the
    table its new name; any other link keeps some columns in the target, row for row."""
    main = name
    extensions = []
    for link in links:
        if not isinstance(link, LinkRule):  # a new kind of relation: a new kind of shape here
            raise CrossfadeError(f"the simulator cannot verify a {type(link).__name__} "
                                 f"({link.source} -> {link.target}) yet")
        if link.mirror:
            main = link.target
        else:
            target = _table(metadata, link.target, RELEASE_N1)
            extensions.append(Extension(target, link.key, link.key, {c: c for c in link.columns}))
    shape = Shape(_table(metadata, main, RELEASE_N1), tuple(extensions))
    names = shape.column_names()
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise CrossfadeError(f"release N+1's metadata has {', '.join(twice)} in {main!r} and in "
                             f"{', '.join(e.table.name for e in extensions)}; the change moves them")
    return shape


def release_names(plans: Mapping[str, TablePlan], release: str) -> set[str]:
    """The tables a release stores the plans' logical tables in."""
    return {name for plan in plans.values() for name in plan.table_names(release)}


def _table(metadata: sa.MetaData, name: str, release: str) -> sa.Table:
    if name not in metadata.tables:
        raise CrossfadeError(f"release {release}'s metadata has no table {name!r}")
    return metadata.tables[name]


def _shared_key(name: str, shapes: dict[str, Shape]) -> tuple[str, ...]:
    keys = {release: [c.name for c in shape.main.primary_key.columns] for release, shape in shapes.items()}
    n, n1 = keys[RELEASE_N], keys[RELEASE_N1]
    if not n or n != n1:
        raise CrossfadeError(f"the simulator needs table {name!r} to keep its primary key in both "
                             f"releases (release N: {n}, release N+1: {n1})")
    return tuple(n)


def _refuse_composite_with_relations(plan: TablePlan) -> None:
    """A composite key is written and read row by row; a table whose rows other tables hang off
    by that key (an extension, a move, a link) is not simulated with one yet."""
    extensions = any(shape.extensions for shape in plan.shapes.values())
    if plan.composite and (extensions or plan.links or plan.moves):
        raise CrossfadeError(f"the simulator verifies table {plan.name!r} with its composite primary key "
                             f"({', '.join(plan.keys)}) only where no other table's rows hang off that key")
