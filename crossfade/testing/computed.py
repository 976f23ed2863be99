"""The simulator's checks for what no trigger does: Python backfills (compute_column), data steps
(data_step) and blocked writes (block_writes). Computed from the database and the journals.

- A Python backfill: once migrate is done, every row holds what the user's callable computes
  from it, unless release N+1 wrote the new columns itself (its own value wins) or release N
  changed a column the callable reads since (a block that lets such updates through, as Keystone's
  did, lets the row drift: that is the block's rule, not the backfill's). No row is left NULL.
- A data step: it ran exactly once by the end of migrate (a step counts as run when its callable
  returned: the simulator runs no kill).
- A blocked write: the block's message, for a kind of write it blocks, by a release it blocks
  (release N only where the change identifies release N+1 and the database can tell), while its
  triggers are installed. Anything else is a refused write like any other.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import sqlalchemy as sa

from ..change import Change
from ..compute import PythonBackfill
from ..ops import BlockWritesOp, ComputeColumnOp, DataStepOp
from .journal import Refusal, Write
from .model import RELEASE_N, RELEASE_N1, TablePlan
from .oracle import Finding, live_tables


def python_backfills(change: Change) -> list[PythonBackfill]:
    return [work for op in change.ops if isinstance(op, ComputeColumnOp) for work in op.migrate_work(None)]


def data_step_names(change: Change) -> list[str]:
    return [op.name for op in change.ops if isinstance(op, DataStepOp)]


def counting_data_steps(change: Change, runs: dict[str, int]) -> Change:
    """The change with each data step's run counted in `runs` (name -> times it ran)."""
    if not data_step_names(change):
        return change

    def counted(op: DataStepOp) -> DataStepOp:
        step = op.migrate_work(None)[0]

        def run(conn: sa.Connection) -> None:
            step.execute(conn)
            runs[op.name] = runs.get(op.name, 0) + 1
        run.__qualname__ = step.describe_run()
        return dataclasses.replace(op, run=run)

    ops = [counted(op) if isinstance(op, DataStepOp) else op for op in change.ops]
    return Change(*ops, id=change.id, schema=change.schema, new_release_identified=change.new_release_identified)


def data_step_findings(change: Change, runs: dict[str, int]) -> list[str]:
    return [f"data step {name!r} ran {runs.get(name, 0)} time(s) by the end of migrate; it must run exactly once"
            for name in data_step_names(change) if runs.get(name, 0) != 1]


def computed_findings(conn: sa.Connection, change: Change, writes: Iterable[Write], *, values: bool) -> list[Finding]:
    """Rows a Python backfill left uncomputed; with `values`, also rows whose computed columns
    differ from what the callable gives for them now."""
    writes = list(writes)
    findings = []
    for work in python_backfills(change):
        table = live_tables(conn, [work.table])[work.table]
        key = list(table.primary_key.columns)
        by_n1 = _keys(writes, work.table, RELEASE_N1, set(work.columns))
        by_n = _keys(writes, work.table, RELEASE_N, set(work.reads))
        reads = [table.c[c] for c in work.reads if c not in {k.name for k in key}]
        rows = conn.execute(sa.select(*key, *reads, *[table.c[c] for c in work.columns]).order_by(*key)).all()
        for row in rows:
            row_key = row[0] if len(key) == 1 else tuple(row[:len(key)])
            if row_key in by_n1:
                continue
            stored = tuple(getattr(row, c) for c in work.columns)
            if all(v is None for v in stored):
                findings.append(Finding(work.table, row_key, f"{', '.join(work.columns)} not computed (all NULL)",
                                        _history(writes, work.table, row_key)))
            elif values and row_key not in by_n:
                wanted = tuple(_computed(work, row))
                if wanted != stored:
                    findings.append(Finding(work.table, row_key, f"{', '.join(work.columns)} hold {stored!r}, "
                                            f"compute gives {wanted!r}", _history(writes, work.table, row_key)))
    return findings


def _computed(work: PythonBackfill, row) -> tuple:
    value = next(iter(work.compute([row])))
    return tuple(value) if len(work.columns) > 1 else (value,)


def _keys(writes: list[Write], table: str, release: str, columns: set[str]) -> set:
    """Keys of `table` rows that `release` inserted, or updated in one of `columns`."""
    return {w.key for w in writes if w.table == table and w.release == release and w.kind != "delete"
            and (w.kind == "insert" or columns & set(w.values))}


def _history(writes: list[Write], table: str, key) -> tuple[str, ...]:
    return tuple(w.describe() for w in sorted(writes, key=lambda w: w.start) if w.table == table and w.key == key)


def declared_refusal(refusal: Refusal, plans: dict[str, TablePlan], change: Change, dialect: str,
                     window: tuple[float | None, float | None]) -> bool:
    """Whether a refused write is one a block declares: its message, a kind of write it blocks, a
    release it blocks, inside the window its triggers were installed in."""
    plan = plans.get(refusal.table)
    if plan is None:
        return False
    installed, dropped = window
    if installed is None or refusal.end < installed or (dropped is not None and refusal.start > dropped):
        return False
    event = refusal.kind.split()[0]
    identified = change.identified_on(dialect)
    for block in plan.blocks:
        if block.message[:60] not in refusal.error or not block.blocks(event):
            continue
        if block.old_release_only and identified and refusal.release == RELEASE_N1:
            continue  # release N+1 identified: the block is not for it
        return True
    return False


def has_work_beyond_triggers(change: Change) -> bool:
    return bool(python_backfills(change) or data_step_names(change))


def blocks_whole_tables(change: Change) -> bool:
    return any(isinstance(op, BlockWritesOp) and op.whole_table for op in change.ops)
