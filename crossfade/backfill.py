"""Backfill: fill the new columns of existing rows in short keyed batches, resumably.

Each batch is one short transaction over a key range (the primary key; rowid on SQLite tables
without one). It writes `B := up(A)` only where every column of B is still NULL, so rows release
N+1 already wrote are left alone, and it saves its checkpoint in the same transaction: a crash
loses at most the batch in flight, and a rerun starts after the last committed batch.

By default a batch aims at a duration, not a row count (`AdaptiveBatches`): a writer that needs a
row of the batch in flight waits for its commit, so the batch's duration is the stall it can cause,
whatever the rows cost on this table and machine. `batch_size=N` keeps every batch at N rows.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass

import sqlalchemy as sa

from .dialects.base import TriggerDialect
from .errors import CrossfadeError
from .locking import LockPolicy, retry_when_busy
from .sync import LinkRule, MoveRule, MoveStatements, TableSync, all_null


@dataclass
class Progress:
    table: str
    done: int
    total: int
    batch_size: int = 0  # rows the batch just committed was sized for

    @property
    def fraction(self) -> float:
        return 1.0 if self.total == 0 else min(1.0, self.done / self.total)


SaveCheckpoint = Callable[[sa.Connection, dict], None]

# A writer waits for the batch holding its row (PostgreSQL, MariaDB) or, on SQLite, for the batch
# rounded up to the writer's next try (53 or 78 ms, see below), so the batch's duration bounds
# the stall. Measured with `python benchmarks/backfill.py` (1,000,000 rows, a writer every ~2 ms,
# a loaded 2-core machine that slows some batches 2x): 40 ms batches stalled the writer at most
# 95 ms (PostgreSQL), 73 ms (MariaDB), 81 ms (SQLite), at 1.13x, 1.12x and 2.01x one set-based
# UPDATE; 50 ms batches let SQLite's writer wait 97-142 ms in 4 runs out of 6.
DEFAULT_BATCH_SECONDS = 0.04
FIRST_BATCH_ROWS = 1000  # 5-10 ms here on all three databases; rows 10x heavier still start under 100 ms
MIN_BATCH_ROWS = 10  # below this a batch is all per-transaction overhead
MAX_BATCH_ROWS = 100_000  # bounds one transaction's undo/journal, and the cost of a mis-estimate
MAX_STEP = 2.0  # the next batch is at most twice, and at least half, this one's size

class FixedBatches:
    """`batch_size=N`: every batch is N rows."""

    def __init__(self, rows: int):
        self.rows = rows

    def record(self, seconds: float) -> None:
        pass

    def lost(self) -> None:
        pass  # the operator's size: kept


@dataclass
class AdaptiveBatches:
    """Batches aiming at `seconds` each. After every batch the next size moves halfway
    (geometrically) towards the size that would have taken `seconds`, by at most `max_step`
    either way, within [min_rows, max_rows]: one batch slowed or sped up by the machine moves it
    only part of the way, so the next does not overshoot the target by as much."""

    seconds: float = DEFAULT_BATCH_SECONDS
    rows: int = FIRST_BATCH_ROWS
    min_rows: int = MIN_BATCH_ROWS
    max_rows: int = MAX_BATCH_ROWS
    max_step: float = MAX_STEP

    def record(self, seconds: float) -> None:
        scale = math.sqrt(self.seconds / seconds) if seconds > 0 else self.max_step
        scale = min(self.max_step, max(1 / self.max_step, scale))
        self.rows = max(self.min_rows, min(self.max_rows, round(self.rows * scale)))

    def lost(self) -> None:
        """The batch was failed to break a deadlock (on Galera: it lost certification to another
        node's writes): the next try spans fewer rows, so fewer of them can be in a conflict."""
        self.rows = max(MIN_BATCH_ROWS, self.rows // 2)

    def start_with(self, rows: int | None) -> None:
        """Start at `rows` and stay at or above it however slow batches are (Galera, where a
        batch's time is mostly its commit's replication, not its rows); None: no change."""
        if rows is not None:
            self.rows = min(self.rows, rows)
            self.min_rows = max(self.min_rows, self.rows)


BatchSizer = FixedBatches | AdaptiveBatches


class BackfillOptionError(CrossfadeError, ValueError):
    """Backfill options that make no sense; raised before anything runs."""

    def __init__(self, options: tuple[str, ...], problem: str):
        self.options, self.problem = options, problem
        super().__init__(f"{' and '.join(options)} {problem}")


def check_options(batch_size: int | None = None, batch_seconds: float | None = None,
                  pause: float | None = None) -> None:
    """Raise BackfillOptionError for options that make no sense (None: the default)."""
    if batch_size is not None and batch_seconds is not None:
        raise BackfillOptionError(("batch_size", "batch_seconds"), "cannot both be given: batches have either a "
                                  "fixed number of rows or a target duration")
    if batch_size is not None and not (_is_number(batch_size) and isinstance(batch_size, int) and batch_size >= 1):
        raise BackfillOptionError(("batch_size",), f"must be a whole number of rows, at least 1 (got {batch_size!r})")
    if batch_seconds is not None and not (_is_number(batch_seconds) and batch_seconds > 0):
        raise BackfillOptionError(("batch_seconds",), "must be a positive, finite number of seconds "
                                  f"(got {batch_seconds!r})")
    if pause is not None and not (_is_number(pause) and pause >= 0):
        raise BackfillOptionError(("pause",), f"must be 0 or a positive, finite number of seconds (got {pause!r})")


def batch_sizer(batch_size: int | None = None, batch_seconds: float | None = None) -> BatchSizer:
    """Fixed batches for an explicit `batch_size`, otherwise batches adapting to `batch_seconds`."""
    check_options(batch_size, batch_seconds)
    if batch_size is not None:
        return FixedBatches(batch_size)
    return AdaptiveBatches(DEFAULT_BATCH_SECONDS if batch_seconds is None else batch_seconds)


@dataclass
class Job:
    """One table's backfill: `statements(where)` fill the rows of `table` that `where` picks."""

    name: str
    table: sa.Table
    statements: Callable[[sa.ColumnElement], list]
    guarded: bool = False  # runs with the link triggers switched off (TriggerDialect.link_guard)


def sync_job(ts: TableSync) -> Job:
    return Job(ts.name, ts.table, lambda where: backfill_statements(ts, where))


def link_job(dialect: TriggerDialect, link: LinkRule | MoveRule, source: sa.Table, target: sa.Table) -> Job:
    """A cross-table rule's backfill, batched over the source: a link's target gets a row for
    every source row that should have one; a move's target rows take their source rows' values."""
    if isinstance(link, MoveRule):
        return Job(f"{link.target} (moved from {link.source})", source,
                   MoveStatements(link, source, target).backfill, guarded=True)
    return Job(link.target, source, lambda where: link_statements(dialect, link, source, target, where),
               guarded=True)


def link_statements(dialect: TriggerDialect, link: LinkRule, source: sa.Table, target: sa.Table,
                    where: sa.ColumnElement) -> list[sa.Insert]:
    """INSERT ... SELECT of the missing target rows; a row a trigger inserted meanwhile wins
    (it holds a value written after the SELECT read)."""
    columns = [link.key, *link.columns]
    conditions = [where, ~sa.exists().where(target.c[link.key] == source.c[link.key])]
    if not link.mirror:  # a split's row exists where one of its values is set
        conditions.append(sa.or_(*[source.c[c].is_not(None) for c in link.columns]))
    select = dialect.keep_rows_while_copying(sa.select(*[source.c[c] for c in columns]).where(*conditions), source)
    return [dialect.insert_missing(target, link.key, columns, select)]


def backfill_table(engine: sa.Engine, dialect: TriggerDialect, ts: TableSync | Job, checkpoint: dict,
                   save: SaveCheckpoint, *, batches: BatchSizer | None = None, pause: float | None = None,
                   on_batch: Callable[[Progress], None] | None = None,
                   clock: Callable[[], float] = time.perf_counter,
                   sleep: Callable[[float], None] = time.sleep) -> dict:
    """Run the remaining batches for one table; returns the final checkpoint.

    `pause` is the seconds to sleep after each batch; None rests as the dialect needs (SQLite: long
    enough for a writer waiting on the database lock to get in). `clock` and `sleep` time the batches and the rests.
    """
    check_options(pause=pause)
    ts = sync_job(ts) if isinstance(ts, TableSync) else ts
    batches = batches if batches is not None else batch_sizer()
    table = ts.table
    key = dialect.batch_key(table)
    checkpoint = dict(checkpoint) or {"last": None, "done": 0, "total": None, "complete": False}
    with engine.connect() as conn:
        if checkpoint.get("total") is None:
            checkpoint["total"] = conn.execute(sa.select(sa.func.count()).select_from(table)).scalar()
        if isinstance(batches, AdaptiveBatches):
            batches.start_with(dialect.first_batch_rows(conn))
        # Rows inserted from now on were derived by the triggers: the walk ends at today's last
        # key, or it chases the writers' inserts (on Galera, with small batches, for minutes).
        until = _last_key(conn, table, key)
    started = 0.0  # when the batch's last try began (one_batch)
    while not checkpoint.get("complete"):
        def one_batch(previous: dict = checkpoint):
            nonlocal started
            started = clock()  # a lost try's time is not this batch's: its size was halved for it
            size = batches.rows
            with (engine.connect() as conn, dialect.pinned_batch(conn),
                  _guarded(conn, dialect, ts.guarded) as guard, conn.begin()):
                for setting in guard + dialect.backfill_batch_settings():
                    conn.exec_driver_sql(setting)
                upper = _batch_upper_bound(conn, table, key, previous["last"], size, until)
                for statement in ts.statements(_key_range(key, previous["last"], upper or until)):
                    conn.execute(statement)
                reached = {
                    "last": list(upper) if upper is not None else previous["last"],
                    "done": previous["total"] if upper is None else min(previous["done"] + size, previous["total"]),
                    "total": previous["total"],
                    "complete": upper is None,
                }
                save(conn, reached)
            return reached, upper, size

        def one_try():
            try:
                return one_batch()
            except sa.exc.DBAPIError as exc:
                if dialect.is_deadlock(exc):
                    batches.lost()
                raise

        # The checkpoint only moves once its batch committed: a batch refused for a busy database
        # (SQLite's single write lock) or failed by a deadlock is simply run again from the same place.
        checkpoint, upper, size = retry_when_busy(dialect, LockPolicy(), one_try)
        took = clock() - started
        batches.record(took)
        if on_batch is not None:
            on_batch(Progress(ts.name, checkpoint["done"], checkpoint["total"], size))
        rest = _rest(dialect, pause, took)
        if rest > 0 and upper is not None:
            sleep(rest)
    return checkpoint


@contextmanager
def _guarded(conn: sa.Connection, dialect: TriggerDialect, guarded: bool):
    """The batch's connection with the link triggers off, and on again however the batch ends
    (the connection goes back to a pool the application may share)."""
    on, off = dialect.link_guard() if guarded else ((), ())
    try:
        yield on  # run inside the batch's transaction (PostgreSQL's setting lasts as long)
    finally:
        for statement in off:
            conn.exec_driver_sql(statement)
        if off:
            conn.commit()


def backfill_statements(ts: TableSync, where: sa.ColumnElement) -> list[sa.Update]:
    """One UPDATE per sync rule, limited to rows that still need it."""
    table = ts.table
    statements = []
    for group in ts.groups:
        new = [table.c[n] for n in group.new]
        values = dict(zip(group.new, group.up_exprs(table)))
        statements.append(sa.update(table).where(where, all_null(new)).values(values))
    for fill in ts.fills:
        column = table.c[fill.column]
        statements.append(sa.update(table).where(where, column.is_(None))
                          .values({fill.column: fill.fill_expr(table)}))
    return statements


def _rest(dialect: TriggerDialect, pause: float | None, took: float) -> float:
    if pause is not None:
        return pause
    return dialect.backfill_rest(took)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _last_key(conn: sa.Connection, table: sa.Table, key: list):
    found = conn.execute(sa.select(*key).select_from(table).order_by(*[k.desc() for k in key]).limit(1)).first()
    return tuple(found) if found is not None else None


def _batch_upper_bound(conn: sa.Connection, table: sa.Table, key: list, last, batch_size: int, until=None):
    """The key of the batch's last row, or None when fewer than `batch_size` rows remain up to
    `until` (a key; None: the table's end)."""
    query = sa.select(*key).select_from(table).order_by(*key).offset(batch_size - 1).limit(1)
    if last is not None:
        query = query.where(_after(key, last))
    if until is not None:
        query = query.where(_tuple(key) <= _tuple_values(key, until))
    found = conn.execute(query).first()
    return tuple(found) if found is not None else None


def _key_range(key: list, last, upper) -> sa.ColumnElement:
    conditions = []
    if last is not None:
        conditions.append(_after(key, last))
    if upper is not None:
        conditions.append(_tuple(key) <= _tuple_values(key, upper))
    return sa.and_(sa.true(), *conditions)


def _after(key: list, last) -> sa.ColumnElement:
    return _tuple(key) > _tuple_values(key, last)


def _tuple(key: list):
    return key[0] if len(key) == 1 else sa.tuple_(*key)


def _tuple_values(key: list, values):
    typed = [sa.literal(v, getattr(k, "type", None)) for k, v in zip(key, values)]
    return typed[0] if len(typed) == 1 else sa.tuple_(*typed)
