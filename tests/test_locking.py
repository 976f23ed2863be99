"""DDL under a long transaction: crossfade waits for it, and writers never queue behind crossfade.

A transaction that merely read the table holds it for HOLD seconds. Naive DDL would wait for it
and, queued, make every writer wait too. crossfade's DDL waits at most `lock_timeout` per attempt
and retries, so a writer inserting in a loop meanwhile never stalls for anywhere near HOLD.
PostgreSQL and MariaDB only: SQLite locks the whole database, there is no table to queue on.

What crossfade can make a writer wait for is a lock, so that is what the server is asked about
(`LockWaits`), and what is asserted. A writer's latency also counts the machine: on this shared
2-core box under load, inserts into a table no DDL touched stalled up to 0.29 s, and an insert
waiting for no lock at all took 1.19 s (a commit's fsync behind other runs' writes); the
latency is reported with every failure, never asserted on.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import glance_schema
import pytest
import sqlalchemy as sa
from glance_schema import visibility_change

from crossfade import Change, ops
from crossfade.dialects import for_dialect
from crossfade.errors import LockTimeoutError
from crossfade.locking import LockPolicy, run_with_lock_timeout
from crossfade.plan import build_plan
from crossfade.runner import Runner
from crossfade.schema import Schema
from crossfade.state import Phase

HOLD = 3.0  # seconds the conflicting transaction stays open (far above any stall a loaded machine adds)
LOCK_TIMEOUT = 0.05  # crossfade's per-attempt lock wait in these tests
# The longest a writer may wait for a lock while crossfade retries behind the holder: on PostgreSQL
# an attempt queues for lock_timeout and writers queue behind it (DESIGN 6: the stall is the
# timeout); MariaDB's attempts cannot wait (NOWAIT), so writers never queue. The slack covers
# the server noticing the timeout, and a writer descheduled, on a busy 2-core machine (CI runs four
# workers: an insert into a table no DDL touched stalled up to 0.29 s there); still a tenth of HOLD.
WAIT_WHILE_HELD = {"postgresql": LOCK_TIMEOUT + 0.25, "mysql": 0.25}
# A writer queued behind DDL that waits for the holder would wait about HOLD; anything under half
# of it cannot be that. Once the holder is gone each DDL statement takes its lock for itself, and
# writers wait for it (under heavy disk load here: up to 0.32 s for MariaDB's instant ADD COLUMN,
# 0.2 s for an online rebuild's commit), so the whole phase is held to this bound.
NOT_QUEUED_FOR_THE_HOLDER = HOLD / 2


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
            # Taken before letting go: on a busy machine this thread may run again only tens of ms
            # after the server freed the table, and the DDL is quicker (measured: a writer waiting
            # 63 ms for a MariaDB index build that began before a later timestamp).
            self.released_at = time.monotonic()
            conn.rollback()

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
        self.starts: list[float] = []
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
            self.starts.append(started)
            self.latencies.append(time.monotonic() - started)
            time.sleep(0.002)

    def inserts_between(self, begin: float, end: float) -> int:
        return sum(begin <= started < end for started in self.starts)

    def finish(self) -> None:
        self.stop.set()
        self.join(10)


# Seconds each INSERT INTO images has waited so far for a lock (MariaDB: a metadata lock, a table
# lock or a table flush).
LOCK_WAITING_INSERTS = {
    "postgresql": ("SELECT extract(epoch FROM clock_timestamp() - query_start) FROM pg_stat_activity "
                   "WHERE wait_event_type = 'Lock' AND query LIKE :insert"),
    "mysql": ("SELECT TIME_MS / 1000 FROM information_schema.PROCESSLIST "
              "WHERE STATE LIKE 'Waiting for table%' AND INFO LIKE :insert"),
}


class LockWaits(threading.Thread):
    """The server's view of the writer: polls for its INSERTs waiting for a lock, and keeps each
    sighting as (when the wait began, how long it had lasted). A lock is what DDL makes a writer
    wait for; a writer slowed by a busy machine waits for none."""

    def __init__(self, engine: sa.Engine):
        super().__init__(daemon=True)
        self.engine, self.query = engine, LOCK_WAITING_INSERTS[engine.dialect.name]
        self.stop = threading.Event()
        self.seen: list[tuple[float, float]] = []

    def run(self) -> None:
        with self.engine.connect() as conn:
            while not self.stop.is_set():
                now = time.monotonic()
                waiting = conn.execute(sa.text(self.query), {"insert": "INSERT INTO images%"}).scalars()
                self.seen += [(now - float(waited), float(waited)) for waited in waiting]
                conn.rollback()
                time.sleep(0.005)

    def finish(self) -> None:
        self.stop.set()
        self.join(10)

    def longest(self, began_before: float = float("inf")) -> float:
        return max((waited for began, waited in self.seen if began < began_before), default=0.0)

    def longest_from(self, moment: float, n: int = 5) -> str:
        """The `n` longest waits, each as 'lasted@began' in seconds, began counted from `moment`."""
        waits: dict[float, float] = {}
        for began, waited in self.seen:  # a wait is seen several times: keep its longest sighting
            key = round(began - moment, 2)
            waits[key] = max(waits.get(key, 0.0), waited)
        longest = sorted(waits.items(), key=lambda item: -item[1])[:n]
        return ", ".join(f"{waited:.3f}@{began:+.2f}" for began, waited in longest) or "none"

    def count(self, began_before: float = float("inf")) -> int:
        """Sightings of a writer waiting, for waits that began before `began_before`."""
        return sum(began < began_before for began, _ in self.seen)


@dataclass
class BehindHolder:
    """What a phase run behind a holder left to check."""

    started: float
    finished: float
    holder: Holder
    writer: Writer
    waits: LockWaits

    @property
    def waited_for_the_holder(self) -> bool:
        return self.finished >= self.holder.released_at

    def assert_no_writer_queued_for_the_holder(self, what: str, while_held: float | None = None) -> None:
        """The writer never failed, waited for a lock at most `while_held` (default: what one attempt
        may cost on this dialect) while the holder held the table, and nothing near HOLD at all.
        Its worst latency is in the message, for a reader, not in an assertion (see the top)."""
        dialect = self.waits.engine.dialect.name
        while_held = WAIT_WHILE_HELD[dialect] if while_held is None else while_held
        assert self.writer.errors == []
        written = self.writer.inserts_between(self.started, self.holder.released_at)
        assert written >= 20, f"the writer wrote only {written} rows while crossfade worked behind the holder"
        held, whole = self.waits.longest(began_before=self.holder.released_at), self.waits.longest()
        worst = max(self.writer.latencies)
        figures = (f"{what} on {dialect}: longest lock wait {held:.3f}s while the holder held the table "
                   f"({HOLD}s), {whole:.3f}s in all; worst insert latency {worst:.3f}s; {written} inserts "
                   f"while held; longest waits (lasted@began, from the holder letting go): "
                   f"{self.waits.longest_from(self.holder.released_at)}")
        assert held <= while_held, figures
        assert whole < NOT_QUEUED_FOR_THE_HOLDER, figures


def second_engine(engine: sa.Engine) -> sa.Engine:
    return sa.create_engine(engine.url)


def run_phase_behind_holder(engine: sa.Engine, phase: str, change: Change,
                            inserts: tuple[str, ...] | None = None) -> BehindHolder:
    """Run `phase` while a holder keeps the table for HOLD seconds, a writer inserts, and the
    server is watched for the writer waiting on a lock."""
    # contract runs once release N is gone: only release N+1 writes then
    inserts = inserts or (RELEASE_N_INSERTS if phase == "expand" else RELEASE_N1_INSERTS)
    others = second_engine(engine)
    holder = Holder(others, HOLD).start_and_wait()
    writer, waits = Writer(others, inserts), LockWaits(others)
    waits.start()
    writer.start()
    time.sleep(0.2)  # the writer is in full swing before crossfade starts
    started = time.monotonic()
    try:
        getattr(Runner(engine, lock_timeout=LOCK_TIMEOUT), phase)(change)
        finished = time.monotonic()
        holder.join(10)  # work that need not wait for the holder still has writers around it
        time.sleep(0.1)
    finally:
        writer.finish()
        waits.finish()
        holder.join(10)
        others.dispose()
    return BehindHolder(started, finished, holder, writer, waits)


@pytest.mark.parametrize("phase", ["expand", "contract"])
def test_ddl_waits_for_the_holder_without_stalling_writers(engine, phase):
    create_images(engine)
    change = visibility_change()
    if phase == "contract":
        Runner(engine).expand(change)
        Runner(engine).migrate(change)

    behind = run_phase_behind_holder(engine, phase, change)

    assert behind.waited_for_the_holder
    behind.assert_no_writer_queued_for_the_holder(f"{phase} of replace_column")
    writer = behind.writer
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


# --- index and constraint ops behind the same holder ---------------------------------------

# op -> (the phase that runs its DDL, the op). The writer's rows satisfy every one of them.
INDEX_AND_CONSTRAINT_OPS = {
    "create_index": ("expand", ops.create_index("images", "ix_images_size", "size")),
    "add_unique": ("contract", ops.add_unique("images", "uq_images_name", "name")),
    "add_foreign_key": ("contract", ops.add_foreign_key("images", "fk_images_owner", "owner_id", "owners", "id")),
    "add_check": ("contract", ops.add_check("images", "ck_images_size", lambda row: row.size >= 0)),
}
CONSTRAINED_INSERTS = ("INSERT INTO images (name, is_public, owner_id, size) VALUES (:n, true, 1, 5)",)

# Whether the op's DDL must wait for a transaction that only read the table. On MariaDB every
# ALTER needs the table's exclusive metadata lock at its end. On PostgreSQL CREATE INDEX
# CONCURRENTLY waits for writers' transactions and older snapshots, and an idle READ COMMITTED
# reader holds neither; a foreign key's NOT VALID (SHARE ROW EXCLUSIVE) and every VALIDATE
# conflict with writers only; attaching a unique index and a CHECK's NOT VALID take ACCESS
# EXCLUSIVE for an instant.
WAITS_FOR_A_READER = {
    "postgresql": {"create_index": False, "add_unique": True, "add_foreign_key": False, "add_check": True},
    "mysql": {"create_index": True, "add_unique": True, "add_foreign_key": True, "add_check": True},
}


def create_images_with_owners(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE owners (id INTEGER PRIMARY KEY, name VARCHAR(20))")
        conn.exec_driver_sql("INSERT INTO owners (id, name) VALUES (1, 'o1')")
    glance_schema.create_images(engine, [{"name": f"i{i}", "is_public": i % 2 == 0, "owner_id": 1, "size": i}
                                         for i in range(200)], sa.Column("owner_id", sa.Integer))


def planned_locks(engine: sa.Engine, change: Change, phase: str) -> str:
    """The `locks:` notes `crossfade plan` shows for the phase's steps, against this database."""
    with engine.connect() as conn:
        schema = Schema.reflect(conn, change.tables() | {"owners"})
    sections = build_plan([change], for_dialect(engine.dialect), schema)
    return "\n".join(note for section in sections if section.phase == phase
                     for step in section.steps for note in step.notes)


