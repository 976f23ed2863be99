"""Plain Alembic operations as crossfade steps: the SQL Alembic would run, plus a probe.

Alembic renders each operation for the target dialect in its offline (`--sql`) mode, so the
same statements are printed by `crossfade plan --sql`, printed by `alembic upgrade --sql` and
run by `crossfade expand` / `contract` under crossfade's lock timeouts and retries. The probe
tells whether the operation already happened, which makes a rerun after a crash (MariaDB's DDL
is not transactional) finish the job instead of failing on "already exists".

In crossfade's own phases (`online`), simple index and constraint operations run the way
crossfade's create_index / add_unique / add_foreign_key / add_check ops run them: a plain
CREATE INDEX holds PostgreSQL's writers for the whole build, CONCURRENTLY does not; a foreign
key is added NOT VALID, then validated without blocking writes. The offline path runs inside
Alembic's transaction, where CONCURRENTLY cannot, and keeps Alembic's own SQL.

A batch block that SQLite must rebuild (`CREATE TABLE _alembic_tmp_...`, copy, drop, rename)
drops the table's triggers with the old table: its step is marked as a rebuild, which crossfade
runs with foreign keys off and the table's triggers re-created in the same transaction.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from alembic.operations import Operations
from alembic.operations import ops as alembic_ops
from alembic.util import CommandError

from ..ddl import REFERENTIAL_ACTIONS, AddCheck, AddForeignKey, AddUnique, CreateIndex, DropIndex, Intent, Step
from ..dialects import TriggerDialect
from ..errors import CrossfadeError
from ..schema import inspect
from .classify import describe
from .recording import BatchOp, Statements, offline_context

TableSource = Callable[[str], "sa.Table | None"]  # release N's table by name, for batch rebuilds
_ALEMBIC_REBUILD = "_alembic_tmp_"  # the name Alembic's batch mode gives the table it builds


def steps(operation, dialect: TriggerDialect, tables: TableSource, *, online: bool = True) -> list[Step]:
    """The steps that run `operation`; a batch Alembic need not rebuild becomes one step per
    operation, each with its own probe."""
    if not isinstance(operation, BatchOp):
        intent = online_intent(operation, dialect) if online else None
        if intent is not None:
            return getattr(dialect, _ONLINE_STEPS[type(intent)])(intent)
        return [Step(describe(operation), render(operation, dialect.sa_dialect, tables), is_done=probe(operation))]
    sql = render(operation, dialect.sa_dialect, tables)
    if not any(_ALEMBIC_REBUILD in statement for statement in sql):
        return [step for inner in operation.operations for step in steps(inner, dialect, tables, online=online)]
    probes = [p for p in (probe(inner) for inner in operation.operations) if p is not None]
    return [Step(describe(operation), sql, is_done=_all(probes) if probes else None,
                 rebuild=operation.table_name if dialect.name == "sqlite" else None)]


def online_intent(operation, dialect: TriggerDialect) -> Intent | None:
    """The crossfade intent doing what a simple plain index or constraint operation does, online;
    None for anything with options crossfade's forms do not take (expressions, dialect kwargs)."""
    def names(columns) -> tuple[str, ...] | None:
        return tuple(columns) if columns and all(isinstance(c, str) for c in columns) else None

    if getattr(operation, "schema", None):
        return None  # crossfade's forms work in the connection's default schema
    if isinstance(operation, alembic_ops.CreateIndexOp) and not operation.kw and names(operation.columns):
        return CreateIndex(operation.table_name, operation.index_name, names(operation.columns),
                           bool(operation.unique))
    if isinstance(operation, alembic_ops.DropIndexOp) and operation.table_name and set(operation.kw) <= {"unique"}:
        return DropIndex(operation.table_name, operation.index_name)
    if dialect.name == "sqlite" or not getattr(operation, "constraint_name", None):
        return None  # SQLite adds constraints by rebuilding the table: Alembic's batch mode does that
    if isinstance(operation, alembic_ops.CreateUniqueConstraintOp) and not operation.kw and names(operation.columns):
        return AddUnique(operation.table_name, operation.constraint_name, names(operation.columns))
    if isinstance(operation, alembic_ops.CreateForeignKeyOp) and _plain_actions(operation.kw) \
            and names(operation.local_cols) and names(operation.remote_cols):
        actions = {option: operation.kw[option].upper() for option in ("ondelete", "onupdate") if operation.kw.get(option)}
        return AddForeignKey(operation.source_table, operation.constraint_name, names(operation.local_cols),
                             operation.referent_table, names(operation.remote_cols), **actions)
    if isinstance(operation, alembic_ops.CreateCheckConstraintOp) and not operation.kw:
        condition = operation.condition
        return AddCheck(operation.table_name, operation.constraint_name,
                        sa.text(condition) if isinstance(condition, str) else condition)
    return None


