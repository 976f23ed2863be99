"""MySQL/MariaDB's triggers for derive_column (crossfade/derived.py).

Source tables: BEFORE INSERT / UPDATE / DELETE triggers, each writing the target row first. Its
UPDATE takes the row's exclusive lock before the source row is written, so the foreign-key
check's shared lock on the same row comes after it, in the same transaction: two writers of one
target row's sources take turns instead of deadlocking (each holding the shared lock and waiting
for the exclusive one, as AFTER triggers would). Being BEFORE, the trigger sees the table without
its own write: the OLD row is left out and the NEW value joins in (DeriveStatements.value_for).
Sources are read with locking reads, which see what committed before the lock was granted (a
plain read would see the transaction's snapshot). The target is written under the guard
(`@crossfade_link`, stamped with the statement's start), so its own trigger does not compute
again; a trigger never writes its own table (error 1442).

The target: BEFORE INSERT / UPDATE, NEW.column := the derived value (on UPDATE only when its key
or the column changed).

Each CREATE TRIGGER commits on its own, so expand first installs a placeholder under every source
trigger's name, which sets the target row to NULL ("not derived yet") instead of computing it:
once a real trigger writes a value, every write of every source has a trigger that keeps that
value or forgets it (the backfill fills it), and none can leave it stale.
"""

from __future__ import annotations

import sqlalchemy as sa

from ..derived import DeriveStatements
from ..expressions import TriggerRow


def objects(dialect, derive: DeriveStatements) -> list:
    found = []
    for table in derive.rule.source_tables():
        found += _source_objects(dialect, derive, table)
    return found + _target_objects(dialect, derive)


def placeholders(dialect, derive: DeriveStatements) -> list:
    """The source triggers' stand-ins, each forgetting the target rows its real one would refresh."""
    found = []
    for table in derive.rule.source_tables():
        found += _source_objects(dialect, derive, table, lambda key, without, plus: dialect.compile(derive.forget(key)))
    return found


def _refresher(dialect, derive: DeriveStatements, table: str):
    def refresh(key, without, plus) -> str:
        value = derive.value_for(key, locked=True, firing=table, without=without, plus=plus)
        # An unchanged row is not written by MariaDB: no need to compare first (which would compute twice).
        return dialect.compile(derive.refresh(key, value, only_changes=False))
    return refresh


def _source_objects(dialect, derive: DeriveStatements, table: str, refresh=None) -> list:
    """`refresh(key, without, plus)`: the statement that writes target row `key` (the real one
    computes it from the sources without the OLD row and with the NEW one)."""
    refresh = refresh or _refresher(dialect, derive, table)
    s = derive.sources[table]
    new, old = TriggerRow(s, "NEW"), TriggerRow(s, "OLD")
    mine = [source for source in derive.rule.sources if source.table == table]
    vias = list(dict.fromkeys(source.via for source in mine))
    watched = list(dict.fromkeys([*vias, *(source.column for source in mine)]))
    insert = dialect._writing(*[refresh(new.c[v], None, new) for v in vias])
    delete = dialect._writing(*[refresh(old.c[v], old, None) for v in vias])
    # The row's new parent gains it; its old parent (where it moved) loses it: one guarded block.
    update = [refresh(new.c[v], old, new) for v in vias]
    for via in vias:
        moved = sa.not_(new.c[via].is_not_distinct_from(old.c[via]))
        update.append("\n".join(dialect._if(moved, [refresh(old.c[via], old, None) + ";"])))
    changed = " OR ".join(f"NOT (OLD.{dialect.quote(c)} <=> NEW.{dialect.quote(c)})" for c in watched)
    # No column lists on MariaDB's triggers: the columns are tested first, the guard only then.
    return [dialect._guarded_trigger(table, "derive_update", "BEFORE UPDATE", dialect._writing(*update), changed,
                                     when_first=True),
            dialect._guarded_trigger(table, "derive_insert", "BEFORE INSERT", insert),
            dialect._guarded_trigger(table, "derive_delete", "BEFORE DELETE", delete)]


def _target_objects(dialect, derive: DeriveStatements) -> list:
    rule, t = derive.rule, derive.t
    new = TriggerRow(t, "NEW")
    assign = dialect._assign_all(new, (rule.column,), (derive.value_for(new.c[rule.target_key], locked=True),))
    changed = " OR ".join(f"NOT (OLD.{dialect.quote(c)} <=> NEW.{dialect.quote(c)})"
                          for c in (rule.target_key, rule.column))
    return [dialect._guarded_trigger(rule.target, "derive_update", "BEFORE UPDATE", assign, changed,
                                     when_first=True),
            dialect._guarded_trigger(rule.target, "derive_insert", "BEFORE INSERT", assign)]
