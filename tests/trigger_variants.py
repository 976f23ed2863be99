"""The databases trigger tests run on: SQLite with recursive_triggers off and on, PostgreSQL and
MariaDB. A test module imports the fixtures (`variant`, `dialect_name`, `db`) to run each of its
tests on all four; `db` is conftest's engine with the variant's pragma on every connection.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from pg_versions import PG_VERSIONS

VARIANTS = ("sqlite", "sqlite-recursive", "postgresql", "mysql")
WITH_PG_VERSIONS = VARIANTS + PG_VERSIONS  # and PostgreSQL 16, 17, 18, marked pg_versions


@pytest.fixture(params=VARIANTS)
def variant(request) -> str:
    return request.param


@pytest.fixture
def dialect_name(variant) -> str:
    """Feeds conftest's `engine` fixture: both SQLite variants use a SQLite database."""
    return variant.split("-")[0]


@pytest.fixture
def db(engine, variant) -> sa.Engine:
    """The conftest engine; on SQLite every connection gets the variant's recursive_triggers."""
    if engine.dialect.name == "sqlite":
        set_recursive_triggers(engine, variant == "sqlite-recursive")
    return engine


def set_recursive_triggers(engine: sa.Engine, on: bool) -> None:
    @sa.event.listens_for(engine, "connect")
    def _pragma(dbapi_connection, _record):
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA recursive_triggers = {'ON' if on else 'OFF'}")
        cursor.close()

    with engine.connect() as conn:  # the test would be vacuous if the pragma did not take
        assert conn.exec_driver_sql("PRAGMA recursive_triggers").scalar() == int(on)
