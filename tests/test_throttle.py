"""The throttled backfill (crossfade/throttle.py) on real replicas and real load: it waits between
batches while a replica lags (a PostgreSQL replica whose replay is paused, a MariaDB replica whose
SQL thread is stopped) or while the server is loaded, says why in its progress, commits no batch
while it waits, resumes, and leaves every row right. Bad throttle options are one line, before
anything runs.
"""

from __future__ import annotations

import threading
import time

import glance_schema
import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from crossfade.backfill import Progress
from crossfade.cli import app
from crossfade.runner import Runner
from crossfade.state import Phase
from crossfade.throttle import GaleraFlowControl, ThrottleOptionError, ThrottleOptions, parse_max_load

pytestmark = pytest.mark.replicas

ROWS = 600
SMALL_BATCHES = {"batch_size": 10, "pause": 0.02}  # 60 batches, over 1.2 s: the throttle looks every 0.25 s and has time to step in


def expanded(engine: sa.Engine):
    glance_schema.create_images(engine, [{"id": i, "name": f"i{i}", "is_public": i % 2 == 0, "size": i}
                                         for i in range(1, ROWS + 1)])
    change = glance_schema.visibility_change()
    Runner(engine, throttle=ThrottleOptions(max_lag=None)).expand(change)
    return change


