"""A crossfade revision under a plain `alembic upgrade`: every phase at once, no triggers.

For operators who accept downtime (release N stopped): the plain operations expand would run,
the change's additive DDL, one set-based UPDATE per table instead of batches, the change's
contract DDL, then the remaining plain operations. Online, each step is probed first, as
crossfade's phases are, so a rerun after a failure on MariaDB (no transactional DDL) finishes
the job. With `--sql`, the same statements are printed for the dialect, the tables taken from the
earlier revisions (crossfade.alembic.snapshot).

A revision crossfade has started (expanded, migrating, migrated, or stopped half-way) is
refused: finishing it here would skip crossfade's own steps. One crossfade contracted but did
not stamp is completed without running its change twice.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from weakref import WeakKeyDictionary

import sqlalchemy as sa
from alembic import op as alembic_op
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError

from .. import checks, compute, state
from ..backfill import backfill_statements, link_job
from ..change import Change
from ..ddl import Step
from ..dialects import TriggerDialect, for_dialect
from ..errors import CrossfadeError, NullsRemainError
from ..schema import Schema, inspect
from ..sync import LinkRule
from . import render, snapshot
from .classify import classify, table_of
from .declare import Declaration
from .project import Project, Revision
from .recording import record

log = logging.getLogger("crossfade.alembic")


class OfflinePathError(CrossfadeError, CommandError):
    """The offline path cannot run a revision (an Alembic CommandError: `alembic` prints it as
    one FAILED line)."""


def run_revision(declaration: Declaration) -> None:
    """Run `declaration`'s revision inside the `alembic upgrade` that is calling it."""
    context = alembic_op.get_context()
    try:
        plain = record(declaration.plain, context.dialect, f"revision {declaration.revision}")
        if context.as_sql:
            target: _Live | _Script = _Script(context, _release_n_schema(context, declaration))
        else:
            _refuse_in_flight(context.bind, declaration.revision)
            target = _Live(context)
        _run(target, declaration, plain)
    except OfflinePathError:
        raise
    except CrossfadeError as exc:
        raise OfflinePathError(f"crossfade revision {declaration.revision}: {exc}") from exc


def _refuse_in_flight(conn: sa.Connection, revision: str) -> None:
    phase = state.load(conn, revision).phase
    if phase in state.IN_FLIGHT:
        raise OfflinePathError(
            f"crossfade revision {revision} is {phase.value} by crossfade (a rolling upgrade is under way): "
            "finish it with `crossfade migrate` and `crossfade contract` (contract stamps alembic_version), "
            "or undo it with `crossfade rollback`, then run alembic upgrade again")


def _run(target: _Live | _Script, declaration: Declaration, plain: list) -> None:
    change = declaration.change
    if isinstance(target, _Live) and change is not None and target.contracted(declaration.revision):
        target.note(f"crossfade revision {declaration.revision}: its change was contracted by crossfade already")
        change = None
    tables = {t for t in map(table_of, plain) if t} | (change.tables() if change else set())
    phases = classify(plain, target.schema(tables), declaration.revision, strict=False)
    target.note(f"crossfade revision {declaration.revision}: offline, every phase at once, no triggers")
    for operation in phases.expand:
        target.plain(operation)
    if change is not None:
        _run_change(target, change)
    for operation in phases.contract:
        target.plain(operation)


def _run_change(target: _Live | _Script, change: Change) -> None:
    dialect = target.dialect
    schema = target.schema(change.tables())
    change.validate(schema)
    target.note(f"{change.id}: expand")
    for step in dialect.steps(change.expand_intents(schema), schema):
        target.step(step)
    target.note(f"{change.id}: backfill, one set-based UPDATE per rule")
    dropped = set(change.dropped_columns())
    for table_sync in change.table_syncs(schema).values():
        # Fills stand in for what release N+1 leaves out of a column contract drops: nobody reads it.
        table_sync = replace(table_sync, fills=[f for f in table_sync.fills if (f.table, f.column) not in dropped])
        for statement in backfill_statements(table_sync, sa.true()):
            target.backfill(statement)
    for link in change.links(schema):
        if isinstance(link, LinkRule) and link.mirror:
            continue  # rename_table's stand-in: contract drops it unread
        job = link_job(dialect, link, schema.table(link.source), schema.table(link.target))
        for statement in job.statements(sa.true()):
            target.backfill(statement)
    for work in change.migrate_work(schema):
        target.python_work(work, schema)
    target.refuse_remaining_nulls(change, schema)
    target.note(f"{change.id}: contract")
    for step in dialect.steps(change.contract_intents(schema), schema):
        target.step(step)


