"""Checks before any DDL: is this database and this table fit for online sync triggers?

Each problem is one precise sentence. Errors stop the phase before it touches anything;
warnings are reported and the phase goes on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import sqlalchemy as sa

from .derived import DeriveRule
from .dialects.base import TriggerDialect
from .errors import PreflightError
from .schema import Schema
from .sync import LinkRule, MoveRule, TableSync


@dataclass
class Preflight:
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def raise_for_errors(self) -> None:
        if self.errors:
            raise PreflightError("preflight failed:\n  - " + "\n  - ".join(self.errors))


def run_preflight(conn: sa.Connection, dialect: TriggerDialect, schema: Schema,
                  syncs: dict[str, TableSync], links: Sequence[LinkRule | MoveRule] = (), *,
                  allow_foreign_triggers: bool = False) -> Preflight:
    """`links`: the cross-table rules the dialect keeps with triggers (TriggerDialect.active_links)."""
    result = Preflight()
    linked = sorted({table for link in links for table in link.tables() if schema.has_table(table)})
    errors, warnings = dialect.privilege_problems(conn, sorted(set(syncs) | set(linked)))
    result.errors += errors
    result.warnings += warnings + dialect.replication_warnings(conn, sorted(set(syncs) | set(linked)))
    result.errors += dialect.cluster_problems(conn, sorted(set(syncs) | set(linked)))
    for name in sorted(set(syncs) | set(linked)):
        if name in syncs:
            _check_primary_key(dialect, schema.table(name), result)
        foreign = dialect.foreign_triggers(conn, name)
        if foreign:
            message = (f"table {name!r} already has triggers crossfade did not write ({', '.join(foreign)}); "
                       "they may fight the sync triggers")
            (result.warnings if allow_foreign_triggers else result.errors).append(
                message + ("" if allow_foreign_triggers else " (pass allow_foreign_triggers to accept them)"))
        if name in syncs:
            result.errors += dialect.cascade_problems(conn, name, syncs[name].synced_columns())
    for link in links:
        if isinstance(link, MoveRule):
            result.errors += dialect.move_problems(conn, link)
        if isinstance(link, DeriveRule):
            result.errors += dialect.derive_problems(conn, link)
        result.warnings += dialect.link_warnings(link)
    return result


def _check_primary_key(dialect: TriggerDialect, table: sa.Table, result: Preflight) -> None:
    if table.primary_key.columns:
        return
    if dialect.name == "sqlite":
        result.warnings.append(f"table {table.name!r} has no primary key; crossfade keys its rows by rowid")
    else:
        result.errors.append(
            f"table {table.name!r} has no primary key; crossfade's backfill walks rows by primary key (and Galera "
            f"replicates rows by it): add one, ALTER TABLE {table.name} ADD PRIMARY KEY (...)")
