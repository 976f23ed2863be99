"""SQLite's triggers for derive_column (crossfade/derived.py).

AFTER triggers, the table already holding the write: each source's INSERT / UPDATE OF its columns /
DELETE recomputes the target rows it belongs to (and belonged to), written only where it differs.
(The value is written out twice, in SET and WHERE: SQLite's UPDATE ... FROM a one-row subquery,
which computes it once, measured 1.8 times slower.) The target's own AFTER INSERT / UPDATE OF its key
or the column puts the derived value back WHEN the row holds another, so the write a source's
trigger makes (already the derived value) fires nothing further: the WHEN clauses end the
recursion, with recursive_triggers on or off. One writer at a time: no locking is needed.
"""

from __future__ import annotations

import sqlalchemy as sa

from ..derived import DeriveStatements
from ..expressions import TriggerRow, is_distinct


def objects(dialect, derive: DeriveStatements) -> list:
    found = []
    for table in derive.rule.source_tables():
        found += _source_objects(dialect, derive, table)
    return found + _target_objects(dialect, derive)


def _source_objects(dialect, derive: DeriveStatements, table: str) -> list:
    s = derive.sources[table]
    new, old = TriggerRow(s, "NEW"), TriggerRow(s, "OLD")
    mine = [source for source in derive.rule.sources if source.table == table]
    vias = list(dict.fromkeys(source.via for source in mine))
    watched = list(dict.fromkeys([*vias, *(source.column for source in mine)]))
    insert = [derive.refresh(new.c[v]) for v in vias]
    delete = [derive.refresh(old.c[v]) for v in vias]
    # A row that moved leaves its old parent too (skipped where it stayed: the same work twice).
    update = insert + [derive.refresh(old.c[v]).where(is_distinct(new.c[v], old.c[v]))
                       for v in vias]
    changed = sa.or_(*[is_distinct(new.c[c], old.c[c]) for c in watched])
    return [dialect._trigger(table, "derive_insert", "AFTER INSERT", insert),
            dialect._trigger(table, "derive_update", "AFTER UPDATE OF " + ", ".join(dialect.quote(c) for c in watched),
                             update, changed),
            dialect._trigger(table, "derive_delete", "AFTER DELETE", delete)]


def _target_objects(dialect, derive: DeriveStatements) -> list:
    rule, t = derive.rule, derive.t
    new = TriggerRow(t, "NEW")
    value = derive.value_for(new.c[rule.target_key])
    differs = is_distinct(new.c[rule.column], value)
    put_back = [sa.update(t).where(t.c[rule.target_key] == new.c[rule.target_key]).values({rule.column: value})]
    watched = ", ".join(dialect.quote(c) for c in (rule.target_key, rule.column))
    return [dialect._trigger(rule.target, "derive_insert", "AFTER INSERT", put_back, differs),
            dialect._trigger(rule.target, "derive_update", f"AFTER UPDATE OF {watched}", put_back, differs)]
