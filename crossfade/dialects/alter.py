"""One ALTER TABLE per table and phase where the database allows it.

On Galera every DDL statement runs in total order on every node and aborts the conflicting
transactions elsewhere (DESIGN section 8): each statement crossfade saves is a burst of deadlocks
the application does not see. So a dialect that can say an intent as one clause of an ALTER TABLE
(`Clause`) lets consecutive clauses on one table share one statement. The clauses are written to
be idempotent (IF [NOT] EXISTS, MODIFY), so a rerun after a crash, or after a half-done phase of an
older crossfade that ran them one by one, simply runs the whole statement again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa

from ..ddl import Step

# How an ALTER runs, cheapest first; a statement runs as its dearest clause needs.
INSTANT, INPLACE, COPY = "instant", "inplace", "copy"
_COST = {INSTANT: 0, INPLACE: 1, COPY: 2}


@dataclass
class Clause:
    """One action of an ALTER TABLE, e.g. `ADD COLUMN IF NOT EXISTS x INT`."""

    table: str
    text: str
    name: str  # what the intent says (`add column images.visibility`)
    touches: str  # the column or index it acts on: one statement never acts twice on one name
    how: str  # INSTANT, INPLACE or COPY
    is_done: Callable[[sa.Connection], bool] | None = None
    locks: str = ""


def merged_step(alter_table: str, clauses: list[Clause], algorithm: Callable[[str], str]) -> Step:
    """One step running `clauses` as one ALTER TABLE; `algorithm(how)` gives its ALGORITHM/LOCK
    suffix. Done when every clause's probe says so (no probe: run again; the clauses are idempotent)."""
    dearest = max(clauses, key=lambda c: _COST[c.how])
    body = f"{alter_table} " + ", ".join(c.text for c in clauses)
    probes = [c.is_done for c in clauses]
    is_done = None if None in probes else (lambda conn: all(probe(conn) for probe in probes))
    step = Step("; ".join(c.name for c in clauses), [body + algorithm(dearest.how)], is_done=is_done,
                locks=dearest.locks, instant=dearest.how == INSTANT)
    if len(clauses) > 1:
        # Some clauses will not share an online ALTER (MariaDB: a table with virtual columns
        # drops a column INPLACE only alone): then one statement each, each online.
        step.fallback = [merged_step(alter_table, [clause], algorithm) for clause in clauses]
    elif dearest.how == INSTANT and algorithm(INPLACE) != algorithm(INSTANT):
        # The table refuses INSTANT (ROW_FORMAT=COMPRESSED, ...): online instead.
        step.fallback = [Step(step.name, [body + algorithm(INPLACE)], is_done=is_done, locks=dearest.locks)]
    return step


def group_clauses(clauses: list[Clause], joins: bool) -> list[list[Clause]]:
    """Consecutive clauses on one table, each name acted on once, share a statement (`joins`)."""
    groups: list[list[Clause]] = []
    for clause in clauses:
        last = groups[-1] if groups else None
        if (joins and last and last[0].table == clause.table
                and clause.touches not in {c.touches for c in last}):
            last.append(clause)
        else:
            groups.append([clause])
    return groups


__all__ = ["COPY", "INPLACE", "INSTANT", "Clause", "group_clauses", "merged_step"]