@pytest.mark.parametrize("op_name", sorted(INDEX_AND_CONSTRAINT_OPS))
def test_index_and_constraint_ddl_never_queues_writers_behind_the_holder(engine, op_name):
    create_images_with_owners(engine)
    phase, op = INDEX_AND_CONSTRAINT_OPS[op_name]
    change = Change(op, id=op_name)
    if phase == "contract":
        Runner(engine).expand(change)
        Runner(engine).migrate(change)
    dialect = engine.dialect.name
    copies = dialect == "mysql" and op_name == "add_check"
    locks = planned_locks(engine, change, phase)

    behind = run_phase_behind_holder(engine, phase, change, CONSTRAINED_INSERTS)

    assert behind.waited_for_the_holder is WAITS_FOR_A_READER[dialect][op_name]
    if not copies:
        behind.assert_no_writer_queued_for_the_holder(f"{phase} of {op_name}")
    else:
        # MariaDB has no online ADD CHECK, and the plan says so: each attempt copies the table
        # under a shared lock, writers waiting, then loses the copy to the reader at its final
        # exclusive lock and starts again. So writers do wait while the holder holds the table,
        # each time for one copy of it (crossfade pauses as long between copies), never for the holder.
        assert "blocks writes while the table is copied" in locks
        assert behind.waits.count(began_before=behind.holder.released_at) > 0
        behind.assert_no_writer_queued_for_the_holder(f"{phase} of {op_name}", while_held=NOT_QUEUED_FOR_THE_HOLDER)
    runner = Runner(engine)
    assert runner.load(change).phase is (Phase.EXPANDED if phase == "expand" else Phase.CONTRACTED)
    assert runner.problems(change) == []
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM images").scalar() == 200 + len(behind.writer.latencies)


