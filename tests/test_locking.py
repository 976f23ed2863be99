"""DDL under a long transaction: crossfade waits for it, and writers never queue behind crossfade.

A transaction that merely read the table holds it for HOLD seconds. Naive DDL would wait for it
and, queued, make every writer wait too. crossfade's DDL waits at most `lock_timeout` per attempt
and retries, so a writer inserting in a loop meanwhile never stalls for anywhere near HOLD.
PostgreSQL and MariaDB only: SQLite locks the whole database, there is no table to queue on.
"""

from __future__ import annotations

import threading
import time

import glance_schema
import pytest
import sqlalchemy as sa
from glance_schema import visibility_change

from crossfade import Change
from crossfade.dialects import for_dialect
from crossfade.errors import LockTimeoutError
from crossfade.locking import LockPolicy, run_with_lock_timeout
from crossfade.runner import Runner
from crossfade.state import Phase

HOLD = 2.0  # seconds the conflicting transaction stays open
MAX_STALL = 0.5  # a writer's worst insert latency allowed meanwhile


@pytest.fixture(params=["postgresql", "mysql"])
def dialect_name(request) -> str:
    return request.param


def create_images(engine: sa.Engine) -> None:
    glance_schema.create_images(engine, [{"name": f"i{i}", "is_public": i % 2 == 0} for i in range(200)])


class Holder(threading.Thread):
    """Another connection that reads the table inside a transaction and keeps it open."""

    def __init__(self, engine: sa.Engine, seconds: float):
        super().__init__(daemon=True)
        self.engine, self.seconds = engine, seconds
        self.has_read = threading.Event()
        self.released_at: float | None = None

    def run(self) -> None:
        with self.engine.connect() as conn:
            conn.exec_driver_sql("SELECT count(*) FROM images").scalar()
            self.has_read.set()
            time.sleep(self.seconds)
            conn.rollback()
            self.released_at = time.monotonic()

    def start_and_wait(self) -> Holder:
        self.start()
        assert self.has_read.wait(10)
        return self


RELEASE_N_INSERTS = ("INSERT INTO images (name, is_public) VALUES (:n, true)",
                     "INSERT INTO images (name, is_public) VALUES (:n, false)")
RELEASE_N1_INSERTS = ("INSERT INTO images (name, visibility) VALUES (:n, 'community')",
                      "INSERT INTO images (name, visibility) VALUES (:n, 'public')")


class Writer(threading.Thread):
    """An application inserting rows in a loop, each insert its own transaction; records latencies."""

    def __init__(self, engine: sa.Engine, inserts: tuple[str, ...]):
        super().__init__(daemon=True)
        self.engine, self.inserts = engine, inserts
        self.stop = threading.Event()
        self.latencies: list[float] = []
        self.errors: list[Exception] = []

    def run(self) -> None:
        n = 0
        while not self.stop.is_set():
            n += 1
            started = time.monotonic()
            try:
                with self.engine.begin() as conn:
                    conn.execute(sa.text(self.inserts[n % len(self.inserts)]), {"n": f"w{n}"})
            except Exception as exc:  # noqa: BLE001 - the application must never fail: recorded, asserted on
                self.errors.append(exc)
            self.latencies.append(time.monotonic() - started)
            time.sleep(0.002)

    def finish(self) -> None:
        self.stop.set()
        self.join(10)


def second_engine(engine: sa.Engine) -> sa.Engine:
    return sa.create_engine(engine.url)


def run_phase_behind_holder(engine: sa.Engine, phase: str, change: Change) -> tuple[float, Holder, Writer]:
    """Run `phase` while a holder keeps the table for HOLD seconds and a writer inserts."""
    others = second_engine(engine)
    holder = Holder(others, HOLD).start_and_wait()
    # contract runs once release N is gone: only release N+1 writes then
    writer = Writer(others, RELEASE_N_INSERTS if phase == "expand" else RELEASE_N1_INSERTS)
    writer.start()
    time.sleep(0.2)  # the writer is in full swing before crossfade starts
    try:
        getattr(Runner(engine, lock_timeout=0.05), phase)(change)
        finished = time.monotonic()
        time.sleep(0.1)
    finally:
        writer.finish()
        holder.join(10)
        others.dispose()
    return finished, holder, writer


@pytest.mark.parametrize("phase", ["expand", "contract"])
def test_ddl_waits_for_the_holder_without_stalling_writers(engine, phase):
    create_images(engine)
    change = visibility_change()
    if phase == "contract":
        Runner(engine).expand(change)
        Runner(engine).migrate(change)

    finished, holder, writer = run_phase_behind_holder(engine, phase, change)

    assert holder.released_at is not None and finished >= holder.released_at  # it waited for the holder
    assert writer.errors == []
    assert len(writer.latencies) > 50
    worst = max(writer.latencies)
    assert worst < MAX_STALL, f"a writer stalled {worst:.3f}s behind crossfade's {phase} (holder held {HOLD}s)"
    runner = Runner(engine)
    assert runner.problems(change) == []
    if phase == "expand":  # the writer's rows inserted after the triggers are in got their visibility
        runner.migrate(change)
    with engine.connect() as conn:
        column = "visibility" if phase == "contract" else "is_public"
        assert conn.exec_driver_sql(f"SELECT count(*) FROM images WHERE {column} IS NULL").scalar() == 0
        if phase == "expand":
            pairs = conn.exec_driver_sql("SELECT is_public, visibility FROM images").all()
            assert len(pairs) == 200 + len(writer.latencies)
            assert all(v == ("public" if p else "shared") for p, v in pairs)
        else:
            found = dict(conn.exec_driver_sql("SELECT visibility, count(*) FROM images GROUP BY visibility").all())
            assert sum(found.values()) == 200 + len(writer.latencies)
            assert found["community"] > 10 and found["public"] > 100 and found["shared"] > 50


