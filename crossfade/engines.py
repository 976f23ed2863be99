"""Engines from the URLs users give, with one-line errors instead of a driver's traceback.

A URL for a database crossfade does not support, or whose driver is not installed (`mysql://`
means MySQLdb, `postgresql://` psycopg2; crossfade installs PyMySQL and psycopg 3), is refused
before anything connects. A SQLite URL naming a file that does not exist is refused too, unless
the command may create the database: connecting would create an empty file where a typo was.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa

from .errors import MissingDependencyError, NoDatabaseFileError, UnsupportedDialectError

SUPPORTED_BACKENDS = ("postgresql", "mysql", "mariadb", "sqlite")
# The driver crossfade depends on, per backend: what a URL whose driver is missing can use instead.
_INSTALLED_DRIVERS = {"postgresql": "psycopg", "mysql": "pymysql", "mariadb": "pymysql"}
_DRIVER_NAMES = {"psycopg": "psycopg 3", "pymysql": "PyMySQL"}
# Driver modules whose package has another name on PyPI.
_PACKAGES = {"MySQLdb": "mysqlclient", "psycopg2": "psycopg2-binary"}


def open_engine(url: str | sa.URL, *, may_create_file: bool = False, **options: Any) -> sa.Engine:
    """`sa.create_engine(url, **options)` after `check_url`; a SQLite file must exist unless
    `may_create_file` (a command that builds the database, like expand of an Alembic project)."""
    parsed = check_url(url)
    if not may_create_file:
        _require_sqlite_file(parsed)
    return sa.create_engine(parsed, **options)


def check_url(url: str | sa.URL) -> sa.URL:
    """The parsed URL, once its database is one crossfade supports and its driver imports."""
    parsed = sa.make_url(url)
    backend = parsed.get_backend_name()
    if backend not in SUPPORTED_BACKENDS:
        raise UnsupportedDialectError(f"crossfade supports PostgreSQL, MySQL/MariaDB and SQLite, not {backend} "
                                      f"({parsed.render_as_string(hide_password=True)})")
    try:
        parsed.get_dialect().import_dbapi()
    except ImportError as exc:
        raise _missing_driver(parsed, exc) from None
    return parsed


def _missing_driver(parsed: sa.URL, exc: ImportError) -> MissingDependencyError:
    module = exc.name or str(exc)
    backend = parsed.get_backend_name()
    instead = ""
    installed = _INSTALLED_DRIVERS.get(backend)
    if installed is not None and parsed.get_driver_name() != installed:
        alternative = parsed.set(drivername=f"{backend}+{installed}").render_as_string(hide_password=True)
        instead = f"use {alternative} ({_DRIVER_NAMES[installed]} comes with crossfade)"
    return MissingDependencyError(_PACKAGES.get(module, module),
                                  f"the URL {parsed.render_as_string(hide_password=True)}", instead)


def _require_sqlite_file(parsed: sa.URL) -> None:
    if parsed.get_backend_name() != "sqlite":
        return
    database = parsed.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return  # in memory, or a URI filename (`?uri=true`) whose mode says what to create
    if not Path(database).exists():
        raise NoDatabaseFileError(database)


__all__ = ["SUPPORTED_BACKENDS", "check_url", "open_engine"]