def test_lock_timeout_error_then_rerun_finishes(engine):
    create_images(engine)
    change = visibility_change()
    others = second_engine(engine)
    holder = Holder(others, HOLD).start_and_wait()
    started = time.monotonic()
    try:
        with pytest.raises(LockTimeoutError) as caught:
            Runner(engine, lock_timeout=LOCK_TIMEOUT, max_lock_wait=0.3).expand(change)
        waited = time.monotonic() - started
        assert caught.value.attempts > 1 and "ALTER TABLE" in caught.value.statement
        assert waited < HOLD - 0.5, "expand must give up after max_lock_wait, not wait for the holder"
        assert Runner(engine).load(change).phase is Phase.EXPANDING
        with engine.connect() as conn:
            assert "visibility" not in {c["name"] for c in sa.inspect(conn).get_columns("images")}
    finally:
        holder.join(10)
        others.dispose()
    runner = Runner(engine, lock_timeout=LOCK_TIMEOUT, max_lock_wait=5)
    runner.expand(change)
    assert runner.load(change).phase is Phase.EXPANDED
    assert runner.problems(change) == []


def test_a_step_that_gives_up_names_the_sessions_holding_the_table(engine):
    """The operator learns whom to wait for or stop: PostgreSQL names the holder's pid, application,
    state, transaction age and statement; MariaDB the connection id with its metadata lock (with
    the metadata_lock_info plugin), or else every transaction open in the database as a suspect."""
    create_images(engine)
    postgresql = engine.dialect.name == "postgresql"
    apps = sa.create_engine(engine.url, connect_args={"application_name": "billing-report"} if postgresql else {})
    with apps.connect() as holder:
        session = holder.exec_driver_sql("SELECT pg_backend_pid()" if postgresql else "SELECT CONNECTION_ID()").scalar()
        holder.rollback()
        holder.exec_driver_sql("SELECT count(*) FROM images").scalar()  # its transaction stays open
        with pytest.raises(LockTimeoutError) as caught:
            Runner(engine, lock_timeout=LOCK_TIMEOUT, max_lock_wait=0.3).expand(visibility_change())
        holder.rollback()
    apps.dispose()
    error, message = caught.value, str(caught.value)
    if postgresql:
        assert f"Held by pid {session} (user " in message
        assert "application 'billing-report', idle in transaction, transaction open " in message
        assert "has AccessShareLock): SELECT count(*) FROM images" in message
        assert error.holders[0].transaction_age > 0
    elif any(holder.certain for holder in error.holders):  # metadata_lock_info is loaded
        assert f"Held by connection {session} (" in message and "has MDL_SHARED_READ" in message
    else:
        assert "Open transactions, any of which may hold it" in message
        assert f"connection {session} (" in message and "Sleep, transaction open" in message


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