def _plain_actions(kw: dict) -> bool:
    """A foreign key's only options are ON DELETE / ON UPDATE actions crossfade's form renders
    (Alembic passes every option, None where not given; deferrable, match and the like keep
    Alembic's own SQL)."""
    given = {option: value for option, value in kw.items() if value is not None}
    return set(given) <= {"ondelete", "onupdate"} and all(
        isinstance(value, str) and value.upper() in REFERENTIAL_ACTIONS for value in given.values())


_ONLINE_STEPS = {CreateIndex: "create_index_steps", DropIndex: "drop_index_steps", AddUnique: "add_unique_steps",
                 AddForeignKey: "add_foreign_key_steps", AddCheck: "add_check_steps"}


def render(operation, dialect: sa.Dialect, tables: TableSource) -> list[str]:
    """The SQL statements Alembic emits for `operation` on `dialect`, without a database."""
    output = Statements()
    operations = Operations(offline_context(dialect, output))
    try:
        if isinstance(operation, BatchOp):
            options = dict(operation.options)
            if options.get("copy_from") is None:
                options["copy_from"] = tables(operation.table_name)
            with operations.batch_alter_table(operation.table_name, schema=operation.schema, **options) as batch:
                for inner in operation.operations:
                    batch.invoke(inner)
        else:
            operations.invoke(operation)
    except (CommandError, NotImplementedError, sa.exc.SQLAlchemyError) as exc:
        raise CrossfadeError(f"{describe(operation)} cannot be rendered for {dialect.name}: {exc}") from exc
    return output.statements


def probe(operation) -> Callable[[sa.Connection], bool] | None:
    """A check that `operation` already happened, or None where rerunning it is harmless."""
    if isinstance(operation, BatchOp):
        probes = [p for p in (probe(inner) for inner in operation.operations) if p is not None]
        return _all(probes) if probes else None
    table = getattr(operation, "table_name", None)
    if isinstance(operation, alembic_ops.CreateTableOp):
        return lambda conn: inspect(conn).has_table(table)
    if isinstance(operation, alembic_ops.DropTableOp):
        return lambda conn: not inspect(conn).has_table(table)
    if isinstance(operation, alembic_ops.AddColumnOp):
        return lambda conn: operation.column.name in _columns(conn, table)
    if isinstance(operation, alembic_ops.DropColumnOp):
        return lambda conn: operation.column_name not in _columns(conn, table)
    if isinstance(operation, alembic_ops.CreateIndexOp):
        return lambda conn: operation.index_name in _indexes(conn, table)
    if isinstance(operation, alembic_ops.DropIndexOp) and table:
        return lambda conn: operation.index_name not in _indexes(conn, table)
    if isinstance(operation, alembic_ops.AddConstraintOp) and operation.constraint_name:
        source = getattr(operation, "source_table", None) or table
        return lambda conn: operation.constraint_name in _constraints(conn, source)
    if isinstance(operation, alembic_ops.DropConstraintOp) and operation.constraint_name:
        return lambda conn: operation.constraint_name not in _constraints(conn, table)
    if isinstance(operation, alembic_ops.BulkInsertOp):
        target = operation.table if isinstance(operation.table, sa.Table) else sa.table(operation.table)
        return lambda conn: conn.execute(sa.select(sa.literal(1)).select_from(target).limit(1)).first() is not None
    return None  # alter_column (NULL allowed, defaults, comments) ends the same however often it runs


def _all(probes: list) -> Callable[[sa.Connection], bool]:
    return lambda conn: all(p(conn) for p in probes)


def _columns(conn: sa.Connection, table: str) -> set[str]:
    inspector = inspect(conn)
    return {c["name"] for c in inspector.get_columns(table)} if inspector.has_table(table) else set()


def _indexes(conn: sa.Connection, table: str) -> set[str]:
    inspector = inspect(conn)
    if not inspector.has_table(table):
        return set()
    return {i["name"] for i in inspector.get_indexes(table)} | _constraints(conn, table)


def _constraints(conn: sa.Connection, table: str) -> set[str]:
    inspector = inspect(conn)
    if not inspector.has_table(table):
        return set()
    names = {c["name"] for c in inspector.get_unique_constraints(table)}
    names |= {c["name"] for c in inspector.get_foreign_keys(table)}
    names |= {c["name"] for c in inspector.get_check_constraints(table)}
    names.add(inspector.get_pk_constraint(table).get("name"))
    return {n for n in names if n}

