"""Real databases for every test: SQLite always, PostgreSQL and MariaDB from the environment.

URLs come from CROSSFADE_TEST_PG_URL and CROSSFADE_TEST_MYSQL_URL (local defaults below). Each
run uses databases of its own, the URL's name with this process's id appended, created on first
use, emptied before every test and dropped when the run ends: two runs on one server (two
checkouts, a developer and CI) never touch each other's data. With CI=true an unreachable server
fails the run: a silent skip is how migration tests rot.
"""

from __future__ import annotations

import os

import pytest
import sqlalchemy as sa

from crossfade.testing.databases import drop_database, empty_database, ensure_database


def per_run(url: str) -> str:
    """`url` with this run's database: its name with the process id appended."""
    parsed = sa.make_url(url)
    return parsed.set(database=f"{parsed.database}_{os.getpid()}").render_as_string(hide_password=False)


# verify's latency check fails above 1 s by default. On this machine, shared by several suites on
# two cores, a writer thread can wait that long for a core; the suite's simulations fail only above
# 10 s (still far below SQLite's 60 s waits or a DDL lock held for a phase), and the latency bound's
# own tests (test_verify_latency.py) set theirs, the default included.
os.environ.setdefault("CROSSFADE_MAX_STALL", "10")

PG_URL = per_run(os.environ.get("CROSSFADE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/crossfade_test"))
MYSQL_URL = per_run(os.environ.get("CROSSFADE_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/crossfade_test"))
DIALECTS = ("sqlite", "postgresql", "mysql")
SERVER_URLS = {"postgresql": PG_URL, "mysql": MYSQL_URL}  # tests/pg_versions.py adds PostgreSQL 16, 17, 18
# Fixtures of tests/galera.py and galera_nodes.py (the cluster), pg_versions.py, replicas.py;
# --quick (selection.py); scratch files in memory (scratch_storage.py).
pytest_plugins = ["galera", "pg_versions", "replicas", "selection", "scratch_storage"]


def _unreachable(name: str, exc: Exception):
    message = f"{name} is not reachable: {str(exc).splitlines()[0]}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message + " (CI never skips a database)", pytrace=False)
    pytest.skip(message)


_checked: dict[str, Exception | None] = {}


def _ensure_database(url: str) -> None:
    """Create the test database once per session, or remember why the server is unreachable."""
    if url in _checked:
        if _checked[url] is not None:
            raise _checked[url]
        return
    try:
        ensure_database(url)
        _checked[url] = None
    except sa.exc.OperationalError as exc:
        _checked[url] = exc
        raise


def make_engine(dialect: str, tmp_path) -> sa.Engine:
    """A fresh, empty database of the given dialect."""
    if dialect == "sqlite":
        return sa.create_engine(f"sqlite:///{tmp_path / 'test.db'}")
    url = SERVER_URLS[dialect]
    try:
        _ensure_database(url)
    except sa.exc.OperationalError as exc:
        _unreachable(dialect, exc)
    engine = sa.create_engine(url)
    empty_database(engine)
    engine.dispose()
    return sa.create_engine(url)


@pytest.fixture(params=DIALECTS)
def dialect_name(request) -> str:
    return request.param


@pytest.fixture
def engine(dialect_name, tmp_path):
    engine = make_engine(dialect_name, tmp_path)
    yield engine
    engine.dispose()


def pytest_addoption(parser):
    parser.addoption("--soak", action="store_true",
                     help="long simulator runs: 2,000 writes per phase instead of a short run")


def pytest_sessionfinish(session, exitstatus):
    """Drop this run's databases (only those it created: `_checked` knows them)."""
    for url, unreachable in _checked.items():
        if unreachable is None:
            drop_database(url)