@pytest.mark.parametrize("dialect_name", ["postgresql"])
def test_a_step_the_database_fails_to_break_a_deadlock_runs_again(engine):
    """PostgreSQL fails the waiter that finds the cycle first: the step, whose deadlock_timeout
    expires first. The attempt is undone, so the step simply runs again once the writer is done."""
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE pair (id int PRIMARY KEY, x int)")
        conn.exec_driver_sql("INSERT INTO pair VALUES (1, 0), (2, 0)")
    writer = engine.connect()
    writer.exec_driver_sql("SET deadlock_timeout = '10s'")  # so the step is the one that finds it
    writer.exec_driver_sql("UPDATE pair SET x = x + 10 WHERE id = 2")

    def writer_then_row_1() -> None:
        time.sleep(0.3)  # the step holds row 1 and waits for row 2 by now
        writer.exec_driver_sql("UPDATE pair SET x = x + 10 WHERE id = 1")
        writer.commit()

    thread = threading.Thread(target=writer_then_row_1)
    thread.start()
    with engine.connect() as conn:
        attempts = run_with_lock_timeout(conn, for_dialect(engine.dialect),
                                         ["UPDATE pair SET x = x + 1 WHERE id = 1", "UPDATE pair SET x = x + 1 WHERE id = 2"],
                                         LockPolicy(lock_timeout=5.0, max_wait=30.0))
    thread.join(10)
    writer.close()
    assert attempts == 2
    with engine.connect() as conn:
        assert dict(conn.exec_driver_sql("SELECT id, x FROM pair").all()) == {1: 11, 2: 11}
