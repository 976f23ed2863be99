"""Verification after each phase: does the database look the way the phase should leave it?"""

from __future__ import annotations

import sqlalchemy as sa

from .dialects.base import DbObject, TriggerDialect, sha
from .state import ChangeState


def expected_objects(dialect: TriggerDialect, syncs: dict) -> dict[str, DbObject]:
    return {o.name: o for ts in syncs.values() for o in dialect.trigger_objects(ts)}


def catalog_checksums(dialect: TriggerDialect, conn: sa.Connection, expected: dict[str, DbObject]) -> dict:
    """What state records for installed objects: checksums of the catalog text and of our SQL."""
    catalog = dialect.catalog_objects(conn, {o.table for o in expected.values()})
    return {name: {"kind": o.kind, "table": o.table, "generated": o.checksum,
                   "catalog": sha(catalog[name][2]) if name in catalog else None}
            for name, o in expected.items()}


def syncing_problems(dialect: TriggerDialect, conn: sa.Connection, state: ChangeState,
                     expected: dict[str, DbObject], added_columns: list[tuple[str, str]]) -> list[str]:
    """While syncing: every trigger present and unchanged; nothing extra; new columns present."""
    tables = set(state.tables)
    catalog = dialect.catalog_objects(conn, tables)
    problems = []
    for name, obj in sorted(expected.items()):
        recorded = state.triggers.get(name)
        if name not in catalog:
            problems.append(f"{obj.kind} {name} on {obj.table} is missing (run expand to reinstall it)")
        elif recorded is None:
            problems.append(f"{obj.kind} {name} on {obj.table} is not recorded in crossfade_state")
        elif sha(catalog[name][2]) != recorded["catalog"]:
            problems.append(f"{obj.kind} {name} on {obj.table} was changed outside crossfade")
        elif obj.checksum != recorded["generated"]:
            problems.append(f"{obj.kind} {name} on {obj.table} differs from the change's code "
                            "(run expand to reinstall it)")
    for name in sorted(set(catalog) - set(expected)):
        problems.append(f"unexpected {catalog[name][0]} {name} on {catalog[name][1]}")
    problems += _column_problems(conn, added_columns, should_exist=True)
    return problems


def clean_problems(dialect: TriggerDialect, conn: sa.Connection, tables: set[str],
                   absent_columns: list[tuple[str, str]]) -> list[str]:
    """After contract or rollback: no crossfade trigger or function left, and columns gone."""
    leftover = dialect.catalog_objects(conn, tables)
    problems = [f"{kind} {name} on {table} was left behind" for name, (kind, table, _) in sorted(leftover.items())]
    problems += [f"function {name} was left behind" for name in dialect.orphan_functions(conn)]
    return problems + _column_problems(conn, absent_columns, should_exist=False)


def _column_problems(conn: sa.Connection, columns: list[tuple[str, str]], should_exist: bool) -> list[str]:
    inspector = sa.inspect(conn)
    problems = []
    for table, column in columns:
        present = column in {c["name"] for c in inspector.get_columns(table)}
        if present != should_exist:
            problems.append(f"column {table}.{column} should {'exist' if should_exist else 'be gone'}")
    return problems
