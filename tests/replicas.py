"""Fixtures for real replication pairs, started by `scripts/replicas start` (scripts/test runs it).

PostgreSQL: primary 127.0.0.1:5434, streaming replica 127.0.0.1:5433. MariaDB: primary 3321 with a
binary log, replica 3322. Each run uses a database of its own on the primary (replicated to the
replica, as every write is). One test at a time uses a pair (a file lock across pytest-xdist
workers and runs): a test pauses its replica, which would throttle any other test's backfill.
Every test leaves its replica replaying. With CI=true a missing pair fails, never skips.
"""

from __future__ import annotations

import fcntl
import os
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa

from crossfade.testing.databases import drop_database, empty_database, ensure_database

REPLICAS_DIR = Path(os.environ.get("CROSSFADE_REPLICAS_DIR", "/var/tmp/crossfade-replicas"))
PG_PAIR = ("postgresql+psycopg://postgres@127.0.0.1:5434/crossfade_test", 5433)
MARIA_PAIR = ("mysql+pymysql://root@127.0.0.1:3321/crossfade_test", 3322)


@dataclass
class Pair:
    primary: sa.Engine
    replica: sa.Engine
    replica_url: str

    def caught_up(self, timeout: float = 20.0) -> None:
        """Wait until the replica has replayed everything the primary wrote so far."""
        deadline = time.monotonic() + timeout
        target = self._written()
        while not self._replayed(target):
            assert time.monotonic() < deadline, "the replica did not catch up"
            time.sleep(0.05)

    def _written(self) -> str:
        with self.primary.connect() as conn:
            if self.primary.dialect.name == "postgresql":
                # A backfill batch commits without waiting for its WAL (synchronous_commit off), so
                # the WAL written so far may end before it: a synchronous commit of our own writes
                # out everything before it.
                conn.exec_driver_sql("SELECT txid_current()")
                conn.commit()
                return conn.exec_driver_sql("SELECT pg_current_wal_lsn()::text").scalar()
            return conn.exec_driver_sql("SELECT @@gtid_binlog_pos").scalar()

    def _replayed(self, target: str) -> bool:
        if self.primary.dialect.name == "postgresql":
            with self.primary.connect() as conn:
                return bool(conn.exec_driver_sql(
                    "SELECT coalesce(bool_and(replay_lsn >= %(target)s::pg_lsn), false) FROM pg_stat_replication "
                    "WHERE application_name = 'crossfade_test_replica'", {"target": target}).scalar())
        target = self._written()  # the replica's position equals the primary's only when it is the latest
        try:
            with self.replica.connect() as conn:
                return conn.exec_driver_sql("SELECT @@gtid_slave_pos").scalar() == target
        except sa.exc.OperationalError as exc:
            if exc.orig.args[0] == 1049:  # the replica has not replayed CREATE DATABASE yet
                return False
            raise


@pytest.fixture(scope="session")
def _replica_databases():
    """This run's databases on the pairs' primaries, dropped when the run ends."""
    created: list[str] = []
    yield created
    for url in created:
        drop_database(url)


def _pair(pair: tuple[str, int], what: str, created: list[str]):
    from conftest import _unreachable, per_run  # conftest imports this module

    primary_url = per_run(pair[0])
    replica_url = sa.make_url(primary_url).set(port=pair[1]).render_as_string(hide_password=False)
    try:
        ensure_database(primary_url)
    except sa.exc.OperationalError as exc:
        _unreachable(f"{what} (start it with scripts/replicas start)", exc)
    if primary_url not in created:
        created.append(primary_url)
    with _one_test_at_a_time():
        primary = sa.create_engine(primary_url)
        empty_database(primary)
        replica = sa.create_engine(replica_url)
        pair = Pair(primary, replica, replica_url)
        try:
            pair.caught_up()  # the database exists on the replica too
            yield pair
        finally:
            _replaying(pair)
            primary.dispose()
            replica.dispose()


def _replaying(pair: Pair) -> None:
    """Leave the replica replaying, whatever the test did to it."""
    with pair.replica.connect() as conn:
        if pair.replica.dialect.name == "postgresql":
            conn.exec_driver_sql("SELECT pg_wal_replay_resume()")
        else:
            conn.exec_driver_sql("START REPLICA")


class _one_test_at_a_time:
    def __enter__(self):
        REPLICAS_DIR.mkdir(parents=True, exist_ok=True)
        self.file = open(REPLICAS_DIR / "tests.lock", "w")
        fcntl.flock(self.file, fcntl.LOCK_EX)

    def __exit__(self, *exc):
        fcntl.flock(self.file, fcntl.LOCK_UN)
        self.file.close()


@pytest.fixture
def pg_pair(_replica_databases):
    """A PostgreSQL primary (this run's database) and its streaming replica."""
    yield from _pair(PG_PAIR, "the PostgreSQL replication pair 127.0.0.1:5434 -> 5433",
                     _replica_databases)


@pytest.fixture
def maria_pair(_replica_databases):
    """A MariaDB primary (this run's database) and its replica."""
    yield from _pair(MARIA_PAIR, "the MariaDB replication pair 127.0.0.1:3321 -> 3322",
                     _replica_databases)


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(items):
    """Every test that takes a pair carries the `replicas` marker and runs in one pytest-xdist
    worker (scripts/test: --dist loadgroup): a test stops its replica, and another worker's
    database, made meanwhile on the primary, would not reach the replica."""
    for item in items:
        takes_a_pair = {"pg_pair", "maria_pair"} & set(getattr(item, "fixturenames", ()))
        if takes_a_pair or item.get_closest_marker("replicas"):  # or asks for one by name, parametrized
            item.add_marker(pytest.mark.replicas)
            item.add_marker(pytest.mark.xdist_group("replicas"))
