"""Real databases for every test: SQLite always, PostgreSQL and MariaDB from the environment.

URLs come from CROSSFADE_TEST_PG_URL and CROSSFADE_TEST_MYSQL_URL (local defaults below); the
database named in each URL is created when missing and emptied before every test. With CI=true
an unreachable server fails the run: a silent skip is how migration tests rot.
"""

from __future__ import annotations

import os

import pytest
import sqlalchemy as sa

PG_URL = os.environ.get("CROSSFADE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/crossfade_test")
MYSQL_URL = os.environ.get("CROSSFADE_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/crossfade_test")
DIALECTS = ("sqlite", "postgresql", "mysql")


def _unreachable(name: str, exc: Exception):
    message = f"{name} is not reachable: {str(exc).splitlines()[0]}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message + " (CI never skips a database)", pytrace=False)
    pytest.skip(message)


_checked: dict[str, Exception | None] = {}


def _server_url(url: str) -> sa.URL:
    parsed = sa.make_url(url)
    admin_db = "postgres" if parsed.get_backend_name() == "postgresql" else None
    # URL.set() ignores database=None, so build the server URL afresh.
    return sa.URL.create(parsed.drivername, parsed.username, parsed.password, parsed.host,
                         parsed.port, admin_db, parsed.query)


def _ensure_database(url: str) -> None:
    """Create the test database once per session, or remember why the server is unreachable."""
    if url in _checked:
        if _checked[url] is not None:
            raise _checked[url]
        return
    parsed = sa.make_url(url)
    engine = sa.create_engine(_server_url(url), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            if parsed.get_backend_name() == "postgresql":
                exists = conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"),
                                      {"n": parsed.database}).first()
                if not exists:
                    conn.exec_driver_sql(f'CREATE DATABASE "{parsed.database}"')
            else:
                conn.exec_driver_sql(f"CREATE DATABASE IF NOT EXISTS `{parsed.database}`")
        _checked[url] = None
    except sa.exc.OperationalError as exc:
        _checked[url] = exc
        raise
    finally:
        engine.dispose()


def _empty(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql("DROP SCHEMA IF EXISTS public CASCADE")
            conn.exec_driver_sql("CREATE SCHEMA public")
        else:
            database = engine.url.database
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{database}`")
            conn.exec_driver_sql(f"CREATE DATABASE `{database}`")
            conn.exec_driver_sql(f"USE `{database}`")


def make_engine(dialect: str, tmp_path) -> sa.Engine:
    """A fresh, empty database of the given dialect."""
    if dialect == "sqlite":
        return sa.create_engine(f"sqlite:///{tmp_path / 'test.db'}")
    url = PG_URL if dialect == "postgresql" else MYSQL_URL
    try:
        _ensure_database(url)
    except sa.exc.OperationalError as exc:
        _unreachable(dialect, exc)
    engine = sa.create_engine(url)
    _empty(engine)
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