def test_lock_timeout_error_then_rerun_finishes(engine):
    create_images(engine)
    change = visibility_change()
    others = second_engine(engine)
    holder = Holder(others, HOLD).start_and_wait()
    started = time.monotonic()
    try:
        with pytest.raises(LockTimeoutError) as caught:
            Runner(engine, lock_timeout=0.05, max_lock_wait=0.3).expand(change)
        waited = time.monotonic() - started
        assert caught.value.attempts > 1 and "ALTER TABLE" in caught.value.statement
        assert waited < HOLD - 0.5, "expand must give up after max_lock_wait, not wait for the holder"
        assert Runner(engine).load(change).phase is Phase.EXPANDING
        with engine.connect() as conn:
            assert "visibility" not in {c["name"] for c in sa.inspect(conn).get_columns("images")}
    finally:
        holder.join(10)
        others.dispose()
    runner = Runner(engine, lock_timeout=0.05, max_lock_wait=5)
    runner.expand(change)
    assert runner.load(change).phase is Phase.EXPANDED
    assert runner.problems(change) == []


def test_ddl_connection_gives_back_normal_lock_waits(engine, request):
    """After a phase, the pooled connections wait for locks as the application expects again."""
    create_images(engine)
    Runner(engine).expand(visibility_change())
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            assert conn.exec_driver_sql("SHOW lock_timeout").scalar() == "0"
        else:
            global_wait = conn.exec_driver_sql("SELECT @@GLOBAL.lock_wait_timeout").scalar()
            assert conn.exec_driver_sql("SELECT @@SESSION.lock_wait_timeout").scalar() == global_wait


@pytest.mark.parametrize("dialect_name", ["sqlite"])
def test_sqlite_migrate_outwaits_a_writer_holding_the_database_past_the_busy_timeout(engine, tmp_path):
    """crossfade's own small writes (its state, each backfill batch) retry while the database is
    locked, instead of failing after the driver's busy timeout."""
    glance_schema.create_images(engine, [{"id": i, "name": f"i{i}", "is_public": i % 2 == 0} for i in range(50)])
    change = glance_schema.visibility_change()
    impatient = sa.create_engine(engine.url, connect_args={"timeout": 0.05})  # a 50 ms busy timeout
    runner = Runner(impatient)
    runner.expand(change)
    holding, release = threading.Event(), threading.Event()

    def hold_the_write_lock() -> None:
        with engine.connect() as conn:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
            holding.set()
            release.wait(5)
            conn.exec_driver_sql("COMMIT")

    holder = threading.Thread(target=hold_the_write_lock)
    holder.start()
    holding.wait(5)
    threading.Timer(0.5, release.set).start()  # ten busy timeouts later
    runner.migrate(change)
    holder.join()
    assert runner.load(change).phase.value == "migrated"
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM images WHERE visibility IS NULL").scalar() == 0
    impatient.dispose()


@pytest.mark.parametrize("dialect_name", ["postgresql", "mysql"])
def test_a_step_that_keeps_losing_its_work_at_the_final_lock_stops_and_says_why(engine):
    """Each attempt works (a sleep standing in for an online index build), then needs a lock a
    transaction holds: after `max_lost_work` such attempts crossfade stops rather than redo the
    work for two minutes, and the error says what is going on."""
    glance_schema.create_images(engine, [{"id": 1, "name": "a", "is_public": True}])
    work, lock = {"postgresql": ("SELECT pg_sleep(0.3)", "LOCK TABLE images IN ACCESS EXCLUSIVE MODE"),
                  "mysql": ("SELECT SLEEP(0.3)", "ALTER TABLE images COMMENT 'x'")}[engine.dialect.name]
    policy = LockPolicy(lock_timeout=0.05, max_wait=60, long_attempt=0.2, max_lost_work=3)
    dialect = for_dialect(engine.dialect)
    with engine.connect() as holder:
        holder.execute(sa.text("UPDATE images SET name = 'held' WHERE id = 1"))  # keeps its transaction open
        started = time.monotonic()
        with engine.connect() as conn, dialect.ddl_session(conn) as ddl, \
                pytest.raises(LockTimeoutError, match="3 attempts did their work and then lost the lock"):
            run_with_lock_timeout(ddl, dialect, [work, lock], policy)
        assert time.monotonic() - started < 10  # not the two minutes of max_wait
        holder.rollback()
