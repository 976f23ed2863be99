"""Change: an id and an ordered list of ops, merged per table into one set of sync rules."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import sqlalchemy as sa

from .ddl import Intent, SetDefault, SetNullable, SwapStandIn, apply_to_schema
from .derived import DeriveRule
from .errors import ColumnAlreadySyncedError, GeneratedColumnError, TableAlreadyLinkedError, ValidationError
from .ops.base import Op
from .schema import Schema, is_generated
from .sync import LinkRule, MoveRule, TableSync

# Where a trigger can tell release N+1's connections (a session setting or variable).
IDENTIFYING_DIALECTS = ("postgresql", "mysql", "mariadb")


class Change:
    """A schema change declared once; crossfade runs it in expand / migrate / contract."""

    def __init__(self, *ops: Op, id: str | None = None, schema: str | None = None,
                 new_release_identified: bool = False):
        """`schema`: the database schema (PostgreSQL) the ops' tables are in; by default the
        one the session's search_path finds them in. `new_release_identified`: release N+1 calls
        `crossfade.identify_new_release(engine)`, so the triggers know its writes (NULLs included)
        and it may start right after expand on PostgreSQL and MySQL/MariaDB; otherwise it starts
        after migrate (DESIGN 2)."""
        if not ops:
            raise ValidationError("a Change needs at least one operation")
        for op in ops:
            if not isinstance(op, Op):
                raise ValidationError(f"{op!r} is not a crossfade operation (use crossfade.ops)")
        if schema is not None and (not isinstance(schema, str) or not schema):
            raise ValidationError(f"schema {schema!r} must be a non-empty name")
        self.ops = tuple(ops)
        self.schema = schema
        self.id = id or _default_id(self.ops, schema)
        self.new_release_identified = bool(new_release_identified)
        if not re.fullmatch(r"[A-Za-z0-9_.:-]{1,200}", self.id):
            raise ValidationError(f"change id {self.id!r} must be 1-200 letters, digits or _.:-")

    def __repr__(self) -> str:
        in_schema = f", schema={self.schema!r}" if self.schema is not None else ""
        return f"Change(id={self.id!r}{in_schema}, ops=[{', '.join(op.describe() for op in self.ops)}])"

    def identified_on(self, dialect: str) -> bool:
        """Release N+1 identifies its writes, this database can tell (SQLite cannot), and every
        op's triggers follow the mark (move_column's do not)."""
        return (self.new_release_identified and dialect in IDENTIFYING_DIALECTS
                and all(op.follows_identification for op in self.ops))

    def new_release_starts_after(self, dialect: str) -> str:
        """The phase after which release N+1 may start on `dialect` (a dialect name such as
        engine.dialect.name): "expand" with writer identification, else "migrate" (before the
        backfill reaches a row, a NULL it writes there would read as "not derived yet")."""
        return "expand" if self.identified_on(dialect) else "migrate"

    def final_new_columns(self, schema: Schema) -> dict[tuple[str, str], sa.Column]:
        """(table, column) -> the new column as release N+1 declares it, for two-way groups."""
        return {(op.table, c.name): c for op in self.ops for c in op.final_columns(schema)}

    def tables(self) -> set[str]:
        return {table for op in self.ops for table in op.tables()}

    def trigger_drop_order(self, tables: Iterable[str]) -> list[str]:
        """`tables` in the order their triggers go: a cross-table op's source table (release N's
        side) before its target. Each table's triggers go in a step of their own, and in between
        the source's triggers would otherwise still copy release N's stale values into release
        N+1's table (a row inserted there pulling an old value and pushing it on)."""
        targets = {table for op in self.ops for table in op.tables()[1:]}
        return sorted(tables, key=lambda table: (table in targets, table))

    def validate(self, schema: Schema) -> None:
        """Typed errors for anything that cannot work, checked against release N's schema as the
        earlier ops of the change leave it (an index or a check may name a column they add)."""
        # Two ops adding one column would be silently merged into whichever expand adds first
        # (a column without a sync rule claims nothing below), so refuse that first.
        added: set[tuple[str, str]] = set()
        for table, column in self.added_columns():
            _claim(added, table, (column,))
        self._refuse_shared_exclusive_tables()
        for op in self.ops:
            op.validate_in(self)
        progressive = schema.copy()
        for op in self.ops:
            op.validate(progressive)
            for intent in op.expand(progressive):
                apply_to_schema(progressive, intent)
        claimed = self._claimed_columns(schema)  # raises when two ops fight over one column
        for link in self.links(progressive):
            if isinstance(link, MoveRule):
                for pair in [(link.source, c) for c in link.source_columns]:
                    if pair in claimed:
                        raise ColumnAlreadySyncedError(*pair)
        self._refuse_generated_writes(progressive, claimed)

    def _refuse_generated_writes(self, schema: Schema, claimed: set[tuple[str, str]]) -> None:
        """No trigger may write a generated column: the database refuses the writer's statement."""
        written = {pair: "its sync triggers" for pair in claimed}
        for link in self.links(schema):
            if isinstance(link, DeriveRule):
                written[(link.target, link.column)] = "its cross-table triggers"
                continue
            columns = link.source_columns if isinstance(link, MoveRule) else link.columns
            written.update({(link.source, c): "its cross-table triggers" for c in columns})
        for (table, column), writer in sorted(written.items()):
            if schema.has_column(table, column) and is_generated(schema.column(table, column)):
                raise GeneratedColumnError(table, column, f"{writer} ({self.id})")

    def _refuse_shared_exclusive_tables(self) -> None:
        for op in self.ops:
            if not op.exclusive():
                continue
            for other in self.ops:
                shared = set(op.tables()) & set(other.tables())
                if other is not op and shared:
                    raise ValidationError(f"{op.describe()} must be the only op on table {min(shared)!r} in "
                                          f"its change ({other.describe()} touches it too): put them in two changes")

    def links(self, schema: Schema) -> list[LinkRule | MoveRule]:
        """The cross-table rules (split_table, rename_table, move_column), each table in at most
        one; moves across the same relation merge into one rule (one trigger per table)."""
        links: list[LinkRule | MoveRule] = []
        for op in self.ops:
            sync = op.sync(schema)
            links += sync.links
            links += sync.derives
            for move in sync.moves:
                same = next((i for i, r in enumerate(links)
                             if isinstance(r, MoveRule) and r.relation() == move.relation()), None)
                if same is None:
                    links.append(move)
                else:
                    links[same] = links[same].merged(move)
        linked: dict[str, LinkRule | MoveRule] = {}
        for link in links:
            for table in link.tables():
                if table in linked:
                    raise TableAlreadyLinkedError(table)
                linked[table] = link
        return links

    def _claimed_columns(self, schema: Schema) -> set[tuple[str, str]]:
        claimed: set[tuple[str, str]] = set()
        self.table_syncs(schema, claimed=claimed)
        return claimed

    def moves_to_finish(self, schema: Schema) -> list[MoveRule]:
        """The moves whose source columns are still there (contract has not dropped them yet)."""
        return [move for op in self.ops for move in op.moves(schema)
                if all(schema.has_column(move.source, c) for c in move.source_columns)]

    def table_syncs(self, schema: Schema, relaxed: Iterable[Sequence[str]] = (),
                    claimed: set[tuple[str, str]] | None = None) -> dict[str, TableSync]:
        """The sync rules of all ops, merged into one TableSync per table (one trigger each).

        `relaxed`: (table, column) pairs whose NOT NULL expand relaxed; triggers re-impose it.
        Each is marked `identified` when release N+1 identifies its writes (the dialects that
        cannot tell ignore the mark).
        """
        merged: dict[str, TableSync] = {}
        claimed = set() if claimed is None else claimed
        for op in self.ops:
            sync = op.sync(schema)
            if not sync.groups and not sync.fills and not sync.blocks:
                continue
            table_sync = merged.setdefault(op.table, TableSync(schema.table(op.table),
                                                               identified=self.new_release_identified))
            for group in sync.groups:
                written = group.new + (group.old if group.down is not None else ())
                _claim(claimed, group.table, written)
                table_sync.groups.append(group)
            for fill in sync.fills:
                _claim(claimed, fill.table, (fill.column,))
                table_sync.fills.append(fill)
            for block in sync.blocks:
                if not block.whole_table:  # a table's block writes no column
                    _claim(claimed, block.table, (block.column,))
                table_sync.blocks.append(block)
        for table, column in relaxed:
            if table in merged:
                merged[table].required.append(column)
        return merged

    def migrate_work(self, schema: Schema) -> list:
        """The ops' Python backfills and data steps (compute.py), in the order declared."""
        return [work for op in self.ops for work in op.migrate_work(schema)]

    def expand_intents(self, schema: Schema) -> list[Intent]:
        return [intent for op in self.ops for intent in op.expand(schema)]

    def contract_intents(self, schema: Schema) -> list[Intent]:
        return [intent for op in self.ops for intent in op.contract(schema)]

    def rollback_intents(self, schema: Schema) -> list[Intent]:
        return [intent for op in reversed(self.ops) for intent in op.rollback(schema)]

    def before_dropping_triggers(self, schema: Schema) -> list[Intent]:
        """Release N+1 keeps inserting while contract runs, and once the triggers are gone nothing
        fills the old columns (still there until dropped, maybe behind a lock wait) nor the new
        ones N+1 leaves to their server default. So first the new columns get their defaults and
        the old NOT NULL columns to be dropped accept NULL; N+1's writes never fail in between."""
        # A stand-in is swapped for its table while its sync still runs (SQLite's mirror would
        # otherwise miss the writes in between).
        intents = [i for i in self.contract_intents(schema) if isinstance(i, (SetDefault, SwapStandIn))]
        return intents + [SetNullable(t, c, True) for t, c in self.dropped_columns()
                          if schema.has_column(t, c) and schema.needs_a_value(t, c)]

    def after_dropping_triggers(self, schema: Schema) -> list[Intent]:
        """The rest of contract: its defaults were already set before the triggers went."""
        return [i for i in self.contract_intents(schema) if not isinstance(i, (SetDefault, SwapStandIn))]

    def not_null_at_contract(self, schema: Schema) -> list[tuple[str, str]]:
        return [(i.table, i.column) for i in self.contract_intents(schema)
                if isinstance(i, SetNullable) and not i.nullable]

    def added_columns(self) -> list[tuple[str, str]]:
        return [pair for op in self.ops for pair in op.added()]

    def dropped_columns(self) -> list[tuple[str, str]]:
        return [pair for op in self.ops for pair in op.dropped()]


def _claim(claimed: set[tuple[str, str]], table: str, columns: tuple[str, ...]) -> None:
    """A column may be written by at most one sync rule, or two triggers' writes would race."""
    for column in columns:
        if (table, column) in claimed:
            raise ColumnAlreadySyncedError(table, column)
        claimed.add((table, column))


def _default_id(ops: tuple[Op, ...], schema: str | None = None) -> str:
    words = "-".join(op.describe().replace(" -> ", "-to-").replace(" ", "-") for op in ops)
    if schema is not None:  # the same ops on a same-named table of another schema are another change
        words = f"{schema}.{words}"
    return re.sub(r"[^A-Za-z0-9_.:-]", "_", words)[:200]
