"""Work migrate runs in Python: Python backfills (compute_column) and data steps (data_step).

No trigger can compute a value only application code knows (Keystone's credential encryption), so
these run from crossfade's own session, never from a trigger:

- a Python backfill walks the table in the backfill's keyed batches (backfill.py: resumable, one
  short transaction per batch, its checkpoint saved in it). Each batch reads the rows whose new
  columns are all NULL (locking them where the database can), calls the user's callable once
  with the batch's rows and writes what it returns, again only where the new columns are still
  NULL. A kill mid-batch rolls the batch back; a rerun starts after the last committed one, and a
  row already computed (or written by release N+1) is never computed again.
- a data step runs the user's callable (or SQL) once, in one transaction that also records it
  done: a kill during it undoes it, a rerun runs it again, a finished step never runs twice.

Both write past the change's table blocks (block_writes with insert= / update= / delete=): on
PostgreSQL and MySQL/MariaDB the session is marked (`TriggerDialect.writing_guard`); SQLite has no
session mark a trigger can read, so the transaction drops the table's blocking triggers and puts
them back before it commits, which no other writer can see (SQLite has one writer at a time).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from .dialects.base import DbObject, TriggerDialect
from .errors import CrossfadeError
from .sync import TableSync, all_null

Compute = Callable[[list[Any]], Sequence[Any]]


class ComputeError(CrossfadeError):
    """The user's callable for a Python backfill returned something crossfade cannot write."""


@dataclass(frozen=True)
class PythonBackfill:
    """Fill `table.columns` (all NULL until then) with `compute(rows)`, batch by batch; each row
    holds the table's key and the `reads` columns."""

    table: str
    columns: tuple[str, ...]
    reads: tuple[str, ...]
    compute: Compute

    @property
    def name(self) -> str:
        return f"{self.table} (computed {', '.join(self.columns)})"


@dataclass(frozen=True)
class DataStep:
    """A migrate step that runs `run(connection)` (or executes `run` when it is SQL) once, in one
    transaction. `tables`: the tables it writes, whose blocks it passes."""

    name: str
    run: Callable[[sa.Connection], Any] | str | sa.Executable
    tables: tuple[str, ...] = ()

    @property
    def checkpoint_key(self) -> str:
        return f"data step: {self.name}"

    def describe_run(self) -> str:
        if callable(self.run):
            # A name, never a repr: the plan must read the same on every run.
            return f"Python callable {getattr(self.run, '__qualname__', type(self.run).__qualname__)}"
        return "SQL"

    def statement(self) -> sa.Executable | None:
        """The step's SQL as a statement (a string becomes sa.text), None for a callable."""
        if callable(self.run):
            return None
        return sa.text(self.run) if isinstance(self.run, str) else self.run

    def execute(self, conn: sa.Connection) -> None:
        statement = self.statement()
        if statement is None:
            self.run(conn)
        else:
            conn.execute(statement)


# --- the Python backfill's batch ---------------------------------------------------------------

def read_batch(table: sa.Table, work: PythonBackfill, key: list, where: sa.ColumnElement) -> sa.Select:
    """The batch's rows still to compute, locked against a concurrent writer (FOR UPDATE; SQLite,
    one writer at a time, has no such clause and needs none)."""
    columns = [*key, *[table.c[c] for c in work.reads if c not in {k.name for k in key}]]
    new = [table.c[c] for c in work.columns]
    return sa.select(*columns).where(where, all_null(new)).order_by(*key).with_for_update()


def write_batch(table: sa.Table, work: PythonBackfill, key: list) -> sa.Update:
    """One row's UPDATE (run for every row of the batch at once), only while it is still NULL."""
    new = [table.c[c] for c in work.columns]
    match = [k == sa.bindparam(f"crossfade_key_{i}") for i, k in enumerate(key)]
    return (sa.update(table).where(*match, all_null(new))
            .values({c: sa.bindparam(f"crossfade_new_{i}") for i, c in enumerate(work.columns)}))


def write_rows(conn: sa.Connection, table: sa.Table, work: PythonBackfill, key: list, rows: list,
               values: list[tuple], per_statement: int = 1) -> None:
    """The batch's values, each row only while its new columns are still NULL: one UPDATE per
    row (executemany: psycopg pipelines them, SQLite runs them in process), or, where the dialect
    says a statement per row costs a round trip each (MySQL), one UPDATE per slice of
    `per_statement` rows (`CASE key WHEN ... THEN ...`, a one-column key)."""
    if len(key) != 1 or per_statement <= 1:
        conn.execute(write_batch(table, work, key), [
            {**{f"crossfade_key_{i}": row[i] for i in range(len(key))},
             **{f"crossfade_new_{i}": v for i, v in enumerate(value)}} for row, value in zip(rows, values)])
        return
    for start in range(0, len(rows), per_statement):
        keys = [row[0] for row in rows[start:start + per_statement]]
        params = {f"k{r}": k for r, k in enumerate(keys)}
        params.update({f"v{r}_{i}": v for r, value in enumerate(values[start:start + per_statement])
                       for i, v in enumerate(value)})
        conn.execute(_slice_update(table, work.columns, key[0].name, len(keys)), params)


