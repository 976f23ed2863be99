"""Verification after each phase: does the database look the way the phase should leave it?"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from .ddl import AddCheck, AddForeignKey, AddUnique, CreateIndex, Intent
from .derived import DeriveRule, DeriveStatements
from .dialects.base import DbObject, TriggerDialect, sha
from .errors import (
    CheckViolationError,
    ConflictingSourcesError,
    DisagreeingRowsError,
    DuplicateRowsError,
    ForeignKeyActionsError,
    OrphanRowsError,
    UnknownColumnError,
    UnknownTableError,
    UnmovableValuesError,
)
from .expressions import exact
from .schema import Schema, inspect
from .state import ChangeState
from .sync import MoveRule, all_null


def expected_objects(dialect: TriggerDialect, syncs: dict, links: Sequence = (),
                     schema: Schema | None = None) -> dict[str, DbObject]:
    """The triggers and functions a syncing change needs: its tables' and its cross-table rules'
    (which read the tables from `schema`)."""
    objects = {o.name: o for ts in syncs.values() for o in dialect.trigger_objects(ts)}
    for link in dialect.active_links(list(links)):
        objects.update({o.name: o for o in dialect.cross_table_objects(link, schema)})
    return objects


def install_steps(dialect: TriggerDialect, expected: dict[str, DbObject], links: Sequence = (),
                  schema: Schema | None = None, *, placeholders: bool = True) -> list[tuple[str, list[str]]]:
    """expand's trigger installation, in order: (step title, statements).

    A derive_column's source triggers write its target, so a value one of them writes would be
    left stale by a source write whose trigger is not in yet. Where DDL is transactional, its
    tables are installed in one step (other tables one step each); where each CREATE commits on
    its own (one step per object), its placeholders go in first (`placeholders`: never over a
    backfilled column, whose values they would forget)."""
    derives = [link for link in dialect.active_links(list(links)) if isinstance(link, DeriveRule)]
    if not dialect.transactional_ddl:
        stand_ins = [o for d in derives for o in dialect.placeholder_objects(d, schema)] if placeholders else []
        steps = [(f"install triggers on {o.table}: placeholder {o.kind} {o.name}", list(o.create)) for o in stand_ins]
        return steps + [(f"install triggers on {o.table}: {o.kind} {o.name}", list(o.create))
                        for table in sorted({o.table for o in expected.values()})
                        for o in expected.values() if o.table == table]
    units: list[list[str]] = []
    for table in sorted({o.table for o in expected.values()}):
        together = {t for d in derives if table in d.tables() for t in d.tables()}
        if not any(table in unit for unit in units):
            units.append(sorted(together | {table}))
    return [(f"install triggers on {', '.join(unit)}", [sql for t in unit for o in expected.values()
                                                        if o.table == t for sql in o.create]) for unit in units]


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
    for name, (table, how) in sorted(dialect.disabled_triggers(conn, tables).items()):
        problems.append(f"trigger {name} on {table} is {how}, so writes go unsynced: run expand to re-enable "
                        f"it and reconcile the rows written meanwhile (or {dialect.enable_trigger_sql(name, table)})")
    problems += _column_problems(conn, added_columns, should_exist=True, schema=dialect.schema)
    return problems


def clean_problems(dialect: TriggerDialect, conn: sa.Connection, tables: set[str],
                   absent_columns: list[tuple[str, str]]) -> list[str]:
    """After contract or rollback: no crossfade trigger or function left, and columns gone."""
    leftover = dialect.catalog_objects(conn, tables)
    problems = [f"{kind} {name} on {table} was left behind" for name, (kind, table, _) in sorted(leftover.items())]
    problems += [f"function {name} was left behind" for name in dialect.orphan_functions(conn)]
    return problems + _column_problems(conn, absent_columns, should_exist=False, schema=dialect.schema)


def _column_problems(conn: sa.Connection, columns: list[tuple[str, str]], should_exist: bool,
                     schema: str | None = None) -> list[str]:
    inspector = inspect(conn)
    problems = []
    for table, column in columns:
        present = column in {c["name"] for c in inspector.get_columns(table, schema=schema)}
        if present != should_exist:
            problems.append(f"column {table}.{column} should {'exist' if should_exist else 'be gone'}")
    return problems


# --- constraints contract adds ----------------------------------------------------------------

def refuse_violations(conn: sa.Connection, schema: Schema, intents: Sequence[Intent]) -> None:
    """Before a phase's first DDL: the existing rows satisfy every unique index, unique, foreign
    key and check constraint the phase will add, or a typed error names the table, the constraint
    and a row."""
    try:
        for intent in intents:
            if isinstance(intent, CreateIndex) and intent.unique:
                _refuse_duplicates(conn, AddUnique(intent.table, intent.name, intent.columns))
            elif isinstance(intent, AddUnique):
                _refuse_duplicates(conn, intent)
            elif isinstance(intent, AddForeignKey):
                _refuse_orphans(conn, schema, intent)
            elif isinstance(intent, AddCheck):
                _refuse_failing_rows(conn, schema, intent)
    finally:
        if conn.in_transaction():
            conn.rollback()  # a read transaction must not hold locks while DDL waits for them


def refuse_unmovable(conn: sa.Connection, schema: Schema, links: Sequence, phase: str, *,
                     own_transaction: bool = True) -> None:
    """Before expand's or contract's first DDL: no moved value is stranded without a target row,
    and (at expand) rows sharing a target row agree, or a typed error names the rows.
    `own_transaction`: the reads' transaction is this check's, ended so it holds no lock while
    DDL waits (False inside a caller's transaction, e.g. `alembic upgrade`'s)."""
    try:
        for move in [link for link in links if isinstance(link, MoveRule)]:
            source, target = schema.table(move.source), schema.table(move.target)
            _refuse_stranded(conn, move, source, target, phase)
            if phase == "expand" and move.many:
                _refuse_disagreeing(conn, move, source)
        for derive in [link for link in links if isinstance(link, DeriveRule)]:
            if phase == "expand" and derive.refuse_conflicts:
                _refuse_conflicting_sources(conn, DeriveStatements(derive, schema.table))
    finally:
        if own_transaction and conn.in_transaction():
            conn.rollback()


def _refuse_conflicting_sources(conn: sa.Connection, derive: DeriveStatements) -> None:
    """derive_column: every target row's sources agree (NULLs aside), or the rule would pick one
    value and drop the others; the error shows a few target rows and what each source holds."""
    conflicting = derive.conflicts()
    keys = conn.execute(conflicting.limit(3)).scalars().all()
    if not keys:
        return
    count = conn.execute(sa.select(sa.func.count()).select_from(conflicting.order_by(None).subquery())).scalar()
    samples = []
    for key in keys:
        held = [f"{s.table}.{s.column}={sorted(set(conn.execute(q).scalars()))!r}"
                for s, q in zip(derive.rule.sources, derive.values_of(key))]
        samples.append(f"{derive.rule.target_key}={key!r}: {', '.join(held)}")
    raise ConflictingSourcesError(derive.rule.target, derive.rule.column, count, "; ".join(samples))


def _refuse_stranded(conn: sa.Connection, move: MoveRule, source: sa.Table, target: sa.Table, phase: str) -> None:
    has_values = sa.not_(all_null([source.c[c] for c in move.source_columns]))
    matched = sa.exists().where(target.c[move.target_key] == source.c[move.source_key])
    stranded = sa.select(source.c[move.source_pk]).where(has_values, sa.not_(matched))
    count = conn.execute(sa.select(sa.func.count()).select_from(stranded.subquery())).scalar()
    if count:
        first = conn.execute(stranded.order_by(source.c[move.source_pk]).limit(1)).scalar()
        raise UnmovableValuesError(move.source, ", ".join(move.source_columns), move.target, count,
                                   f"{move.source_pk}={first!r}", phase)


def _refuse_disagreeing(conn: sa.Connection, move: MoveRule, source: sa.Table) -> None:
    key = source.c[move.source_key]
    for column in move.source_columns:
        value = exact(source.c[column])
        query = (sa.select(key).where(key.is_not(None)).group_by(key)
                 .having(sa.or_(sa.func.count(sa.distinct(value)) > 1,
                                sa.and_(sa.func.count(value) > 0, sa.func.count(value) < sa.func.count())))
                 .order_by(key).limit(1))
        shared = conn.execute(query).scalar()
        if shared is not None:
            rows = conn.execute(sa.select(source.c[move.source_pk], source.c[column]).where(key == shared)
                                .order_by(source.c[move.source_pk]).limit(4)).all()
            sample = ", ".join(f"{move.source_pk}={pk!r}: {v!r}" for pk, v in rows)
            raise DisagreeingRowsError(move.source, column, move.target, f"{move.source_key}={shared!r}", sample)


def unfinished_steps(dialect: TriggerDialect, conn: sa.Connection, schema: Schema,
                     intents: Sequence[Intent]) -> list[str]:
    """The steps of a phase's `intents` whose catalog probe says they have not happened: an index
    or a constraint missing (dropped outside crossfade, or a phase stopped half-way)."""
    steps = dialect.steps(list(intents), schema.copy())
    problems = [f"{step.name}: not done in the database" for step in steps
                if step.is_done is not None and not step.is_done(conn)]
    problems += [str(error) for error in _other_actions(conn, dialect, intents)]
    if conn.in_transaction():
        conn.rollback()
    return problems


def refuse_other_actions(conn: sa.Connection, dialect: TriggerDialect, intents: Sequence[Intent]) -> None:
    """Before contract's first DDL: a foreign key the change adds that already exists by its name
    (made by hand, or changed since a contract stopped half-way) has the declared actions, or a
    rerun would take it as done and leave other cascades in place."""
    try:
        for error in _other_actions(conn, dialect, intents):
            raise error
    finally:
        if conn.in_transaction():
            conn.rollback()


def _other_actions(conn: sa.Connection, dialect: TriggerDialect, intents: Sequence[Intent]):
    for intent in intents:
        if isinstance(intent, AddForeignKey):
            found = dialect.live_foreign_key_actions(conn, intent.table, intent.name)
            declared = dialect.foreign_key_actions(intent.ondelete, intent.onupdate)
            if found is not None and found != declared:
                yield ForeignKeyActionsError(intent.table, intent.name, found, declared)


def _refuse_duplicates(conn: sa.Connection, intent: AddUnique) -> None:
    duplicates = intent.violating_rows()
    first = conn.execute(duplicates.limit(1)).first()
    if first is not None:
        count = conn.execute(sa.select(sa.func.count()).select_from(duplicates.subquery())).scalar()
        sample = f"{_values(intent.columns, first)} ({first[-1]} rows)"
        raise DuplicateRowsError(intent.table, intent.name, count, sample)


def _refuse_orphans(conn: sa.Connection, schema: Schema, intent: AddForeignKey) -> None:
    inspector = inspect(conn)
    if not inspector.has_table(intent.ref_table, schema=schema.metadata.schema):
        raise UnknownTableError(intent.ref_table)
    referenced = {c["name"] for c in inspector.get_columns(intent.ref_table, schema=schema.metadata.schema)}
    for column in intent.ref_columns:
        if column not in referenced:
            raise UnknownColumnError(intent.ref_table, column)
    key = [*schema.primary_key(intent.table), *intent.columns]
    orphans = intent.violating_rows(key)
    first = conn.execute(orphans.limit(1)).first()
    if first is not None:
        count = conn.execute(sa.select(sa.func.count()).select_from(orphans.subquery())).scalar()
        raise OrphanRowsError(intent.table, intent.name, intent.ref_table, count,
                              _values(list(dict.fromkeys(key)), first))


def _refuse_failing_rows(conn: sa.Connection, schema: Schema, intent: AddCheck) -> None:
    key = schema.primary_key(intent.table) or tuple(c.name for c in schema.table(intent.table).columns)
    failing = intent.violating_rows(key)
    first = conn.execute(failing.limit(1)).first()
    if first is not None:
        count = conn.execute(sa.select(sa.func.count()).select_from(failing.subquery())).scalar()
        raise CheckViolationError(intent.table, intent.name, count, _values(key, first))


def _values(columns: Sequence[str], row) -> str:
    return ", ".join(f"{column}={value!r}" for column, value in zip(columns, row))
