"""What every dialect shares: quoting, compiling, naming, the DDL steps and the sync law's program.

A subclass per dialect overrides only what differs (after Alembic's `DefaultImpl`). PostgreSQL
and MySQL/MariaDB both run the law procedurally in a BEFORE trigger, so that program is built
once here (`ProceduralTriggers`); each says only how to assign and how to wrap the body.
"""

from __future__ import annotations

import copy
import hashlib
import weakref
from contextlib import contextmanager
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from ..ddl import (
    AddCheck,
    AddColumn,
    AddForeignKey,
    AddStandIn,
    AddUnique,
    CreateIndex,
    CreateTable,
    DropColumn,
    DropIndex,
    DropStandIn,
    DropTable,
    Intent,
    SetDefault,
    SetNullable,
    Step,
    SwapStandIn,
    apply_to_schema,
)
from ..derived import DeriveRule, DeriveStatements
from ..errors import Dependent, LockHolder, SchemaError, TransformError
from ..names import IdentifierRules, generated_name
from ..schema import Schema, inspect
from ..sync import (
    BlockRule,
    FillRule,
    LinkRule,
    MoveRule,
    MoveStatements,
    SyncGroup,
    TableSync,
    all_null,
    changed,
    conflict,
    row,
)
from .alter import INSTANT, Clause, group_clauses, merged_step