def filled(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return conn.exec_driver_sql("SELECT count(*) FROM images WHERE visibility IS NOT NULL").scalar()


def assert_backfilled(engine: sa.Engine) -> None:
    with engine.connect() as conn:
        found = dict(conn.execute(sa.text("SELECT id, visibility FROM images ORDER BY id")).all())
    assert found == {i: "public" if i % 2 == 0 else "shared" for i in range(1, ROWS + 1)}


class Watch:
    """The runner's progress: each wait (the looks between two batches, with the rows filled in the
    database at each look) and the batches after it. `release` runs once, after `hold` seconds of
    one wait (it ends the cause of the wait)."""

    def __init__(self, engine: sa.Engine, release, hold: float = 0.6):
        self.engine, self.release, self.hold = engine, release, hold
        self.waits: list[list[tuple[float, str, int]]] = []  # per wait: (when, why, rows filled)
        self.batches_after_wait = 0
        self.released = False
        self._waiting = False

    def __call__(self, progress: Progress) -> None:
        if progress.waiting is None:
            self.batches_after_wait += bool(self.waits)
            self._waiting = False
            return
        if not self._waiting:
            self.waits.append([])
            self._waiting = True
        looks = self.waits[-1]
        looks.append((time.monotonic(), progress.waiting, filled(self.engine)))
        if not self.released and looks[-1][0] - looks[0][0] >= self.hold:
            self.released = True
            self.release()

    @property
    def longest(self) -> list[tuple[float, str, int]]:
        return max(self.waits, key=lambda looks: looks[-1][0] - looks[0][0])

    def assert_waited_without_writing(self, because: str) -> None:
        assert self.released, "the backfill never waited"
        assert because in self.longest[0][1]
        for looks in self.waits:
            assert len({rows for _, _, rows in looks}) == 1, "a batch committed while the backfill waited"
        assert self.longest[-1][0] - self.longest[0][0] >= self.hold
        assert self.batches_after_wait > 0  # and it resumed


def run(engine: sa.Engine, sql: str) -> None:
    with engine.connect() as conn:
        conn.exec_driver_sql(sql)
        conn.commit()


def test_backfill_waits_while_a_postgresql_replica_has_its_replay_paused(pg_pair):
    change = expanded(pg_pair.primary)
    pg_pair.caught_up()
    run(pg_pair.replica, "SELECT pg_wal_replay_pause()")
    watch = Watch(pg_pair.primary, lambda: run(pg_pair.replica, "SELECT pg_wal_replay_resume()"))
    runner = Runner(pg_pair.primary, throttle=ThrottleOptions(max_lag=0.2), on_progress=watch, **SMALL_BATCHES)
    runner.migrate(change)
    # "replayed nothing for …", or "… s behind" when the first look caught its last replay
    watch.assert_waited_without_writing("replica crossfade_test_replica")
    assert runner.load(change).phase is Phase.MIGRATED
    assert_backfilled(pg_pair.primary)
    pg_pair.caught_up()
    assert_backfilled(pg_pair.replica)


def test_a_wait_holds_no_lock_and_no_transaction(pg_pair):
    change = expanded(pg_pair.primary)
    pg_pair.caught_up()
    run(pg_pair.replica, "SELECT pg_wal_replay_pause()")
    held: list[tuple] = []

    def look_at_the_primary() -> None:
        with pg_pair.primary.connect() as conn:
            held.append(conn.exec_driver_sql(
                "SELECT (SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                "        WHERE c.relname IN ('images', 'crossfade_state') AND l.pid <> pg_backend_pid()), "
                "       (SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "        AND pid <> pg_backend_pid() AND (xact_start IS NOT NULL OR state LIKE 'idle in%%'))").first())
        run(pg_pair.replica, "SELECT pg_wal_replay_resume()")

    watch = Watch(pg_pair.primary, look_at_the_primary, hold=0.3)
    Runner(pg_pair.primary, throttle=ThrottleOptions(max_lag=0.2), on_progress=watch, **SMALL_BATCHES).migrate(change)
    watch.assert_waited_without_writing("replica crossfade_test_replica")
    assert held == [(0, 0)]  # no lock on the table or the state, no session in a transaction
    assert_backfilled(pg_pair.primary)


def test_backfill_reads_a_postgresql_replica_given_by_url(pg_pair):
    change = expanded(pg_pair.primary)
    run(pg_pair.replica, "SELECT pg_wal_replay_pause()")
    watch = Watch(pg_pair.primary, lambda: run(pg_pair.replica, "SELECT pg_wal_replay_resume()"))
    options = ThrottleOptions(max_lag=30, replicas=(pg_pair.replica_url,))  # the primary's view would not wait
    Runner(pg_pair.primary, throttle=options, on_progress=watch, **SMALL_BATCHES).migrate(change)
    watch.assert_waited_without_writing("has its replay paused")
    assert_backfilled(pg_pair.primary)


def test_backfill_waits_while_a_mariadb_replica_has_its_sql_thread_stopped(maria_pair):
    change = expanded(maria_pair.primary)
    maria_pair.caught_up()
    run(maria_pair.replica, "STOP REPLICA SQL_THREAD")
    watch = Watch(maria_pair.primary, lambda: run(maria_pair.replica, "START REPLICA SQL_THREAD"))
    runner = Runner(maria_pair.primary, throttle=ThrottleOptions(replicas=(maria_pair.replica_url,)),
                    on_progress=watch, **SMALL_BATCHES)
    runner.migrate(change)
    watch.assert_waited_without_writing("SQL thread stopped")
    assert_backfilled(maria_pair.primary)
    maria_pair.caught_up()
    assert_backfilled(maria_pair.replica)


def restart_when_migrating(pair, change) -> None:
    """Start the replica's SQL thread half a second after migrate began (it waits from its first batch)."""
    deadline = time.monotonic() + 20
    while Runner(pair.primary).load(change).phase is not Phase.MIGRATING and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    run(pair.replica, "START REPLICA SQL_THREAD")


def test_migrate_command_says_why_it_waits(maria_pair, tmp_path):
    change = expanded(maria_pair.primary)
    module = tmp_path / "visibility.py"
    module.write_text("import glance_schema\nchange = glance_schema.visibility_change()\n")
    run(maria_pair.replica, "STOP REPLICA SQL_THREAD")
    threading.Thread(target=restart_when_migrating, args=(maria_pair, change)).start()
    result = CliRunner().invoke(app, ["migrate", str(module), "--url", maria_pair.primary.url.render_as_string(False),
                                      "--replica", maria_pair.replica_url, "--batch-size", "50"])
    assert result.exit_code == 0, result.output
    assert "waiting: replica 127.0.0.1:3322 is not replicating (SQL thread stopped" in result.output
    assert "backfill images resumed" in result.output
    assert Runner(maria_pair.primary).load(change).phase is Phase.MIGRATED


def sessions_sleeping(engine: sa.Engine, count: int, seconds: float) -> list[threading.Thread]:
    sleep = "SELECT pg_sleep(%s)" if engine.dialect.name == "postgresql" else "SELECT SLEEP(%s)"
    threads = [threading.Thread(target=run, args=(engine, sleep % seconds)) for _ in range(count)]
    for thread in threads:
        thread.start()
    return threads


@pytest.mark.parametrize("pair, counter", [("pg_pair", "active_backends"), ("maria_pair", "Threads_running")])
def test_backfill_waits_while_the_server_is_loaded(pair, counter, request):
    pair = request.getfixturevalue(pair)
    change = expanded(pair.primary)
    busy = sa.create_engine(pair.primary.url, pool_size=6)
    quiet = min(_counter(pair.primary, counter) for _ in range(5))
    threads = sessions_sleeping(busy, 4, 1.5)
    watch = Watch(pair.primary, lambda: None, hold=0.0)
    try:
        started = time.monotonic()
        while _counter(pair.primary, counter) < quiet + 4 and time.monotonic() - started < 1.0:
            time.sleep(0.01)  # until the sleepers run
        options = ThrottleOptions(max_lag=None, max_load={counter: quiet + 2})
        Runner(pair.primary, throttle=options, on_progress=watch, **SMALL_BATCHES).migrate(change)
    finally:
        for thread in threads:
            thread.join()
        busy.dispose()
    watch.assert_waited_without_writing(f"server load: {counter}=")
    assert watch.longest[-1][0] - watch.longest[0][0] >= 0.5  # until the sleeping sessions ended
    assert_backfilled(pair.primary)


def _counter(engine: sa.Engine, counter: str) -> int:
    with engine.connect() as conn:
        if counter == "active_backends":
            return conn.exec_driver_sql("SELECT count(*) FROM pg_stat_activity WHERE state = 'active' "
                                        "AND backend_type = 'client backend' AND pid <> pg_backend_pid()").scalar()
        return int(conn.exec_driver_sql("SHOW GLOBAL STATUS LIKE 'Threads_running'").first()[1])


# --- bad options: one line, before anything runs -------------------------------------------

@pytest.mark.parametrize("options, message", [
    ({"max_lag": -1}, "--max-lag must be a positive number of seconds (got -1)"),
    ({"max_lag": 0}, "--max-lag must be a positive number of seconds (got 0)"),
    ({"max_load": {"Threads_running": -5}}, "--max-load threshold of Threads_running must be a positive number"),
    ({"replicas": ("not a url",)}, "--replica is not a database URL: 'not a url'"),
])
def test_nonsense_throttle_options_are_refused(options, message):
    with pytest.raises(ThrottleOptionError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        ThrottleOptions(**options)


def test_max_load_is_read_as_variable_equals_threshold():
    assert parse_max_load("Threads_running=25, Threads_connected=200") == {"Threads_running": 25,
                                                                          "Threads_connected": 200}
    assert parse_max_load(None) == {}
    with pytest.raises(ThrottleOptionError, match="takes VARIABLE=THRESHOLD"):
        parse_max_load("Threads_running")


@pytest.mark.parametrize("pair, options, message", [
    ("maria_pair", {"max_load": {"No_such_status": 3}}, ("--max-load knows no numeric global status variable "
     "'No_such_status' on 127.0.0.1:3321 (e.g. Threads_running)")),
    ("pg_pair", {"max_load": {"Threads_running": 3}}, ("--max-load knows no PostgreSQL counter 'Threads_running' "
     "(PostgreSQL offers active_backends, backends)")),
    ("maria_pair", {"replicas": ("mysql+pymysql://root@127.0.0.1:3399/x",)}, ("--replica cannot be read on "
     "127.0.0.1:3399: (2003")),
    ("maria_pair", {"replicas": ("MARIA_PRIMARY",)}, "--replica 127.0.0.1:3321 is not a replica"),
])
def test_migrate_refuses_what_the_database_tells_is_wrong_before_anything_runs(pair, options, message, request):
    pair = request.getfixturevalue(pair)
    change = expanded(pair.primary)
    if options.get("replicas") == ("MARIA_PRIMARY",):
        options = {"replicas": (pair.primary.url.render_as_string(False),)}
    with pytest.raises(ThrottleOptionError) as refused:
        Runner(pair.primary, throttle=ThrottleOptions(**options)).migrate(change)
    assert str(refused.value).startswith(message)
    assert "\n" not in str(refused.value)
    assert Runner(pair.primary).load(change).phase is Phase.EXPANDED
    assert filled(pair.primary) == 0


@pytest.mark.parametrize("args, words", [
    (["--max-lag", "-1"], "positive number of seconds"),
    (["--max-lag", "soon"], "number of seconds or 'off'"),
    (["--max-load", "Threads_running"], "VARIABLE=THRESHOLD"),
    (["--max-load", "Threads_running=-3"], "must be a positive number"),
])
def test_migrate_command_refuses_bad_throttle_options_before_touching_the_database(tmp_path, args, words):
    url = f"sqlite:///{tmp_path / 'untouched.db'}"
    result = CliRunner().invoke(app, ["migrate", "x.py", "--url", url, *args], env={"COLUMNS": "300"})
    assert result.exit_code == 2, result.output
    assert words in result.output and args[0] in result.output
    assert not (tmp_path / "untouched.db").exists()


def test_sqlite_refuses_a_load_limit(tmp_path):
    engine = sa.create_engine(f"sqlite:///{tmp_path}/t.db")
    change = expanded(engine)
    with pytest.raises(ThrottleOptionError, match="^--max-load needs a database server"):
        Runner(engine, throttle=ThrottleOptions(max_load={"Threads_running": 5})).migrate(change)


@pytest.mark.galera
def test_galera_flow_control_is_read_on_a_galera_node_and_a_quiet_cluster_does_not_wait(galera):
    engine = galera.nodes[0]
    source = GaleraFlowControl(engine)
    assert source.reason(0.0) is None  # the first look sets the baseline
    assert source._galera  # it found wsrep_flow_control_paused_ns: a Galera node
    with engine.connect() as conn:
        paused = conn.exec_driver_sql("SHOW GLOBAL STATUS LIKE 'wsrep_flow_control_paused_ns'").first()[1]
    assert int(paused) >= 0


def test_a_server_without_galera_is_asked_once(maria_pair):
    source = GaleraFlowControl(maria_pair.primary)
    assert source.reason(0.0) is None
    assert not source._galera  # no wsrep status: never asked again
