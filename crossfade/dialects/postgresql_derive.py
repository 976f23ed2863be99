"""PostgreSQL's triggers for derive_column (crossfade/derived.py).

Each source table: one function, AFTER INSERT / UPDATE OF its columns / DELETE, row by row. It
locks the target row (FOR NO KEY UPDATE, which a child's foreign-key check does not wait for),
then recomputes its value in a fresh statement: under READ COMMITTED each statement of a PL/pgSQL
function takes a new snapshot, so a second writer of the same target row's sources, granted the
lock after the first committed, reads the first's row. AFTER, not BEFORE: an INSERT that ON
CONFLICT skips its row fires no AFTER trigger. The write of the target runs under the guard
(`crossfade.link`, transaction-local), so the target's own trigger does not compute it again.

The target: BEFORE INSERT / UPDATE OF its key or the column, NEW.column := the derived value.

What a row costs: each statement a function runs gets an executor of its own, so the guard is
set by assignment (PL/pgSQL evaluates it itself; a PERFORM is a query), and the target's trigger
has no WHEN clause (parsed again for every executor that writes the target, i.e. every row a
source's trigger writes); its function tests the guard and the columns first thing instead.
"""

from __future__ import annotations

import sqlalchemy as sa

from ..derived import DeriveStatements
from ..expressions import TriggerRow, is_distinct
from .base import DbObject

GUARD = "coalesce(current_setting('crossfade.link', true), '') = 'on'"
SET = "crossfade_set"  # the variable the guard's assignments write (set_config returns a value)


def objects(dialect, derive: DeriveStatements) -> list:
    found = []
    for table in derive.rule.source_tables():
        found += _source_objects(dialect, derive, table)
    return found + _target_objects(dialect, derive)


def _refresh(dialect, derive: DeriveStatements, key) -> list[str]:
    lock = dialect.compile(derive.lock_target(key))
    update = dialect.compile(derive.refresh(key, from_subquery=True))
    return [f"PERFORM {lock[len('SELECT '):]};", f"{update};"]


def _guarded(statements: list[str]) -> list[str]:
    """dialect._guarded's statements, the setting assigned instead of PERFORMed."""
    return [f"{SET} := set_config('crossfade.link', 'on', true);", *statements,
            f"{SET} := set_config('crossfade.link', '', true);"]


def _source_objects(dialect, derive: DeriveStatements, table: str) -> list:
    s = derive.sources[table]
    new, old = TriggerRow(s, "NEW"), TriggerRow(s, "OLD")
    mine = [source for source in derive.rule.sources if source.table == table]
    vias = list(dict.fromkeys(source.via for source in mine))
    watched = list(dict.fromkeys([*vias, *(source.column for source in mine)]))
    moved = sa.or_(*[is_distinct(new.c[v], old.c[v]) for v in vias])
    update = [line for via in vias for line in _refresh(dialect, derive, new.c[via])]
    update += dialect._if(moved, [line for via in vias for line in _refresh(dialect, derive, old.c[via])])
    body = [
        "IF TG_OP = 'INSERT' THEN",
        *dialect._indent(_guarded([line for via in vias for line in _refresh(dialect, derive, new.c[via])])),
        "ELSIF TG_OP = 'DELETE' THEN",
        *dialect._indent(_guarded([line for via in vias for line in _refresh(dialect, derive, old.c[via])])),
        "ELSE",
        *dialect._indent(_guarded(update)),
        "END IF;",
        "RETURN NULL;",
    ]
    function = dialect.object_name(table, "derive")
    result = [_function(dialect, function, table, body, (f"{SET} text",))]
    changed = sa.or_(*[is_distinct(new.c[c], old.c[c]) for c in watched])
    events = (("derive_insert", "INSERT", None), ("derive_delete", "DELETE", None),
              ("derive_update", f"UPDATE OF {', '.join(dialect.quote(c) for c in watched)}", changed))
    for suffix, event, when in events:
        # A WHEN here costs once per statement: AFTER triggers fire from the writer's own executor.
        when_sql = f"\nWHEN ({dialect.compile(when)})" if when is not None else ""
        result.append(dialect._trigger(dialect.object_name(table, suffix), table,
                                       f"AFTER {event} ON {dialect.qualified(table)}\nFOR EACH ROW{when_sql}\n"
                                       f"EXECUTE FUNCTION {dialect.qualified(function)}()"))
    return result


def _target_objects(dialect, derive: DeriveStatements) -> list:
    rule, t = derive.rule, derive.t
    new, old = TriggerRow(t, "NEW"), TriggerRow(t, "OLD")
    watched = (rule.target_key, rule.column)
    unchanged = sa.and_(*[new.c[c].is_not_distinct_from(old.c[c]) for c in watched])
    body = [
        # The guard: a source's trigger (or the backfill) is writing the value it computed.
        f"IF {GUARD} OR (TG_OP = 'UPDATE' AND {dialect.compile(unchanged)}) THEN",
        "  RETURN NEW;",
        "END IF;",
        *dialect._assign_all(new, (rule.column,), (derive.value_for(new.c[rule.target_key]),)),
        "RETURN NEW;",
    ]
    function = dialect.object_name(rule.target, "derive")
    result = [_function(dialect, function, rule.target, body)]
    events = (("derive_insert", "INSERT"),
              ("derive_update", f"UPDATE OF {', '.join(dialect.quote(c) for c in watched)}"))
    for suffix, event in events:
        result.append(dialect._trigger(dialect.object_name(rule.target, suffix), rule.target,
                                       f"BEFORE {event} ON {dialect.qualified(rule.target)}\nFOR EACH ROW\n"
                                       f"EXECUTE FUNCTION {dialect.qualified(function)}()"))
    return result


def _function(dialect, name: str, table: str, body: list[str], variables: tuple[str, ...] = ()) -> DbObject:
    return DbObject("function", name, table, (dialect._function_sql(name, body, variables=variables),))
