"""One file per dialect; `for_dialect` picks the class by the connection's dialect name."""

from __future__ import annotations

import sqlalchemy as sa

from ..errors import UnsupportedDialectError
from .base import DbObject, TriggerDialect
from .mysql import MySQLDialect
from .postgresql import PostgresDialect
from .sqlite import SQLiteDialect

_BY_NAME: dict[str, type[TriggerDialect]] = {
    "postgresql": PostgresDialect,
    "mysql": MySQLDialect,
    "mariadb": MySQLDialect,
    "sqlite": SQLiteDialect,
}

NAMES = ("postgresql", "mysql", "sqlite")
# What `crossfade plan --dialect` renders for: MariaDB's SQL differs from MySQL's (CREATE OR
# REPLACE TRIGGER, ADD COLUMN IF NOT EXISTS, SET STATEMENT ... FOR).
PLAN_NAMES = ("postgresql", "mariadb", "mysql", "sqlite")


def for_dialect(sa_dialect: sa.Dialect) -> TriggerDialect:
    try:
        return _BY_NAME[sa_dialect.name](sa_dialect)
    except KeyError:
        raise UnsupportedDialectError(
            f"crossfade supports PostgreSQL, MySQL/MariaDB and SQLite, not {sa_dialect.name}") from None


def offline(name: str) -> TriggerDialect:
    """A dialect for rendering SQL without a database (`crossfade plan --sql`)."""
    from sqlalchemy.dialects import mysql, postgresql, sqlite

    modules = {"postgresql": postgresql, "mysql": mysql, "mariadb": mysql, "sqlite": sqlite}
    if name not in modules:
        raise UnsupportedDialectError(f"unknown dialect {name!r}; choose one of {', '.join(PLAN_NAMES)}")
    sa_dialect = modules[name].dialect()
    if name == "mariadb":
        sa_dialect.is_mariadb = True
    return for_dialect(sa_dialect)


def plan_name(target: TriggerDialect) -> str:
    """The name `offline` takes for `target`'s database: "mariadb" for MariaDB, else its name."""
    return "mariadb" if getattr(target, "is_mariadb", False) else target.name


__all__ = ["NAMES", "PLAN_NAMES", "DbObject", "TriggerDialect", "for_dialect", "offline", "plan_name"]
