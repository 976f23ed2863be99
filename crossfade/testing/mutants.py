"""Deliberately broken crossfade, to prove the simulator catches what it claims to catch.

Each mutant is a context manager that changes how crossfade builds or runs a change while it is
active (on every dialect), the way a bug in crossfade or a hand-written trigger would:

    with mutants.without_update_down_sync():
        report = verify(change, release_n, release_n1, urls)
    assert not report.results[0].checks["sync law"].ok

Never use them outside tests: they patch crossfade's classes for the whole process.
"""

from __future__ import annotations

from contextlib import contextmanager

import sqlalchemy as sa

from .. import roundtrip
from ..change import Change
from ..derived import DeriveStatements
from ..dialects.base import ProceduralTriggers, TriggerDialect
from ..dialects.mysql import MySQLDialect
from ..dialects.postgresql import PostgresDialect
from ..dialects.sqlite import SQLiteDialect
from ..sync import all_null, changed, conflict, row


@contextmanager
def _patched(owner, name: str, replacement):
    original = owner.__dict__[name]
    setattr(owner, name, replacement)
    try:
        yield original
    finally:
        setattr(owner, name, original)


@contextmanager
def without_update_down_sync():
    """UPDATE triggers forget `A := down(B)`: release N+1's edits never reach release N."""
    def two_way_update(self, group, new, old, identified=False):
        when = sa.and_(changed(group.old, new, old), sa.not_(changed(group.new, new, old)))
        return [f"IF {self.compile(sa.and_(when, conflict(group, new)))} THEN",
                *self._indent(self._assign_all(new, group.new, group.up_exprs(new))), "END IF;"]

    with _patched(ProceduralTriggers, "_two_way_update", two_way_update), \
            _patched(SQLiteDialect, "_update_rules", _dropping_rules(SQLiteDialect._update_rules, "old")):
        yield


@contextmanager
def without_insert_up_sync():
    """INSERT triggers forget `B := up(A)`: release N's new rows stay invisible to release N+1."""
    def insert_program(self, ts):
        new = row(ts.table, "NEW")
        lines = self._fill_program(ts.fills, new)
        for group in ts.ordered_groups():
            if group.down is not None:
                guard = sa.and_(sa.not_(all_null([new.c[n] for n in group.new])), conflict(group, new))
                lines += [f"IF {self.compile(guard)} THEN",
                          *self._indent(self._assign_all(new, group.old, group.down_exprs(new))), "END IF;"]
        return lines

    with _patched(ProceduralTriggers, "insert_program", insert_program), \
            _patched(SQLiteDialect, "_insert_rules", _dropping_rules(SQLiteDialect._insert_rules, "new")):
        yield


@contextmanager
def overwrites_release_n1_updates():
    """UPDATE triggers recompute the new columns from the old ones whenever they fire: release
    N+1's edits keep the law (B is a value of up(A)) but are silently replaced."""
    def two_way_update(self, group, new, old, identified=False):
        return [f"IF {self.compile(sa.or_(changed(group.old, new, old), changed(group.new, new, old)))} THEN",
                *self._indent(self._assign_all(new, group.new, group.up_exprs(new))), "END IF;"]

    def sqlite_rules(self, ts, new, old, now):
        rules = []
        for group in ts.ordered_groups():
            if group.down is not None:
                fired = sa.or_(changed(group.old, new, old), changed(group.new, new, old))
                rules.append((fired, dict(zip(group.new, group.up_exprs(now)))))
        return rules

    with _patched(ProceduralTriggers, "_two_way_update", two_way_update), \
            _patched(SQLiteDialect, "_update_rules", sqlite_rules):
        yield


def _dropping_rules(original, side: str):
    """SQLite's rules minus those that write a two-way group's `side` ("old" or "new")."""
    def rules(self, ts, *args):
        written = [set(getattr(g, side)) for g in ts.groups if g.down is not None]
        return [(guard, sets) for guard, sets in original(self, ts, *args) if set(sets) not in written]
    return rules


