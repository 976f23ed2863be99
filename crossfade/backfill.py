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

import copy
import math
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field

import sqlalchemy as sa

from . import parallel
from .derived import DeriveRule, DeriveStatements
from .dialects.base import TriggerDialect
from .errors import CrossfadeError
from .locking import LockPolicy, retry_when_busy
from .sync import LinkRule, MoveRule, MoveStatements, TableSync, all_null
from .throttle import Throttle


@dataclass
class Progress:
    table: str
    done: int
    total: int
    batch_size: int = 0  # rows the batch just committed was sized for (key width for integer keys)
    rate: float | None = None  # rows per second in this run, over every worker
    eta: float | None = None  # seconds left at that rate
    waiting: str | None = None  # why the backfill is paused (throttling), shown by the progress line

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
                  pause: float | None = None, jobs: int | None = None) -> None:
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
    if jobs is not None and not (_is_number(jobs) and isinstance(jobs, int) and jobs >= 1):
        raise BackfillOptionError(("jobs",), f"must be a whole number of workers, at least 1 (got {jobs!r})")


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
    derives: bool = False  # writes only B := up(A), which the sync triggers may skip (TriggerDialect.derive_guard)
    writes: bool = False  # crossfade's own write past the table's blocks (TriggerDialect.writing_guard)


def sync_job(ts: TableSync) -> Job:
    return Job(ts.name, ts.table, lambda where: backfill_statements(ts, where), derives=True)


def link_job(dialect: TriggerDialect, link: LinkRule | MoveRule, source: sa.Table, target: sa.Table) -> Job:
    """A cross-table rule's backfill, batched over the source: a link's target gets a row for
    every source row that should have one; a move's target rows take their source rows' values."""
    if isinstance(link, DeriveRule):
        statements = DeriveStatements(link, lambda name: target.metadata.tables[_sibling(target, name)])
        return Job(f"{link.target}.{link.column} (derived)", target,
                   lambda where: statements.backfill(where, dialect.derive_locking_reads), guarded=True)
    if isinstance(link, MoveRule):
        return Job(f"{link.target} (moved from {link.source})", source,
                   MoveStatements(link, source, target).backfill, guarded=True)
    return Job(link.target, source, lambda where: link_statements(dialect, link, source, target, where),
               guarded=True)


def _sibling(table: sa.Table, name: str) -> str:
    """The key of table `name` in `table`'s MetaData (schema-qualified where `table` is)."""
    return f"{table.schema}.{name}" if table.schema else name


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
                   sleep: Callable[[float], None] = time.sleep, jobs: int = 1,
                   throttle: Throttle | None = None) -> dict:
    """Run the remaining batches for one table; returns the final checkpoint.

    `throttle` (throttle.py): before each batch, wait while replicas lag or the server is loaded,
    reporting why to `on_batch` as Progress.waiting; the wait holds no connection or lock.

    `pause` is the seconds to sleep after each batch; None rests as the dialect needs (SQLite: long
    enough for a writer waiting on the database lock to get in). `clock` and `sleep` time the batches and the rests.
    `jobs` workers, each with its own connection, fill disjoint key ranges at once (parallel.py);
    the ranges are planned on the first run and kept in the checkpoint, so a rerun resumes each.
    """
    check_options(pause=pause, jobs=jobs)
    ts = sync_job(ts) if isinstance(ts, TableSync) else ts
    batches = batches if batches is not None else batch_sizer()
    key = dialect.batch_key(ts.table)
    planned = parallel.from_checkpoint(checkpoint)
    with engine.connect() as conn:
        if planned is None:
            planned = parallel.plan(conn, ts.table, key, jobs)
        if isinstance(batches, AdaptiveBatches):
            batches.start_with(dialect.first_batch_rows(conn))
    shared = parallel.SharedCheckpoint(planned)
    walk = _RangeWalk(engine, dialect, ts, key, shared, save, pause, on_batch, clock, sleep, throttle)
    todo = [i for i, r in enumerate(planned["ranges"]) if not r["complete"]]
    parallel.run_workers(todo, jobs, lambda index, stop: walk(index, copy.copy(batches), stop))
    return shared.checkpoint