@functools.lru_cache(maxsize=64)
def _slice_update(table: sa.Table, columns: tuple[str, ...], key_name: str, rows: int) -> sa.Update:
    """The UPDATE of `rows` rows, with bind parameters k<row> and v<row>_<column>: built once per
    table and size, so every full slice is the same statement (compiled once, by SQLAlchemy and
    the driver alike)."""
    key = table.c[key_name]
    new = [table.c[c] for c in columns]
    keys = [sa.bindparam(f"k{r}", type_=key.type) for r in range(rows)]
    cases = {column.name: sa.case({keys[r]: sa.bindparam(f"v{r}_{i}", type_=column.type) for r in range(rows)},
                                  value=key)
             for i, column in enumerate(new)}
    return sa.update(table).where(key.in_(keys), all_null(new)).values(cases)


def computed_values(work: PythonBackfill, rows: list) -> list[tuple]:
    """The callable's values for `rows`, one tuple per row (one value per new column)."""
    try:
        values = list(work.compute(list(rows)))
    except CrossfadeError:
        raise
    except Exception as exc:
        raise ComputeError(f"compute for {work.table}.{', '.join(work.columns)} raised "
                           f"{type(exc).__name__}: {exc}") from exc
    if len(values) != len(rows):
        raise ComputeError(f"compute for {work.table}.{', '.join(work.columns)} returned {len(values)} value(s) "
                           f"for a batch of {len(rows)} row(s): return one per row, in order")
    shaped = []
    for value in values:
        value = value if len(work.columns) > 1 else (value,)
        if not isinstance(value, (tuple, list)) or len(value) != len(work.columns):
            raise ComputeError(f"compute for {work.table}: each row's value must be a tuple of "
                               f"{len(work.columns)} ({', '.join(work.columns)}), got {value!r}")
        shaped.append(tuple(value))
    return shaped


def batch_writer(table: sa.Table, work: PythonBackfill, key: list, unblocked: list[DbObject],
                 dialect: TriggerDialect) -> Callable[[sa.ColumnElement], list]:
    """The backfill Job's statements: one callable per batch that reads, computes and writes."""
    def statements(where: sa.ColumnElement) -> list:
        def run(conn: sa.Connection) -> None:
            dialect.hold_write_lock(conn)
            rows = conn.execute(read_batch(table, work, key, where)).all()
            if not rows:
                return
            values = computed_values(work, rows)
            with past_blocks(conn, dialect, unblocked):
                write_rows(conn, table, work, key, rows, values, dialect.rows_per_update)
        run.sql = read_batch(table, work, key, where)  # what `plan --sql` shows
        return [run]
    return statements


def compute_all(conn: sa.Connection, table: sa.Table, work: PythonBackfill, key: list, batch_rows: int = 1000,
                per_statement: int = 1) -> int:
    """The offline path (no triggers, no other writer): every row still to compute, in slices of
    `batch_rows` inside the caller's transaction. Returns the rows written."""
    written, last = 0, None
    while True:
        where = sa.true() if last is None else _after(key, last)
        rows = conn.execute(read_batch(table, work, key, where).limit(batch_rows)).all()
        if not rows:
            return written
        write_rows(conn, table, work, key, rows, computed_values(work, rows), per_statement)
        written += len(rows)
        last = tuple(rows[-1][:len(key)])


def _after(key: list, last: tuple) -> sa.ColumnElement:
    if len(key) == 1:
        return key[0] > last[0]
    return sa.tuple_(*key) > sa.tuple_(*[sa.literal(v) for v in last])


# --- writing past the change's blocks --------------------------------------------------------

def blocking_objects(dialect: TriggerDialect, syncs: dict[str, TableSync], tables: Sequence[str],
                     events: Sequence[str] = ("insert", "update", "delete")) -> list[DbObject]:
    """The triggers a crossfade write must take down for its transaction: on SQLite only (the
    others read the session's mark), those of `tables` that carry a table's block, for the
    `events` the write makes (a Python backfill only updates)."""
    if dialect.crossfade_writing_sql() is not None:
        return []
    found = []
    for name in tables:
        ts = syncs.get(name)
        if ts is not None and any(b.whole_table for b in ts.blocks):
            wanted = {dialect.object_name(name, event) for event in events}
            found += [o for o in dialect.trigger_objects(ts) if o.kind == "trigger" and o.name in wanted]
    return found


class past_blocks:
    """Inside the caller's transaction: drop `objects` (SQLite's blocking triggers) and put them
    back exactly as they were before the transaction commits."""

    def __init__(self, conn: sa.Connection, dialect: TriggerDialect, objects: list[DbObject]):
        self.conn, self.dialect, self.objects = conn, dialect, objects

    def __enter__(self):
        for obj in self.objects:
            self.conn.exec_driver_sql(self.dialect.drop_sql(obj.kind, obj.name, obj.table))
        return self.conn

    def __exit__(self, kind, error, trace) -> None:
        if kind is not None:
            return  # the transaction rolls back, the drops with it
        for obj in self.objects:
            for statement in obj.create:
                self.conn.exec_driver_sql(statement)


def run_data_step(conn: sa.Connection, dialect: TriggerDialect, step: DataStep, unblocked: list[DbObject]) -> None:
    """The step's work inside the caller's transaction, marked as crossfade's own writes."""
    dialect.hold_write_lock(conn)
    on, _ = dialect.writing_guard()
    for statement in on:
        conn.exec_driver_sql(statement)
    with past_blocks(conn, dialect, unblocked):
        step.execute(conn)
