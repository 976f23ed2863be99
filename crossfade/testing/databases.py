"""Scratch databases for the simulator and for tests: created on first use, emptied on demand."""

from __future__ import annotations

import sqlalchemy as sa


def server_url(url: str | sa.URL) -> sa.URL:
    """The URL of the server itself (PostgreSQL's `postgres` database; no database on MySQL)."""
    parsed = sa.make_url(url)
    admin_db = "postgres" if parsed.get_backend_name() == "postgresql" else None
    # URL.set() ignores database=None, so the URL is built afresh.
    return sa.URL.create(parsed.drivername, parsed.username, parsed.password, parsed.host,
                         parsed.port, admin_db, parsed.query)


def ensure_database(url: str | sa.URL) -> None:
    """Create the database `url` names when it does not exist (SQLite creates its own file).

    Raises sqlalchemy.exc.OperationalError when the server cannot be reached.
    """
    parsed = sa.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return
    engine = sa.create_engine(server_url(parsed), isolation_level="AUTOCOMMIT")
    name = engine.dialect.identifier_preparer.quote_identifier(parsed.database)
    try:
        with engine.connect() as conn:
            if parsed.get_backend_name() == "postgresql":
                exists = conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"),
                                      {"n": parsed.database}).first()
                if not exists:
                    conn.exec_driver_sql(f"CREATE DATABASE {name}")
            else:
                conn.exec_driver_sql(f"CREATE DATABASE IF NOT EXISTS {name}")
    finally:
        engine.dispose()


def drop_database(url: str | sa.URL) -> None:
    """Drop the database `url` names, when it exists (SQLite: nothing; its file is the caller's)."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return
    engine = sa.create_engine(server_url(parsed), isolation_level="AUTOCOMMIT")
    name = engine.dialect.identifier_preparer.quote_identifier(parsed.database)
    try:
        with engine.connect() as conn:
            if parsed.get_backend_name() == "postgresql":
                conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            else:
                conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}")
    finally:
        engine.dispose()


def empty_database(engine: sa.Engine) -> None:
    """Drop everything in the engine's database (PostgreSQL: its public schema)."""
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql("DROP SCHEMA IF EXISTS public CASCADE")
            conn.exec_driver_sql("CREATE SCHEMA public")
        elif engine.dialect.name == "sqlite":
            names = conn.exec_driver_sql(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'").scalars().all()
            for name in names:
                conn.exec_driver_sql(f"DROP TABLE IF EXISTS {engine.dialect.identifier_preparer.quote_identifier(name)}")
        else:
            database = engine.dialect.identifier_preparer.quote_identifier(engine.url.database)
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {database}")
            conn.exec_driver_sql(f"CREATE DATABASE {database}")
            conn.exec_driver_sql(f"USE {database}")
