"""Objects that use what contract drops: views, rules, generated columns, indexes over other
columns too, foreign keys, check constraints and other triggers.

Dropping a column under them fails half-way through contract (PostgreSQL's views, MariaDB's
foreign keys), drops them silently (PostgreSQL's multi-column indexes) or leaves them broken
(MariaDB's and SQLite's views). So contract looks for them before its first DDL statement and
refuses, naming each; the database is untouched and contract runs again once they are dealt with.
"""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa

from . import sqltext
from .change import Change
from .ddl import SwapStandIn
from .dialects.base import TriggerDialect
from .errors import Dependent, DependentObjectsError
from .schema import Schema


def refuse_dependents(conn: sa.Connection, dialect: TriggerDialect, schema: Schema, change: Change) -> None:
    """Raise DependentObjectsError when anything uses what contract drops."""
    found = find_dependents(conn, dialect, schema, change)
    if found:
        raise DependentObjectsError(found)


def dependents_warnings(conn: sa.Connection, dialect: TriggerDialect, schema: Schema, change: Change) -> list[str]:
    """Expand's early word: what contract will refuse unless it is dealt with meanwhile."""
    found = find_dependents(conn, dialect, schema, change)
    return [f"contract will refuse until this is dealt with: {DependentObjectsError(found).detail}"] if found else []


def find_dependents(conn: sa.Connection, dialect: TriggerDialect, schema: Schema, change: Change) -> list[Dependent]:
    """What uses a column contract drops (still in the database), or a table name contract takes
    away (rename_table) where the database does not carry the objects over to the new name."""
    found = [d for table, columns in sorted(_still_there(schema, change.dropped_columns()).items())
             for d in column_dependents(conn, dialect, schema, table, columns)]
    for swap in change.contract_intents(schema.copy()):
        if isinstance(swap, SwapStandIn) and schema.has_table(swap.table):
            found += dialect.renamed_table_dependents(conn, swap.table, swap.name)
    return found


def column_dependents(conn: sa.Connection, dialect: TriggerDialect, schema: Schema, table: str,
                      columns: list[str]) -> list[Dependent]:
    """What uses `table`'s `columns`: the generated columns read from the snapshot, the rest from the catalog."""
    found = generated_dependents(schema, table, columns)
    catalog = [d for d in dialect.column_dependents(conn, table, columns) if d not in found]
    return _unique(found + catalog)


def generated_dependents(schema: Schema, table: str, columns: list[str]) -> list[Dependent]:
    """The table's generated columns (other than those dropped) whose expression uses one of `columns`."""
    found = []
    for column in schema.table(table).columns:
        if column.computed is None or column.name in columns:
            continue
        expression = str(column.computed.sqltext)
        for used in columns:
            if sqltext.mentions(expression, used):
                found.append(Dependent("generated column", f"{table}.{column.name}", f"{table}.{used}"))
    return found


def _still_there(schema: Schema, dropped: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    by_table: dict[str, list[str]] = {}
    for table, column in dropped:
        if schema.has_column(table, column) and column not in by_table.get(table, []):
            by_table.setdefault(table, []).append(column)
    return by_table


def _unique(found: list[Dependent]) -> list[Dependent]:
    return list(dict.fromkeys(found))