@dataclass
class _RangeWalk:
    """One worker's loop over one key range: short batches, each committed with its checkpoint."""

    engine: sa.Engine
    dialect: TriggerDialect
    job: Job
    key: list
    shared: parallel.SharedCheckpoint
    save: SaveCheckpoint
    pause: float | None
    on_batch: Callable[[Progress], None] | None
    clock: Callable[[], float]
    sleep: Callable[[float], None]
    throttle: Throttle | None = None
    reporting: threading.Lock = field(default_factory=threading.Lock)  # on_batch sees one batch at a time
    # One worker looks at the replicas and the load at a time; the others wait behind it, so
    # every worker pauses while there is a reason (Throttle is not thread-safe).
    throttling: threading.Lock = field(default_factory=threading.Lock)
    tries: threading.local = field(default_factory=threading.local)  # each worker's current try

    def __call__(self, index: int, batches: BatchSizer, stop) -> None:
        # One connection for the whole range, its session pinned once: per batch only the batch's
        # own statements travel (no pool checkout and reset, no sql_mode read, set and restore).
        with self.engine.connect() as conn, self.dialect.pinned_batch(conn):
            self._walk(conn, index, batches, stop)

    def _walk(self, conn: sa.Connection, index: int, batches: BatchSizer, stop) -> None:
        rng = self.shared.checkpoint["ranges"][index]
        while not rng["complete"] and not stop.is_set():
            self._wait_for_throttle()
            # The checkpoint only moves once its batch committed: a batch refused for a busy database
            # (SQLite's single write lock) or failed by a deadlock is simply run again from the same place.
            rng, table_checkpoint, size = retry_when_busy(
                self.dialect, LockPolicy(), lambda rng=rng: self._one_try(conn, index, rng, batches))
            took = self.clock() - self.tries.started
            batches.record(took)
            if self.on_batch is not None:
                with self.reporting:
                    self.on_batch(_progress(self.job.name, table_checkpoint, size))
            rest = _rest(self.dialect, self.pause, took)
            if rest > 0 and not rng["complete"]:
                self.sleep(rest)

    def _one_try(self, conn: sa.Connection, index: int, previous: dict, batches: BatchSizer) -> tuple:
        self.tries.started = self.clock()  # a lost try's time is not the batch's: its size was halved for it
        size = batches.rows
        try:
            return (*self._one_batch(conn, index, previous, size), size)
        except sa.exc.DBAPIError as exc:
            if self.dialect.is_deadlock(exc):
                batches.lost()  # on Galera: lost certification to another node's writes
            raise

    def _wait_for_throttle(self) -> None:
        """Before a batch, wait while a replica lags or the server is loaded (no transaction is open)."""
        if self.throttle is None:
            return
        with self.throttling:
            self.throttle.wait(self._report_waiting)

    def _report_waiting(self, why: str) -> None:
        if self.on_batch is None:
            return
        checkpoint = self.shared.checkpoint
        with self.reporting:
            self.on_batch(Progress(self.job.name, checkpoint["done"], checkpoint["total"], waiting=why))

    def _one_batch(self, conn: sa.Connection, index: int, previous: dict, size: int) -> tuple[dict, dict]:
        with _guarded(conn, self.dialect, self.job) as guard, conn.begin() as transaction:
            for setting in guard + self.dialect.backfill_batch_settings():
                conn.exec_driver_sql(setting)
            reached = self._fill(conn, previous, size)

            def save_and_commit(checkpoint: dict) -> None:
                self.save(conn, checkpoint)
                transaction.commit()

            written = self.shared.commit(index, reached, save_and_commit)
        return reached, written

    def _fill(self, conn: sa.Connection, previous: dict, size: int) -> dict:
        """Fill the range's next batch; returns the range as it stands once the batch commits."""
        batch = (self._integer_batch if "span" in previous else self._sampled_batch)(conn, previous, size)
        if batch is None:  # no key left in the range
            return {**previous, "done": previous["rows"], "complete": True}
        lower, upper, complete = batch
        for statement in self.job.statements(_key_range(self.key, lower, upper)):
            if callable(statement):  # a Python backfill's batch (compute.py): it runs its own statements
                statement(conn)
            else:
                conn.execute(statement)
        if complete:
            done = previous["rows"]
        elif "span" in previous:
            done = parallel.integer_done(previous, upper)
        else:
            done = min(previous["done"] + size, previous["rows"])
        last = upper if upper is not None else previous["last"]
        return {**previous, "last": last, "done": done, "complete": complete}

    def _integer_batch(self, conn: sa.Connection, previous: dict, width: int):
        return parallel.next_integer_batch(conn, self.job.table, self.key, previous, width)

    def _sampled_batch(self, conn: sa.Connection, previous: dict, size: int):
        """The next `size` rows by key, or the rest of the range when fewer remain."""
        lower = previous["last"] if previous["last"] is not None else previous["after"]
        upper = _batch_upper_bound(conn, self.job.table, self.key, lower, size, previous["upto"])
        if upper is None:
            return lower, previous["upto"], True
        return lower, list(upper), False


def pool_capacity(engine: sa.Engine) -> int | None:
    """How many connections the engine's pool hands out at once (None: no limit)."""
    pool = engine.pool
    if not isinstance(pool, sa.pool.QueuePool) or pool._max_overflow < 0:
        return None
    return pool.size() + pool._max_overflow


def _progress(name: str, checkpoint: dict, size: int) -> Progress:
    return Progress(name, checkpoint["done"], checkpoint["total"], size, rate=checkpoint.get("rate"),
                    eta=parallel.eta(checkpoint), waiting=checkpoint.get("waiting"))



@contextmanager
def _guarded(conn: sa.Connection, dialect: TriggerDialect, job: Job):
    """The batch's connection with the link triggers off (or the sync triggers told it derives),
    and on again however the batch ends (the connection goes back to a pool the application may share)."""
    on, off = (dialect.link_guard() if job.guarded else dialect.derive_guard() if job.derives
               else dialect.writing_guard() if job.writes else ((), ()))
    try:
        yield on  # run inside the batch's transaction (PostgreSQL's setting lasts as long)
    finally:
        # A batch whose COMMIT failed (on Galera: certification, error 1213) leaves its transaction
        # to be rolled back before the connection runs anything else, its retry included.
        failed = conn.get_transaction()
        if failed is not None:
            failed.rollback()
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


def _batch_upper_bound(conn: sa.Connection, table: sa.Table, key: list, last, batch_size: int, upto=None):
    """The key of the batch's last row, or None when fewer than `batch_size` rows remain (up to
    `upto`, the range's end, where given)."""
    query = sa.select(*key).select_from(table).order_by(*key).offset(batch_size - 1).limit(1)
    if last is not None:
        query = query.where(_after(key, last))
    if upto is not None:
        query = query.where(_tuple(key) <= _tuple_values(key, upto))
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