@dataclass(frozen=True)
class DbObject:
    """A trigger or trigger function crossfade installs, with the SQL that creates it (its DROP
    comes from the dialect's `drop_statements`)."""

    kind: str  # "trigger" | "function"
    name: str
    table: str
    create: tuple[str, ...]

    @property
    def checksum(self) -> str:
        return sha("\n".join(self.create))


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class TriggerDialect:
    name = "base"
    identifiers: IdentifierRules  # what the database holds as a name, and its limit
    # PostgreSQL and MariaDB check NOT NULL after BEFORE triggers fill the row; SQLite checks
    # before its AFTER triggers run, so old NOT NULL columns must be relaxed there (DESIGN 2).
    relaxes_old_not_null = False
    transactional_ddl = True
    # What each kind of step locks, printed by `crossfade plan`; each dialect says it for itself.
    catalog_locks = ""  # add/drop a column, set/drop a default: catalog-only ALTERs
    drop_column_locks = ""
    index_locks = ""  # building an index
    trigger_locks = ""
    backfill_locks = ""
    # The server's clock in UTC (naive), for the operator lock's heartbeat: one clock for every host.
    utc_now_sql = "SELECT CURRENT_TIMESTAMP"

    # The schema (PostgreSQL) the change's tables are really in, resolved once by the runner
    # and named in every statement; None: the connection's current schema, unqualified.
    schema: str | None = None

    def __init__(self, sa_dialect: sa.Dialect):
        self.engine_dialect = sa_dialect
        self._rendering: sa.Dialect | None = None

    def in_schema(self, schema: str | None) -> TriggerDialect:
        """This dialect naming the tables, triggers and functions it renders in `schema`."""
        bound = copy.copy(self)
        bound.schema = schema
        return bound

    def resolve_schema(self, conn: sa.Connection, tables: set[str], declared: str | None) -> str | None:
        """The schema the change's tables are really in, resolved once before expand. Here (MariaDB,
        SQLite) only the connection's own database is supported: another one is refused before
        any DDL, since triggers, probes and the backfill would otherwise reach the wrong tables."""
        own = sa.inspect(conn).default_schema_name
        if declared is not None and declared != own:
            raise SchemaError(declared, f"schema {declared!r}: crossfade on {self.name} works on the tables of the "
                                        f"connection's own database ({own!r}); connect to {declared!r} instead")
        return None

    # --- rendering -------------------------------------------------------------------------
    # Trigger bodies outlive the session that creates them and run in every writer's session, so
    # what crossfade renders must not depend on session settings SQLAlchemy detected once, at the
    # engine's first connect (a connect event may change them afterwards, as oslo.db does with
    # MariaDB's sql_mode): crossfade renders with a copy of the engine's dialect whose literal
    # rules it fixes itself (`_fix_rendering`), and runs its SQL under `pinned_session`.
    @property
    def sa_dialect(self) -> sa.Dialect:
        if self._rendering is not None:
            return self._rendering
        rendering = copy.copy(self.engine_dialect)
        rendering._type_memos = weakref.WeakKeyDictionary()  # processors made for this copy
        rendering.type_compiler_instance = rendering.type_compiler = type(self.engine_dialect.type_compiler_instance)(
            rendering)
        self._fix_rendering(rendering)
        if getattr(self.engine_dialect, "server_version_info", None) is not None:
            self._rendering = rendering  # initialized: what it detected stays
        return rendering

    @property
    def preparer(self):
        return self.sa_dialect.identifier_preparer

    def _fix_rendering(self, rendering: sa.Dialect) -> None:
        """Set the copy's literal and quoting rules to ones that hold whatever the session says."""

    @contextmanager
    def pinned_session(self, conn: sa.Connection):
        """The session with the settings crossfade's rendered SQL is correct for, put back
        afterwards (the pooled connection may be the application's)."""
        yield conn

    def session_notes(self) -> list[str]:
        """What a reviewer running the rendered SQL by hand must set first, as crossfade does."""
        return []

    def pinned_batch(self, conn: sa.Connection):
        """`pinned_session` for one backfill batch (where `backfill_batch_settings` cannot pin)."""
        return self.pinned_session(conn)

    def quote(self, name: str) -> str:
        return self.preparer.quote(name)

    def qualified(self, name: str) -> str:
        """A table (or function, view) of the change's schema, named with that schema."""
        if self.schema is None:
            return self.quote(name)
        return f"{self.preparer.quote_schema(self.schema)}.{self.quote(name)}"

    def compile(self, clause) -> str:
        """SQL for an expression, with values inlined by SQLAlchemy (never string-formatted)."""
        return str(clause.compile(dialect=self.sa_dialect, compile_kwargs={"literal_binds": True}))

    def rows(self, conn: sa.Connection, select: sa.Select) -> list[tuple]:
        """The rows of `select` compiled as trigger bodies are: literals inlined by `compile`,
        only `expressions.bound` values sent as parameters; values read as their types read."""
        compiled = select.compile(dialect=self.sa_dialect, compile_kwargs={"literal_binds": True})
        processors = compiled._bind_processors
        params = {name: processors[name](value) if name in processors else value
                  for name, value in compiled.construct_params().items()}
        if compiled.positional:
            params = tuple(params[name] for name in compiled.positiontup)
        result = conn.exec_driver_sql(compiled.string, params)
        readers = [c.type._cached_result_processor(self.sa_dialect, described[1])
                   for c, described in zip(select.selected_columns, result.cursor.description)]
        return [tuple(read(v) if read else v for read, v in zip(readers, found)) for found in result]

    def column_spec(self, column: sa.Column) -> str:
        compiler = self.sa_dialect.ddl_compiler(self.sa_dialect, None)
        return compiler.get_column_specification(column)

    def default_sql(self, default) -> str:
        if isinstance(default, str):
            return self.compile(sa.literal(default))
        return self.compile(default)

    def object_name(self, table: str, suffix: str) -> str:
        """crossfade_<table>_<suffix>, shortened with a hash when the database's limit demands."""
        return generated_name(self.identifiers, table, suffix)

    # --- triggers --------------------------------------------------------------------------
    def trigger_objects(self, table_sync: TableSync) -> list[DbObject]:
        raise NotImplementedError

    # --- cross-table links (split_table; rename_table's mirror on SQLite) -------------------
    # Where a stand-in is a view (PostgreSQL, MariaDB) rename_table needs no trigger.
    mirrors_with_tables = False
    link_locks = ""

    def active_links(self, links: list[LinkRule | MoveRule]) -> list[LinkRule | MoveRule]:
        """The cross-table rules this dialect keeps with triggers and a backfill."""
        return [link for link in links if isinstance(link, MoveRule) or self.mirrors_with_tables or not link.mirror]

    def cross_table_objects(self, link: LinkRule | MoveRule | DeriveRule, schema: Schema) -> list[DbObject]:
        """The triggers (and functions) on both tables of a cross-table rule."""
        if isinstance(link, DeriveRule):
            return self.derive_objects(DeriveStatements(link, schema.table))
        if isinstance(link, MoveRule):
            return self.move_objects(MoveStatements(link, schema.table(link.source), schema.table(link.target)))
        return self.link_objects(link)

    def link_objects(self, link: LinkRule) -> list[DbObject]:
        raise NotImplementedError

    def move_objects(self, move: MoveStatements) -> list[DbObject]:
        raise NotImplementedError

    # Whether a derive_column's triggers read its sources with locking reads (MariaDB's snapshot
    # would miss a row committed before the target row's lock was granted).
    derive_locking_reads = False

    def derive_objects(self, derive: DeriveStatements) -> list[DbObject]:
        """derive_column's triggers (and functions) on the target and on every source table."""
        raise NotImplementedError

    def placeholder_objects(self, link: LinkRule | MoveRule | DeriveRule, schema: Schema) -> list[DbObject]:
        """Triggers installed before a cross-table rule's real ones where each CREATE commits on
        its own, under the same names: they keep its law while only some real ones are in (none
        here: a transactional dialect installs a derive_column's tables in one transaction)."""
        return []

    def insert_missing(self, target: sa.Table, key: str, columns: list[str], select: sa.Select) -> sa.Insert:
        """INSERT INTO target (columns) `select`, skipping rows whose key the target already
        holds (a trigger got there first, with a value written after the SELECT read)."""
        raise NotImplementedError

    def keep_rows_while_copying(self, select: sa.Select, source: sa.Table) -> sa.Select:
        """`select`, locking the source rows it reads until the copy commits, so a row deleted
        meanwhile is not copied into a table whose foreign key then refuses it. MariaDB's
        INSERT ... SELECT locks them already; SQLite has one writer at a time."""
        return select

    def link_guard(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """Statements that switch the link triggers off for crossfade's own session, and back on:
        the backfill copies values that already agree, and on MySQL a trigger may not write back
        to the table its statement reads (error 1442)."""
        return (), ()

    def derive_guard(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """Statements that mark crossfade's backfill session while it writes B := up(A), and
        unmark it: where a trigger costs per row statement it runs, the sync trigger skips the
        rows the backfill writes (by the round-trip law they need nothing)."""
        return (), ()

    def crossfade_writing_sql(self) -> str | None:
        """SQL true while crossfade's own session writes past a table's block (a Python backfill,
        a data step: `writing_guard` marks it); None where a mark cannot be read (SQLite)."""
        return None

    # Rows a Python backfill writes per UPDATE statement (compute.write_rows): 1 sends one per row
    # (executemany), which the driver pipelines or runs in process.
    rows_per_update = 1

    def hold_write_lock(self, conn: sa.Connection) -> None:
        """Make sure the connection's transaction has begun and holds what a write needs, before
        crossfade's own write reads anything (SQLite's driver begins only at the first DML)."""

    def writing_guard(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """Statements that mark crossfade's session as writing past the blocks, run in each batch's
        transaction, and those that unmark it after."""
        return (), ()

    def compile_triggers(self, syncs: dict[str, TableSync]) -> list[DbObject]:
        """Every table's trigger objects; a transform that does not compile for this dialect is
        a TransformError naming its table and columns."""
        objects: list[DbObject] = []
        for table_sync in syncs.values():
            source = table_sync.table
            for group in table_sync.groups:
                with self._transform_errors(group.table, group.new):
                    self._compile_all(group.up_exprs(source))
                if group.down is not None:
                    with self._transform_errors(group.table, group.old):
                        self._compile_all(group.down_exprs(source))
            for fill in table_sync.fills:
                with self._transform_errors(fill.table, (fill.column,)):
                    self._compile_all([fill.fill_expr(source)])
            objects += self.trigger_objects(table_sync)
        return objects

    def _compile_all(self, exprs) -> None:
        for expr in exprs:
            self.compile(expr)

    @contextmanager
    def _transform_errors(self, table: str, columns: tuple[str, ...]):
        try:
            yield
        except (sa.exc.SQLAlchemyError, TypeError, AttributeError, KeyError, NotImplementedError) as exc:
            raise TransformError(table, ", ".join(columns), self.name, str(exc).splitlines()[0]) from None

    def drop_sql(self, kind: str, name: str, table: str) -> str:
        """DROP for one of crossfade's objects (triggers are named per table; see PostgreSQL)."""
        return f"DROP TRIGGER IF EXISTS {self.quote(name)}"

    def drop_statements(self, objects: list[tuple[str, str, str]]) -> list[str]:
        """DROPs for (kind, name, table) objects, triggers before the functions they call, each
        kind by name: the catalog's order varies, and the plan prints the order a run uses."""
        ordered = sorted(objects, key=lambda obj: (obj[0] != "trigger", obj[1]))
        return [self.drop_sql(kind, name, table) for kind, name, table in ordered]

    def catalog_objects(self, conn: sa.Connection, tables: set[str]) -> dict[str, tuple[str, str, str]]:
        """crossfade's objects in the database: name -> (kind, table, definition as stored)."""
        raise NotImplementedError

    def disabled_triggers(self, conn: sa.Connection, tables: set[str]) -> dict[str, tuple[str, str]]:
        """crossfade's triggers switched off behind its back: name -> (table, how). None here
        (MariaDB and SQLite cannot disable one trigger; they can only drop it)."""
        return {}

    def enable_trigger_sql(self, name: str, table: str) -> str:
        raise NotImplementedError

    def foreign_triggers(self, conn: sa.Connection, table: str) -> list[str]:
        raise NotImplementedError

    def column_dependents(self, conn: sa.Connection, table: str, columns: list[str]) -> list[Dependent]:
        """Views, rules, indexes, constraints and other triggers that use `table`'s `columns`
        (generated columns are read from the snapshot: crossfade/dependents.py)."""
        raise NotImplementedError

    def renamed_table_dependents(self, conn: sa.Connection, table: str, new: str) -> list[Dependent]:
        """Objects that name `table`, which rename_table's contract renames to `new`, and which the
        rename would leave broken. PostgreSQL's views follow the table itself, and SQLite's rename
        rewrites them: nothing."""
        return []

    def replication_warnings(self, conn: sa.Connection, tables: list[str]) -> list[str]:
        """What replication will not do for `tables` (PostgreSQL: logical replication's publications)."""
        return []

    def privilege_problems(self, conn: sa.Connection, tables: list[str]) -> tuple[list[str], list[str]]:
        """(errors, warnings): the privileges crossfade's DDL on `tables` needs and the user lacks,
        read from the server's privilege tables, each naming the GRANT that gives it."""
        return [], []

    def cascade_problems(self, conn: sa.Connection, table: str, columns: set[str]) -> list[str]:
        return []

    def cluster_problems(self, conn: sa.Connection, tables: list[str]) -> list[str]:
        """Why this server's cluster would keep crossfade's DDL or the triggers' writes on
        `tables` on one node (Galera: mysql_galera.py); empty on a server of its own."""
        return []

    def move_problems(self, conn: sa.Connection, move: MoveRule) -> list[str]:
        """Why this database cannot keep a move_column in sync (empty: it can)."""
        return []

    def derive_problems(self, conn: sa.Connection, derive: DeriveRule) -> list[str]:
        """Why this database cannot keep a derive_column in sync (empty: it can)."""
        return []

    def link_warnings(self, link: LinkRule | MoveRule) -> list[str]:
        """What release N or N+1 code must avoid while this cross-table op's triggers are in."""
        return []

    def orphan_functions(self, conn: sa.Connection) -> list[str]:
        """crossfade functions no trigger uses any more (only PostgreSQL has functions)."""
        return []

    def columns_to_relax(self, release_n: Schema, syncs: dict[str, TableSync]) -> list[tuple[str, str]]:
        """Old NOT NULL columns (without default) release N+1 will not write: where NOT NULL is
        checked before the triggers could fill them (SQLite), expand must relax them."""
        if not self.relaxes_old_not_null:
            return []
        written = [(g.table, c) for ts in syncs.values() for g in ts.groups if g.down for c in g.old]
        written += [(f.table, f.column) for ts in syncs.values() for f in ts.fills]
        return [(t, c) for t, c in written if release_n.has_column(t, c) and release_n.needs_a_value(t, c)]

    # --- DDL steps -------------------------------------------------------------------------
    def steps(self, intents: list[Intent], schema: Schema) -> list[Step]:
        """The steps for `intents`, simulating each on `schema`. Consecutive intents the dialect
        says as ALTER TABLE clauses share one statement per table where it can (alter.py)."""
        steps: list[Step] = []
        pending: list[Clause] = []
        for intent in intents:
            clause = self.alter_clause(intent, schema)
            if clause is None:
                steps += self._alter_steps(pending)
                pending = []
                steps.extend(self.intent_steps(intent, schema))
            else:
                pending.append(clause)
            apply_to_schema(schema, intent)
        return steps + self._alter_steps(pending)

    # The database takes ADD/DROP COLUMN and SET DEFAULT as clauses of ALTER TABLE (SQLite
    # takes one action per ALTER and rebuilds for the rest: its intents keep their own steps).
    alter_clauses = False
    # ADD COLUMN IF NOT EXISTS / DROP COLUMN IF EXISTS: each clause is idempotent on its own, so
    # several share one ALTER TABLE (MySQL has no such clauses: one statement each there).
    idempotent_clauses = False

    def alter_clause(self, intent: Intent, schema: Schema) -> Clause | None:
        """The intent as one clause of an ALTER TABLE, or None where it needs steps of its own."""
        if not self.alter_clauses:
            return None
        exists = "IF EXISTS " if self.idempotent_clauses else ""
        if isinstance(intent, AddColumn):
            return Clause(intent.table, f"ADD COLUMN {'IF NOT EXISTS ' if exists else ''}"
                          f"{self.column_spec(intent.column)}", intent.describe(), f"column {intent.column.name}",
                          self.add_column_how(intent.column),
                          _column_exists(intent.table, intent.column.name, self.schema), self.clause_locks(INSTANT))
        if isinstance(intent, DropColumn):
            how = self.drop_column_how()
            return Clause(intent.table, f"DROP COLUMN {exists}{self.quote(intent.column)}", intent.describe(),
                          f"column {intent.column}", how,
                          _not(_column_exists(intent.table, intent.column, self.schema)),
                          self.clause_locks(how))
        if isinstance(intent, SetDefault):
            default = ("DROP DEFAULT" if intent.default is None
                       else f"SET DEFAULT {self.default_sql(intent.default)}")
            return Clause(intent.table, f"ALTER COLUMN {self.quote(intent.column)} {default}", intent.describe(),
                          f"column {intent.column}", INSTANT, None, self.clause_locks(INSTANT))
        return self.own_alter_clause(intent, schema)

    def own_alter_clause(self, intent: Intent, schema: Schema) -> Clause | None:
        """A clause for an intent only this dialect says as one (MariaDB: MODIFY, indexes)."""
        return None

    instant_locks = ""  # what an instant ALTER locks, where it says so (MariaDB's ALGORITHM=INSTANT)

    def clause_locks(self, how: str) -> str:
        if how == INSTANT:
            return self.instant_locks or self.catalog_locks
        return self.drop_column_locks or self.catalog_locks

    def add_column_how(self, column: sa.Column) -> str:
        return INSTANT

    def drop_column_how(self) -> str:
        return INSTANT

    def alter_algorithm(self, how: str) -> str:
        """The suffix asking the database to run an ALTER `how` (alter.INSTANT, ...), or refuse."""
        return ""

    def _alter_steps(self, clauses: list[Clause]) -> list[Step]:
        return [merged_step(self.alter_table(group[0].table), group, self.alter_algorithm)
                for group in group_clauses(clauses, self.idempotent_clauses)]

    def intent_steps(self, intent: Intent, schema: Schema) -> list[Step]:
        if isinstance(intent, AddColumn):
            return [self.add_column_step(intent)]
        if isinstance(intent, DropColumn):
            return [self.drop_column_step(intent, schema)]
        if isinstance(intent, SetDefault):
            return [self.set_default_step(intent, schema)]
        if isinstance(intent, SetNullable):
            return self.set_nullable_steps(intent, schema)
        if isinstance(intent, CreateIndex):
            return self.create_index_steps(intent)
        if isinstance(intent, DropIndex):
            return self.drop_index_steps(intent)
        if isinstance(intent, AddUnique):
            return self.add_unique_steps(intent)
        if isinstance(intent, AddForeignKey):
            return self.add_foreign_key_steps(intent)
        if isinstance(intent, AddCheck):
            return self.add_check_steps(intent)
        if isinstance(intent, CreateTable):
            return [self.create_table_step(intent, schema)]
        if isinstance(intent, DropTable):
            return [self.drop_table_step(intent)]
        if isinstance(intent, AddStandIn):
            return self.add_stand_in_steps(intent, schema)
        if isinstance(intent, SwapStandIn):
            return self.swap_stand_in_steps(intent, schema)
        if isinstance(intent, DropStandIn):
            return self.drop_stand_in_steps(intent)
        raise TypeError(f"unknown intent {intent!r}")

    def alter_table(self, table: str) -> str:
        return f"ALTER TABLE {self.qualified(table)}"

    def add_column_step(self, intent: AddColumn) -> Step:
        sql = f"{self.alter_table(intent.table)} ADD COLUMN {self.column_spec(intent.column)}"
        # A nullable column without a default: catalog only (SQLite's ALTER; the others use clauses).
        return Step(intent.describe(), [sql], is_done=_column_exists(intent.table, intent.column.name, self.schema),
                    locks=self.catalog_locks, instant=True)

    def drop_column_step(self, intent: DropColumn, schema: Schema) -> Step:
        sql = f"{self.alter_table(intent.table)} DROP COLUMN {self.quote(intent.column)}"
        return Step(intent.describe(), [sql], is_done=_not(_column_exists(intent.table, intent.column, self.schema)),
                    locks=self.drop_column_locks or self.catalog_locks)

    def set_default_step(self, intent: SetDefault, schema: Schema) -> Step:
        column = f"{self.alter_table(intent.table)} ALTER COLUMN {self.quote(intent.column)}"
        if intent.default is None:
            return Step(intent.describe(), [f"{column} DROP DEFAULT"], locks=self.catalog_locks)
        return Step(intent.describe(), [f"{column} SET DEFAULT {self.default_sql(intent.default)}"],
                    locks=self.catalog_locks)

    def set_nullable_steps(self, intent: SetNullable, schema: Schema) -> list[Step]:
        raise NotImplementedError

    def create_table_step(self, intent: CreateTable, schema: Schema) -> Step:
        table = intent.build(sa.MetaData(schema=self.schema), schema.column(intent.ref_table, intent.key).type)
        sql = str(sa.schema.CreateTable(table).compile(dialect=self.sa_dialect)).strip()
        return Step(intent.describe(), [sql], is_done=table_exists(intent.table, self.schema), locks=self.create_table_locks)

    create_table_locks = ""

    def drop_table_step(self, intent: DropTable) -> Step:
        return Step(intent.describe(), [f"DROP TABLE IF EXISTS {self.qualified(intent.table)}"],
                    is_done=_not(table_exists(intent.table, self.schema)), locks=self.catalog_locks)

    def add_stand_in_steps(self, intent: AddStandIn, schema: Schema) -> list[Step]:
        """A view over the table (SQLite overrides: a mirror table)."""
        columns = ", ".join(self.quote(c.name) for c in schema.table(intent.table).columns)
        sql = (f"CREATE {self.view_options}VIEW {self.qualified(intent.name)} AS SELECT {columns} "
               f"FROM {self.qualified(intent.table)}")
        return [Step(intent.describe(), [sql], is_done=view_exists(intent.name, self.schema), locks=self.view_locks)]

    view_options = ""
    view_locks = ""

    def swap_stand_in_steps(self, intent: SwapStandIn, schema: Schema) -> list[Step]:
        raise NotImplementedError

    def drop_stand_in_steps(self, intent: DropStandIn) -> list[Step]:
        return [Step(intent.describe(), [f"DROP VIEW IF EXISTS {self.qualified(intent.name)}"],
                     is_done=_not(view_exists(intent.name, self.schema)), locks=self.view_locks)]

    # Indexes and constraints. The plain forms here are SQLite's; PostgreSQL and MariaDB
    # override them with their online forms.
    def create_index_steps(self, intent: CreateIndex) -> list[Step]:
        return [Step(intent.describe(), [self.create_index_sql(intent)],
                     is_done=self.index_exists(intent.table, intent.name), locks=self.index_locks)]

    def drop_index_steps(self, intent: DropIndex) -> list[Step]:
        return [Step(intent.describe(), [f"DROP INDEX IF EXISTS {self.qualified(intent.name)}"],
                     is_done=_not(self.index_exists(intent.table, intent.name)), locks=self.catalog_locks)]

    def add_unique_steps(self, intent: AddUnique) -> list[Step]:
        [step] = self.create_index_steps(CreateIndex(intent.table, intent.name, intent.columns, unique=True))
        step.name = intent.describe()
        return [step]

    def add_foreign_key_steps(self, intent: AddForeignKey) -> list[Step]:
        raise NotImplementedError

    def add_check_steps(self, intent: AddCheck) -> list[Step]:
        raise NotImplementedError

    def create_index_sql(self, intent: CreateIndex, how: str = "") -> str:
        """CREATE [UNIQUE] INDEX [how] name ON table (columns); `how` is e.g. CONCURRENTLY."""
        verb = " ".join(w for w in ("CREATE", "UNIQUE" if intent.unique else "", "INDEX", how) if w)
        return f"{verb} {self.quote(intent.name)} ON {self.qualified(intent.table)} {self.column_list(intent.columns)}"

    def column_list(self, columns) -> str:
        return f"({', '.join(self.quote(c) for c in columns)})"

    def constraint_sql(self, intent: AddForeignKey | AddCheck) -> str:
        """CONSTRAINT name FOREIGN KEY (...) REFERENCES ... / CONSTRAINT name CHECK (...)."""
        head = f"CONSTRAINT {self.quote(intent.name)}"
        if isinstance(intent, AddCheck):
            return f"{head} CHECK ({self.compile(intent.condition)})"
        # Each one of ddl.REFERENTIAL_ACTIONS, checked by the op.
        actions = "".join(f" ON {event} {action}" for event, action in
                          (("DELETE", intent.ondelete), ("UPDATE", intent.onupdate)) if action)
        return (f"{head} FOREIGN KEY {self.column_list(intent.columns)} REFERENCES {self.qualified(intent.ref_table)} "
                f"{self.column_list(intent.ref_columns)}{actions}")

    # Actions the database does not tell apart (MariaDB: RESTRICT is NO ACTION), by the one it reports.
    same_actions: tuple[tuple[str, str], ...] = ()

    def foreign_key_actions(self, ondelete: str | None, onupdate: str | None) -> str:
        """ON DELETE / ON UPDATE as this database applies them (no action given: NO ACTION)."""
        def action(value: str | None) -> str:
            value = (value or "NO ACTION").upper()
            return dict(self.same_actions).get(value, value)
        return f"ON DELETE {action(ondelete)} ON UPDATE {action(onupdate)}"

    def live_foreign_key_actions(self, conn: sa.Connection, table: str, name: str) -> str | None:
        """The actions of the table's foreign key `name` as the catalog shows them (None: no such key)."""
        for key in inspect(conn).get_foreign_keys(table, schema=self.schema):
            if key["name"] == name:
                options = key.get("options", {})
                return self.foreign_key_actions(options.get("ondelete"), options.get("onupdate"))
        return None

    def index_exists(self, table: str, name: str):
        """A probe: the table has an index (or a unique constraint) called `name`."""
        def probe(conn: sa.Connection) -> bool:
            inspector = inspect(conn)
            names = {i["name"] for i in inspector.get_indexes(table, schema=self.schema)}
            names |= {u["name"] for u in inspector.get_unique_constraints(table, schema=self.schema)}
            return name in names
        return probe

    def constraint_exists(self, table: str, name: str):
        """A probe: the table has a foreign key, check or unique constraint called `name`."""
        def probe(conn: sa.Connection) -> bool:
            inspector = inspect(conn)
            found = [k["name"] for k in inspector.get_foreign_keys(table, schema=self.schema)]
            found += [k["name"] for k in inspector.get_check_constraints(table, schema=self.schema)]
            found += [k["name"] for k in inspector.get_unique_constraints(table, schema=self.schema)]
            return name in found
        return probe

    # --- locks -----------------------------------------------------------------------------
    @contextmanager
    def ddl_transaction(self, conn: sa.Connection, lock_timeout: float, rebuild: str | None = None,
                        concurrent: bool = False):
        """One attempt of a DDL step: a transaction whose lock waits end after `lock_timeout`.
        (`concurrent`: PostgreSQL's CONCURRENTLY, which no other dialect has.)"""
        with conn.begin():
            self.set_lock_timeout(conn, lock_timeout)
            yield

    def set_lock_timeout(self, conn: sa.Connection, seconds: float) -> None:
        raise NotImplementedError

    def effective_lock_timeout(self, seconds: float) -> float:
        """What `set_lock_timeout(seconds)` really waits, where the database rounds it."""
        return seconds

    def is_lock_timeout(self, exc: sa.exc.DBAPIError) -> bool:
        raise NotImplementedError

    def is_algorithm_refused(self, exc: sa.exc.DBAPIError) -> bool:
        """The database cannot run this ALTER with the ALGORITHM it was asked for."""
        return False

    def is_deadlock(self, exc: sa.exc.DBAPIError) -> bool:
        """The database failed this transaction to break a deadlock: running it again is safe.
        (SQLite has a single writer: it never deadlocks.)"""
        return False

    @contextmanager
    def ddl_session(self, conn: sa.Connection):
        """The connection a phase runs its DDL on. Where `set_lock_timeout` changes a session
        setting, it is put back afterwards, so the pooled connection goes back to the
        application with the lock waits it had."""
        saved = self.session_lock_timeout(conn)
        conn.rollback()
        try:
            with self.pinned_session(conn):
                yield self.ddl_connection(conn)
        finally:
            if saved is not None:
                self.set_lock_timeout(conn, saved)

    def session_lock_timeout(self, conn: sa.Connection) -> float | None:
        """The session's lock wait in seconds, or None where `set_lock_timeout` only lasts for
        the attempt's transaction (PostgreSQL's SET LOCAL)."""
        return None

    def ddl_connection(self, conn: sa.Connection) -> sa.Connection:
        return conn

    def store_as(self, expr, type_: sa.types.TypeEngine):
        """`expr` converted as storing it in a column of `type_` would convert it."""
        return sa.cast(expr, type_)

    # --- backfill --------------------------------------------------------------------------
    def batch_key(self, table: sa.Table) -> list[ColumnElement]:
        """The key backfill batches walk: the primary key."""
        return list(table.primary_key.columns)

    def backfill_batch_settings(self) -> tuple[str, ...]:
        """Statements each backfill batch's transaction starts with."""
        return ()

    # Backfill workers that may write at once (None: any number); more are capped, with a note.
    max_backfill_jobs: int | None = None

    def first_batch_rows(self, conn: sa.Connection) -> int | None:
        """The rows an adaptive backfill's first batch spans here, and the fewest a slow batch
        shrinks the next to (None: the defaults)."""
        return None

    def consistent_read_settings(self, conn: sa.Connection) -> tuple[str, ...]:
        """Statements after which a session's reads see every write the database committed,
        whichever node wrote it (a cluster's node applies the others' writes a moment later)."""
        return ()

    def backfill_rest(self, took: float) -> float:
        """Seconds to rest after a batch that took `took` seconds, so writers get in. Databases
        that lock rows, not the whole database, need none."""
        return 0.0

    # --- the data check (datacheck.py) ----------------------------------------------------------
    # A batch of the check only reads: under MVCC (PostgreSQL, InnoDB) it takes no lock a writer
    # waits for, so its batches may be longer than the backfill's; "no long transaction" is what
    # bounds them (a snapshot holds back vacuum / purge).
    check_batch_seconds = 0.25

    def block_count(self, conn: sa.Connection, table: sa.Table) -> int | None:
        """The table's size in storage blocks, where `block_range` can scan a range of them
        directly; None where the check walks the primary key instead."""
        return None

    def block_range(self, table: sa.Table, first: int, end: int) -> ColumnElement:
        """The rows of `table` stored in blocks [first, end)."""
        raise NotImplementedError

    # --- lock holders and lost work: what an operator needs to know about a step's locks ----
    def lock_holders(self, conn: sa.Connection, tables: list[str]) -> list[LockHolder]:
        """The sessions holding a lock on any of `tables` (names that are not tables are
        ignored), asked when a DDL step gives up. SQLite locks the whole database and cannot
        say who holds it."""
        return []

    def lost_work_risk(self, statements: list[str]) -> str:
        """Why the work of a step running `statements` can be thrown away at its final lock
        ("" when it cannot), for `crossfade plan`."""
        return ""


class ProceduralTriggers(TriggerDialect):
    """The sync law as an IF/ELSE program that assigns NEW in a BEFORE trigger."""

    elsif = "ELSIF"

    def assign(self, target: str, value: str) -> str:
        raise NotImplementedError

    def insert_program(self, ts: TableSync) -> list[str]:
        new = row(ts.table, "NEW")
        # Fills first: a fill stands in for what the writer left NULL, and a group may derive
        # its new columns from that very column (full_name from a filled first_name).
        lines: list[str] = self._block_program([b.insert_violation(new) for b in ts.blocks], ts.blocks)
        lines += self._fill_program(ts.fills, new)
        for group in ts.ordered_groups():
            identified = self.identified_sql() if ts.identified and group.down is not None else None
            if identified:
                # Release N+1's row is authoritative, a NULL B included: A := down(B) (DESIGN 2).
                down = self._assign_all(new, group.old, group.down_exprs(new))
                lines += [f"IF {identified} THEN",
                          f"  IF {self.compile(conflict(group, new))} THEN", *self._indent(down, 2), "  END IF;"]
                lines += [f"{self.elsif} {self.compile(all_null([new.c[n] for n in group.new]))} THEN"]
            else:
                lines += [f"IF {self.compile(all_null([new.c[n] for n in group.new]))} THEN"]
            lines += self._indent(self._assign_all(new, group.new, group.up_exprs(new)))
            if group.down is not None:
                down = self._assign_all(new, group.old, group.down_exprs(new))
                # Values release N can store round-trip, so this only fires for a NULL that a NOT
                # NULL old column cannot hold: release N+1 leaving B to its final server default.
                # Checked only when A is NULL: it is cheaper, and no other A can need it.
                lines += self._indent([f"IF {self.compile(all_null([new.c[n] for n in group.old]))} THEN",
                                       *self._indent(down), "END IF;"])
                lines += [f"{self.elsif} {self.compile(conflict(group, new))} THEN", *self._indent(down)]
            lines += ["END IF;"]
        return lines

    def update_program(self, ts: TableSync) -> list[str]:
        new, old = row(ts.table, "NEW"), row(ts.table, "OLD")
        lines: list[str] = self._block_program([b.update_violation(new, old) for b in ts.blocks], ts.blocks)
        lines += self._fill_program(ts.fills, new)  # first, as on insert
        for group in ts.ordered_groups():
            if not group.old:
                continue  # a constant default: only inserts need it
            lines += (self._two_way_update(group, new, old, ts.identified) if group.down
                      else self._one_way_update(group, new, old))
        return lines

    def update_condition(self, ts: TableSync) -> ColumnElement | None:
        """When an UPDATE can need the trigger at all: a synced column changed, or a fill is due."""
        new, old = row(ts.table, "NEW"), row(ts.table, "OLD")
        return update_condition(ts, new, old)

    @staticmethod
    def named_groups(ts: TableSync) -> list[tuple[int, SyncGroup]]:
        """The two-way groups release N+1's named-but-unchanged B drives (identified tables)."""
        if not ts.identified:
            return []
        return [(i, g) for i, g in enumerate(ts.ordered_groups()) if g.down is not None and g.old]

    def has_update_work(self, ts: TableSync) -> bool:
        return bool(ts.fills) or any(b.blocks("update") for b in ts.blocks) or any(g.old for g in ts.groups)

    def delete_program(self, ts: TableSync) -> list[str]:
        """What a DELETE runs: only a table's block_writes refuses one."""
        old = row(ts.table, "OLD")
        return self._block_program([b.delete_violation(old) for b in ts.blocks], ts.blocks)

    def raise_error(self, message: str) -> str:
        """A statement that fails the writer's statement with `message`."""
        raise NotImplementedError

    def _block_program(self, violations: list[ColumnElement | None], blocks: list[BlockRule]) -> list[str]:
        lines: list[str] = []
        for violation, block in zip(violations, blocks):
            if violation is not None:
                lines += [f"IF {self.block_condition(violation, block)} THEN",
                          f"  {self.raise_error(block.message)}", "END IF;"]
        return lines

    def block_condition(self, violation: ColumnElement, block: BlockRule) -> str:
        """When a block refuses the write: its violation, unless crossfade itself writes (a
        table's block: a Python backfill, a data step) or, for a block of release N's writes
        only, release N+1 does (where the database can tell: not SQLite)."""
        condition = f"({self.compile(violation)})"
        writing = self.crossfade_writing_sql() if block.whole_table else None
        if writing is not None:
            condition += f" AND NOT ({writing})"
        identified = self.identified_sql() if block.old_release_only else None
        if identified is not None:
            condition += f" AND NOT ({identified})"
        return condition

    def identified_sql(self) -> str | None:
        """SQL true when release N+1 wrote the row (identification.py); None: cannot tell."""
        return None

    def named_sql(self, table: str, columns: tuple[str, ...]) -> str | None:
        """SQL true when the UPDATE being run names one of `columns` in its SET, changed or
        not (None where the dialect says it otherwise: PostgreSQL's UPDATE OF triggers)."""
        return None

    def _b_written(self, group: SyncGroup, new, old, identified: bool) -> str:
        """B changed, or (identified) release N+1 named it in its UPDATE even with the value it had."""
        b_changed = self.compile(changed(group.new, new, old))
        named = self.named_sql(group.table, group.new) if identified else None
        if named is None:
            return b_changed
        return f"({b_changed}) OR ({self.identified_sql()} AND {named})"

    def _two_way_update(self, group: SyncGroup, new, old, identified: bool = False) -> list[str]:
        is_conflict = self.compile(conflict(group, new))
        return [
            f"IF {self._b_written(group, new, old, identified)} THEN",
            f"  IF {is_conflict} THEN",
            *self._indent(self._assign_all(new, group.old, group.down_exprs(new)), 2),
            "  END IF;",
            f"{self.elsif} {self.compile(changed(group.old, new, old))} THEN",
            f"  IF {is_conflict} THEN",
            *self._indent(self._assign_all(new, group.new, group.up_exprs(new)), 2),
            "  END IF;",
            "END IF;",
        ]

    def _one_way_update(self, group: SyncGroup, new, old) -> list[str]:
        when = sa.and_(changed(group.old, new, old), sa.not_(changed(group.new, new, old)))
        return [f"IF {self.compile(when)} THEN",
                *self._indent(self._assign_all(new, group.new, group.up_exprs(new))),
                "END IF;"]

    def _fill_program(self, fills: list[FillRule], new) -> list[str]:
        lines: list[str] = []
        for fill in fills:
            target = new.c[fill.column]
            lines += [f"IF {self.compile(target.is_(None))} THEN",
                      f"  {self.assign(self.compile(target), self.compile(fill.fill_expr(new)))}",
                      "END IF;"]
        return lines

    def _if(self, condition: ColumnElement, body: list[str], otherwise: list[str] = ()) -> list[str]:
        """IF condition THEN body [ELSE otherwise] END IF; the condition compiled whole, so AND / OR
        never regroup."""
        orelse = ["ELSE", *self._indent(list(otherwise))] if otherwise else []
        return [f"IF {self.compile(condition)} THEN", *self._indent(body), *orelse, "END IF;"]

    def _assign_all(self, new, targets, values) -> list[str]:
        return [self.assign(self.compile(new.c[t]), self.compile(v)) for t, v in zip(targets, values)]

    @staticmethod
    def _indent(lines: list[str], depth: int = 1) -> list[str]:
        return ["  " * depth + line for line in lines]


def update_condition(ts: TableSync, new, old) -> ColumnElement | None:
    parts: list[ColumnElement] = []
    for group in ts.groups:
        if group.old:
            parts.append(changed(group.old + group.new, new, old))
    parts += [new.c[f.column].is_(None) for f in ts.fills]
    parts += [v for v in (b.update_violation(new, old) for b in ts.blocks) if v is not None]
    return sa.or_(*parts) if parts else None


def _column_exists(table: str, column: str, schema: str | None = None):
    def probe(conn: sa.Connection) -> bool:
        return column in {c["name"] for c in inspect(conn).get_columns(table, schema=schema)}
    return probe


def table_exists(table: str, schema: str | None = None):
    def probe(conn: sa.Connection) -> bool:
        return table in inspect(conn).get_table_names(schema=schema)
    return probe


def view_exists(name: str, schema: str | None = None):
    def probe(conn: sa.Connection) -> bool:
        return name in inspect(conn).get_view_names(schema=schema)
    return probe


def renamed(table: str, name: str, schema: str | None = None):
    """A probe: `table` now goes by `name` (a table of that name, none of the old one)."""
    def probe(conn: sa.Connection) -> bool:
        tables = set(inspect(conn).get_table_names(schema=schema))
        return name in tables and table not in tables
    return probe


def _not(probe):
    return lambda conn: not probe(conn)


def column_nullable(table: str, column: str, schema: str | None = None):
    def probe(conn: sa.Connection) -> bool | None:
        for c in inspect(conn).get_columns(table, schema=schema):
            if c["name"] == column:
                return bool(c["nullable"])
        return None
    return probe


def retry_sleep(attempt: int) -> float:
    """Backoff between lock attempts: short at first, capped, so writers get the table back."""
    return min(0.01 * (2 ** attempt), 0.5)