@contextmanager
def without_link_down_sync():
    """A cross-table link's triggers on its target (release N+1's table) forget to copy inserted
    and updated values back to the source: release N+1's edits never reach release N. Deletes
    still reach it."""
    def postgresql_programs(self, link):
        *_, delete = original_postgresql(self, link)
        return ["NULL;"], ["NULL;"], delete

    def mysql_programs(self, link):
        programs = original_mysql(self, link)
        return {"INSERT": ("", ["DO 0;"]), "UPDATE": ("", ["DO 0;"]), "DELETE": programs["DELETE"]}

    def sqlite_statements(self, link, side, table, other):
        statements = original_sqlite(self, link, side, table, other)
        if side != "target":
            return statements
        return [(suffix, event, body if event == "DELETE" else ["SELECT 1"]) for suffix, event, body in statements]

    original_postgresql = PostgresDialect._target_programs
    original_mysql = MySQLDialect._target_programs
    original_sqlite = SQLiteDialect._link_statements
    with _patched(PostgresDialect, "_target_programs", postgresql_programs), \
            _patched(MySQLDialect, "_target_programs", mysql_programs), \
            _patched(SQLiteDialect, "_link_statements", sqlite_statements):
        yield


@contextmanager
def ignores_identification():
    """Triggers ignore writer identification: release N+1, started right after expand as the
    change declares, writes NULL in the new columns of a row the backfill has not reached, and the
    triggers take it for "not derived yet" (issue 10's finding 2)."""
    original = Change.table_syncs

    def table_syncs(self, *args, **kwargs):
        syncs = original(self, *args, **kwargs)
        for table_sync in syncs.values():
            table_sync.identified = False
        return syncs

    with _patched(Change, "table_syncs", table_syncs):
        yield


@contextmanager
def past_the_round_trip_law():
    """Install a change whose transforms break down(up(a)) = a, as if forced past the check."""
    with _patched(roundtrip, "check_group", lambda *args, **kwargs: 0):
        yield


@contextmanager
def triggers_left_behind():
    """Contract 'drops' the triggers without dropping them (and their PostgreSQL functions)."""
    with _patched(TriggerDialect, "drop_statements", lambda self, objects: []):
        yield


@contextmanager
def block_not_installed():
    """block_writes installs no trigger: release N's writes that no trigger can compute for (a
    Python backfill's table) go through, and its rows are left uncomputed."""
    from ..ops import BlockWritesOp
    from ..ops.base import Sync

    with _patched(BlockWritesOp, "sync", lambda self, schema: Sync()):
        yield


@contextmanager
def backfill_skips_a_batch():
    """A Python backfill that, resuming, starts one batch too far: every second batch's rows are
    marked done in the checkpoint but never computed."""
    from .. import compute

    def batch_writer(table, work, key, unblocked, dialect):
        statements = original(table, work, key, unblocked, dialect)
        calls = []

        def skipping(where):
            calls.append(where)
            return [] if len(calls) % 2 == 0 else statements(where)
        return skipping

    with _patched(compute, "batch_writer", batch_writer) as original:
        yield


@contextmanager
def data_step_runs_twice():
    """A data step run again although its checkpoint says it is done (a rerun that ignores it)."""
    from ..runner import Runner

    def data_step(self, current, step, unblocked):
        original(self, current, step, unblocked)
        current.checkpoint.pop(step.checkpoint_key, None)
        original(self, current, step, unblocked)

    with _patched(Runner, "_data_step", data_step) as original:
        yield


@contextmanager
def keystones_derive_guard():
    """derive_column's source triggers write the target only WHERE it differs by `<>`, as
    Keystone's hand-written 014 triggers on MySQL and SQLite did (`domain_id <> NEW.domain_id`):
    never true while the target is NULL, so a child row written before the backfill reached its
    user (or for a user without any domain yet) never reaches it."""
    def refresh(self, key, value=None, *, only_changes=True, from_subquery=False):
        t, rule = self.t, self.rule
        value = self.value_for(key) if value is None else value
        if from_subquery:
            value = sa.select(value.label("v")).subquery("crossfade_derived").c.v
        return (sa.update(t).where(t.c[rule.target_key] == key, t.c[rule.column] != value)
                .values({rule.column: value}))

    with _patched(DeriveStatements, "refresh", refresh):
        yield
