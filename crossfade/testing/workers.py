"""Writer threads: release N's and release N+1's application code, one connection each.

Each worker writes only through its own release's Table objects, exactly what that release's
code would send, one logical write per transaction (writes.py), and journals what committed.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable

import sqlalchemy as sa

from ..dialects import for_dialect
from .deadlocks import Retried
from .journal import Journal, LiveRows, Refusal, Sample, Stage, Write
from .model import RELEASE_N1, TablePlan
from .rowvalues import Namer, NoParent, RowMaker
from .values import ValueSource
from .writes import write_row

DEADLOCK_RETRIES = 5


def retry_rest(attempt: int) -> float:
    """Seconds before a deadlocked write runs again: growing and random, as oslo.db's
    wrap_db_retry rests (from 1 s there; 10-160 ms here, or the latency figures would be the
    rests'). Back to back, a writer on Galera lost all its tries to one DDL step's statements."""
    return random.uniform(0.5, 1.0) * 0.01 * (2 ** attempt)


# How often each kind of write is chosen.
WRITE_MIX = (("insert", 3), ("update synced", 3), ("update plain", 2), ("update row", 2), ("delete", 1))


class Worker(threading.Thread):
    def __init__(self, name: str, release: str, engine: sa.Engine, plans: list[TablePlan],
                 values: ValueSource, rows: LiveRows, stage: Stage, seed: int,
                 pause: float = 0.0, maker: RowMaker | None = None, namer: Namer | None = None,
                 busy_budget: float = 0.0):
        super().__init__(name=name, daemon=True)
        self.release, self.engine, self.plans = release, engine, plans
        self.values, self.rows, self.stage, self.pause = values, rows, stage, pause
        self.maker = maker or RowMaker({p.name: p for p in plans}, values, rows)
        self.namer = namer or Namer(name, seed % 1000)
        self.dialect = for_dialect(engine.dialect)
        self.busy_budget = busy_budget  # seconds a write tries again while the database is locked (SQLite)
        self.rng = random.Random(seed)
        self.journal = Journal(name, release)
        self.stopping = threading.Event()
        self.holding = threading.Event()  # asked to stop writing for a moment
        self.held = threading.Event()  # not writing until `holding` clears
        self.crash: BaseException | None = None  # a bug in the worker itself, not a refused write

    def run(self) -> None:
        try:
            while not self.stopping.is_set():
                if self.holding.is_set():
                    self._wait_while_held()
                    continue
                self.write_once()
                if self.pause:
                    time.sleep(self.pause)
        except BaseException as exc:  # noqa: BLE001 - reported by the simulator, never lost
            self.crash = exc

    def stop(self) -> None:
        self.stopping.set()

    def pause_writing(self) -> None:
        """Pause between two writes (returns at once; wait on `held`)."""
        self.holding.set()

    def resume_writing(self) -> None:
        self.holding.clear()

    def _wait_while_held(self) -> None:
        self.held.set()
        while self.holding.is_set() and not self.stopping.is_set():
            time.sleep(0.002)
        self.held.clear()

    # --- one write ---------------------------------------------------------------------------
    def write_once(self) -> None:
        plan = self.rng.choice(self.plans)
        kind = self._choose_kind()
        try:
            key, values = self._choose(plan, kind)
        except NoParent:
            return  # no row yet for a foreign key to point at
        if key is None and kind != "insert":
            return
        phase = self.stage.name
        start = time.perf_counter()
        try:
            key, affected, values = self._write_retrying_deadlocks(plan, kind.split()[0], key, values,
                                                                   self._parents_first(plan, kind, values))
        except sa.exc.DBAPIError as exc:
            self._refused(phase, kind, plan, key, exc, start)
            return
        end = time.perf_counter()
        self.journal.samples.append(Sample(start, end - start, phase, False))
        self.stage.count(phase, self.release)
        if kind != "insert" and affected == 0:
            return  # another worker deleted the row first: nothing was written
        self.journal.writes.append(Write(self.name, self.release, phase, plan.name, key,
                                         kind.split()[0], values, start, end))
        if kind == "insert":
            self.rows.add(plan.name, key)
        elif kind == "delete":
            self.rows.remove(plan.name, key)

    def _parents_first(self, plan: TablePlan, kind: str, values: dict) -> list:
        """Once contract has begun (the derivation's triggers go), release N+1 writes a derived
        value's target with each source row it inserts, the same value (the sources agree), as
        its code does once no trigger derives it; contract's foreign keys from the sources to
        the target's (key, value) then hold."""
        if self.release != RELEASE_N1 or kind != "insert" or self.stage.name not in ("contract", "release N+1"):
            return []
        first = []
        for column, (rule, via) in self.maker.agreeing(plan).items():
            if values.get(column) is not None and values.get(via) is not None:
                first.append((rule.target, rule.target_key, values[via], {rule.column: values[column]}))
        return first

    def _write_retrying_deadlocks(self, plan: TablePlan, kind: str, key, values: dict, first: list = ()) -> tuple:
        """The write in its own transaction, run again when the database broke a deadlock by
        failing it, as applications do (oslo.db's retry_on_deadlock). Two writes of one row
        across two tables (a cross-table op's triggers) lock the tables in opposite orders; on
        Galera, DDL and other nodes' writes abort a transaction at its commit (1213 too). A lock
        wait timeout (1205) is not retried: it means a writer waited innodb_lock_wait_timeout
        seconds, which crossfade must never make it do, so it stays a refused write.
        On SQLite a write whose short busy wait ran out tries again at once (simulator.py says why),
        for `busy_budget` seconds in all."""
        dialect = self.dialect
        started = time.perf_counter()
        attempt = 0
        while True:
            try:
                with self.engine.begin() as conn:
                    for table, key_column, target, written in first:
                        target_table = sa.table(table, sa.column(key_column), *[sa.column(c) for c in written])
                        conn.execute(target_table.update().where(target_table.c[key_column] == target)
                                     .values(written))
                    return write_row(conn, plan, self.release, kind, key, values)
            except sa.exc.DBAPIError as exc:
                if self._still_busy(dialect, exc, started):
                    continue
                if not dialect.is_deadlock(exc) or attempt == DEADLOCK_RETRIES:
                    raise
                self.journal.retried.append(Retried(time.perf_counter(), self.stage.name, self.release))
                time.sleep(retry_rest(attempt))
                attempt += 1

    def _still_busy(self, dialect, exc: sa.exc.DBAPIError, started: float) -> bool:
        """SQLite said "database is locked" and the write may still try again."""
        return (self.busy_budget > 0 and dialect.is_lock_timeout(exc)
                and time.perf_counter() - started < self.busy_budget)

    def _choose_kind(self) -> str:
        kinds, weights = zip(*WRITE_MIX)
        return self.rng.choices(kinds, weights)[0]

    def _choose(self, plan: TablePlan, kind: str) -> tuple:
        """The row (None for an insert) and the logical values to write to it."""
        if kind == "insert":
            return None, self.maker.row(plan, self.release, self.rng, self.namer, plan.insertable(self.release),
                                        insert=True)
        key = self.rows.pick(plan.name, self.rng)
        if kind == "delete" and plan.parent:
            return None, {}  # other tables' rows reference it: no application deletes those blindly
        if key is None or kind == "delete":
            return key, {}
        columns = {"update synced": plan.synced, "update plain": plan.plain,
                   "update row": plan.updatable}[kind](self.release) or plan.updatable(self.release)
        if not columns:
            return None, {}  # nothing this release may change in the row (its key and fixed values)
        if kind != "update row":
            columns = self.rng.sample(columns, self.rng.randint(1, len(columns)))
        return key, self.maker.row(plan, self.release, self.rng, self.namer,
                                   plan.with_required(self.release, columns), insert=False)

    def _refused(self, phase: str, kind: str, plan: TablePlan, key, exc: Exception, start: float) -> None:
        end = time.perf_counter()
        self.journal.samples.append(Sample(start, end - start, phase, True))
        self.stage.count(phase, self.release)
        message = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
        self.journal.refusals.append(Refusal(self.name, self.release, phase, kind, plan.name, key, message, start, end))


def start_workers(count: int, release: str, make: Callable[[str, int], Worker]) -> list[Worker]:
    workers = [make(f"{release}-{i + 1}", i) for i in range(count)]
    for worker in workers:
        worker.start()
    return workers