class _Live:
    """Runs the steps on the connection `alembic upgrade` is migrating."""

    def __init__(self, context: MigrationContext):
        self.context, self.conn = context, context.bind
        self.dialect: TriggerDialect = for_dialect(self.conn.dialect)

    def contracted(self, revision: str) -> bool:
        return state.load(self.conn, revision).phase is state.Phase.CONTRACTED

    def schema(self, tables: set[str]) -> Schema:
        return Schema.reflect(self.conn, tables)

    def plain(self, operation) -> None:
        for step in render.steps(operation, self.dialect, self._table, online=False):
            self.step(step)

    def step(self, step: Step) -> None:
        if step.is_done is not None and step.is_done(self.conn):
            log.info("%s (already done)", step.name)
            return
        log.info("%s", step.name)
        triggers = self._rebuild_preamble(step.rebuild) if step.rebuild and self.dialect.name == "sqlite" else []
        # Pinned: the steps' literals are rendered for crossfade's session settings.
        with _outside_transaction(self.context, step), self.dialect.pinned_session(self.conn):
            for statement in step.sql:
                self.conn.exec_driver_sql(statement)
        for statement in triggers:  # DROP TABLE dropped them with the old table
            self.conn.exec_driver_sql(statement)

    def backfill(self, statement: sa.Update | sa.Insert) -> None:
        self.conn.execute(statement)

    def python_work(self, work, schema: Schema) -> None:
        """A Python backfill or a data step, on the migration's connection (no trigger to pass)."""
        if isinstance(work, compute.DataStep):
            log.info("data step %s", work.name)
            work.execute(self.conn)
            return
        table = schema.table(work.table)
        written = compute.compute_all(self.conn, table, work, self.dialect.batch_key(table),
                                      per_statement=self.dialect.rows_per_update)
        log.info("%s: %d row(s) computed in Python", work.name, written)

    def refuse_remaining_nulls(self, change: Change, schema: Schema) -> None:
        checks.refuse_unmovable(self.conn, schema, change.moves_to_finish(schema), "contract",
                                own_transaction=False)
        for table, column in change.not_null_at_contract(schema):
            if schema.has_column(table, column) and schema.column(table, column).nullable:
                t = schema.table(table)
                count = self.conn.execute(sa.select(sa.func.count()).select_from(t)
                                          .where(t.c[column].is_(None))).scalar()
                if count:
                    raise NullsRemainError(table, column, count)

    def note(self, text: str) -> None:
        log.info("%s", text)

    def _table(self, name: str) -> sa.Table | None:
        return sa.Table(name, sa.MetaData(), autoload_with=self.conn) if inspect(self.conn).has_table(name) else None

    def _rebuild_preamble(self, table: str) -> list[str]:
        """A SQLite rebuild drops the old table: refuse while foreign keys would cascade from it,
        and keep the table's triggers to re-create them."""
        if self.conn.exec_driver_sql("PRAGMA foreign_keys").scalar():
            raise CrossfadeError(f"rebuilding table {table} needs PRAGMA foreign_keys off on the migration's "
                                 "connection (DROP TABLE would cascade), as Alembic's batch mode does")
        return list(self.conn.execute(sa.text("SELECT sql FROM sqlite_master WHERE type = 'trigger' "
                                              "AND tbl_name = :t ORDER BY name"), {"t": table}).scalars())


class _Script:
    """Prints the steps (`alembic upgrade --sql`), the tables simulated on a snapshot."""

    def __init__(self, context: MigrationContext, release_n: Schema):
        self.context = context
        self.dialect: TriggerDialect = for_dialect(context.dialect)
        self.snapshot = release_n

    def schema(self, tables: set[str]) -> Schema:
        return self.snapshot

    def plain(self, operation) -> None:
        for step in render.steps(operation, self.dialect, self._table, online=False):
            self.step(step)
        snapshot.apply(self.snapshot, operation)

    def step(self, step: Step) -> None:
        self.note(step.name)
        with _outside_transaction(self.context, step):
            for statement in step.sql:
                self._emit(statement)

    def backfill(self, statement: sa.Update | sa.Insert) -> None:
        self._emit(self.dialect.compile(statement))

    def python_work(self, work, schema: Schema) -> None:
        """Python cannot be printed as SQL: said where it would run; a data step's SQL is printed."""
        statement = work.statement() if isinstance(work, compute.DataStep) else None
        if statement is not None:
            self.note(f"data step {work.name}")
            self._emit(self.dialect.compile(statement))
        elif isinstance(work, compute.DataStep):
            self.note(f"data step {work.name}: {work.describe_run()} runs here (Python, not printable as SQL)")
        else:
            self.note(f"backfill {work.name}: Python computes the values here (not printable as SQL)")

    def refuse_remaining_nulls(self, change: Change, schema: Schema) -> None:
        pass  # nothing to count without a database; the NOT NULL statement itself fails on NULLs

    def note(self, text: str) -> None:
        self.context.impl.static_output(f"-- {text}")

    def _emit(self, statement: str) -> None:
        self.context.impl.static_output(statement.strip().rstrip(";") + self.context.impl.command_terminator)

    def _table(self, name: str) -> sa.Table | None:
        return self.snapshot.table(name) if self.snapshot.has_table(name) else None


@contextmanager
def _outside_transaction(context: MigrationContext, step: Step) -> Iterator[None]:
    """PostgreSQL's CONCURRENTLY cannot run in a transaction block: Alembic commits the
    migration's transaction around it (printed as COMMIT / BEGIN with --sql)."""
    if step.concurrent:
        with context.autocommit_block():
            yield
    else:
        yield


# One Project per ScriptDirectory of a `--sql` run, so each revision's replay starts where the
# previous one's ended.
_projects: WeakKeyDictionary[ScriptDirectory, Project] = WeakKeyDictionary()


def _release_n_schema(context: MigrationContext, declaration: Declaration) -> Schema:
    environment = context.environment_context
    if environment is None:
        stated = declaration.plain.__globals__.get("metadata")
        return Schema.from_metadata(stated) if isinstance(stated, sa.MetaData) else Schema(sa.MetaData())
    script = environment.script
    project = _projects.get(script)
    if project is None:
        project = _projects[script] = Project(environment.config, str(script.dir), script)
    module, _ = project.declaration(declaration.revision)
    revision = Revision(declaration.revision, module, declaration.change)
    return project.release_n_schema(revision, context.dialect)
