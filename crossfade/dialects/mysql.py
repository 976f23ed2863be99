"""MySQL / MariaDB: BEFORE INSERT and BEFORE UPDATE triggers that `SET NEW.x`.

Never an UPDATE of the trigger's own table (error 1442). DDL is not transactional here, so
every step is checked before it runs and a rerun picks up where a crash left off.
"""

from __future__ import annotations

import sqlalchemy as sa

from ..ddl import AddCheck, AddForeignKey, AddUnique, CreateIndex, DropIndex, SetNullable, Step
from ..schema import Schema
from ..sync import TableSync
from .base import PREFIX, DbObject, ProceduralTriggers, column_nullable

LOCK_WAIT_TIMEOUT = 1205

_ONLINE = ", ALGORITHM=INPLACE, LOCK=NONE"
_COPY = ", ALGORITHM=COPY, LOCK=SHARED"
_INPLACE_LOCKS = ("no write lock (ALGORITHM=INPLACE, LOCK=NONE: {}); exclusive metadata lock for an instant "
                  "at start and end; each attempt waits at most lock_wait_timeout")
_COPY_LOCKS = ("blocks writes while the table is copied (ALGORITHM=COPY, LOCK=SHARED; reads go on): {} has no "
               "online form of this")


class MySQLDialect(ProceduralTriggers):
    name = "mysql"
    max_identifier_length = 64
    transactional_ddl = False
    elsif = "ELSEIF"
    catalog_locks = ("exclusive metadata lock for an instant (MariaDB applies it INSTANT where the table allows); "
                     "each attempt waits at most lock_wait_timeout")
    index_locks = _INPLACE_LOCKS.format("the index builds while writes go on")
    trigger_locks = "exclusive metadata lock for an instant per CREATE/DROP TRIGGER"
    backfill_locks = "row locks on one batch's rows, one short transaction per batch"

    @property
    def is_mariadb(self) -> bool:
        return bool(getattr(self.sa_dialect, "is_mariadb", False))

    def assign(self, target: str, value: str) -> str:
        return f"SET {target} = ({value});"

    def raise_error(self, message: str) -> str:
        # SQLSTATE 45000: an unhandled user-defined exception; MESSAGE_TEXT holds 128 characters.
        return f"SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = {self.compile(sa.literal(message[:128]))};"

    def trigger_objects(self, ts: TableSync) -> list[DbObject]:
        # UPDATE first: each CREATE TRIGGER commits on its own, and a row the INSERT trigger
        # synced must never meet an UPDATE without its trigger (a row left unsynced by an
        # INSERT before its trigger exists keeps B NULL, which the backfill fills).
        programs = [("insert", "INSERT", self.insert_program(ts))]
        if self.has_update_work(ts):
            programs.insert(0, ("update", "UPDATE", self.update_program(ts)))
        objects = []
        for suffix, event, program in programs:
            name = self.object_name(ts.name, suffix)
            # MariaDB replaces a trigger atomically; MySQL has no OR REPLACE, so drop first.
            create_verb = "CREATE OR REPLACE TRIGGER" if self.is_mariadb else "CREATE TRIGGER"
            create = (f"{create_verb} {self.quote(name)} BEFORE {event} ON {self.quote(ts.name)}\n"
                      "FOR EACH ROW\nBEGIN\n" + "\n".join(self._indent(program)) + "\nEND")
            drop = self.drop_sql("trigger", name, ts.name)
            statements = (create,) if self.is_mariadb else (drop, create)
            objects.append(DbObject("trigger", name, ts.name, statements))
        return objects

    def catalog_objects(self, conn: sa.Connection, tables: set[str]) -> dict[str, tuple[str, str, str]]:
        rows = conn.execute(sa.text(
            "SELECT TRIGGER_NAME, EVENT_OBJECT_TABLE, ACTION_TIMING, EVENT_MANIPULATION, "
            "ACTION_STATEMENT FROM information_schema.TRIGGERS "
            "WHERE TRIGGER_SCHEMA = DATABASE() AND TRIGGER_NAME LIKE :prefix"
        ), {"prefix": PREFIX.replace("_", "\\_") + "%"})
        return {name: ("trigger", table, f"{timing} {event} {body}")
                for name, table, timing, event, body in rows if table in tables}

    def foreign_triggers(self, conn: sa.Connection, table: str) -> list[str]:
        return list(conn.execute(sa.text(
            "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE() "
            "AND EVENT_OBJECT_TABLE = :table AND TRIGGER_NAME NOT LIKE :prefix ORDER BY 1"
        ), {"table": table, "prefix": PREFIX.replace("_", "\\_") + "%"}).scalars())

    def store_as(self, expr, type_: sa.types.TypeEngine):
        # MySQL cannot CAST to BOOLEAN (or most numeric types); the column would coerce anyway.
        if isinstance(type_, (sa.String, sa.DateTime, sa.Date)):
            return sa.cast(expr, type_)
        return sa.type_coerce(expr, type_)

    def privilege_problems(self, conn: sa.Connection, tables: list[str]) -> list[str]:
        problems = []
        grants = "\n".join(conn.execute(sa.text("SHOW GRANTS FOR CURRENT_USER()")).scalars()).upper()
        has_all = "ALL PRIVILEGES ON *.*" in grants
        if not has_all and "TRIGGER" not in grants:
            problems.append("the database user lacks the TRIGGER privilege (GRANT TRIGGER ON db.* TO ...)")
        settings = conn.execute(sa.text(
            "SELECT @@log_bin, @@binlog_format, @@log_bin_trust_function_creators")).one()
        log_bin, binlog_format, trust = settings
        if int(log_bin or 0):
            if str(binlog_format).upper() == "STATEMENT":
                problems.append("binary logging is statement-based (binlog_format=STATEMENT); triggers "
                                "replicate unsafely: set binlog_format=ROW or MIXED")
            has_super = has_all or "SUPER" in grants
            if not has_super and not int(trust or 0):
                problems.append("binary logging is on and the user has neither SUPER nor "
                                "log_bin_trust_function_creators=1, so CREATE TRIGGER will fail")
        return problems

    def cascade_problems(self, conn: sa.Connection, table: str, columns: set[str]) -> list[str]:
        rows = conn.execute(sa.text(
            "SELECT k.COLUMN_NAME, r.CONSTRAINT_NAME, r.UPDATE_RULE, r.DELETE_RULE "
            "FROM information_schema.REFERENTIAL_CONSTRAINTS r "
            "JOIN information_schema.KEY_COLUMN_USAGE k ON k.CONSTRAINT_SCHEMA = r.CONSTRAINT_SCHEMA "
            "AND k.CONSTRAINT_NAME = r.CONSTRAINT_NAME AND k.TABLE_NAME = r.TABLE_NAME "
            "WHERE r.CONSTRAINT_SCHEMA = DATABASE() AND r.TABLE_NAME = :table"
        ), {"table": table})
        problems = []
        for column, constraint, on_update, on_delete in rows:
            rewrites = on_update in ("CASCADE", "SET NULL", "SET DEFAULT") or on_delete in ("SET NULL", "SET DEFAULT")
            if column in columns and rewrites:
                problems.append(
                    f"column {table}.{column} is rewritten by foreign key {constraint} "
                    f"(ON UPDATE {on_update} / ON DELETE {on_delete}); MySQL/MariaDB cascades skip "
                    "triggers, so the sync would silently break")
        return problems

    # --- DDL ---------------------------------------------------------------------------------
    def set_nullable_steps(self, intent: SetNullable, schema: Schema) -> list[Step]:
        current = schema.column(intent.table, intent.column)
        column = sa.Column(current.name, current.type, nullable=intent.nullable,
                           server_default=current.server_default)
        # INPLACE + LOCK=NONE: the table is rebuilt online; writers keep going.
        online = ", ALGORITHM=INPLACE, LOCK=NONE" if not intent.nullable else ""
        sql = f"{self.alter_table(intent.table)} MODIFY COLUMN {self.column_spec(column)}{online}"
        probe = column_nullable(intent.table, intent.column)
        locks = self.catalog_locks if intent.nullable else _INPLACE_LOCKS.format("the table is rebuilt while writes go on")
        return [Step(intent.describe(), [sql], is_done=lambda conn: probe(conn) is intent.nullable, locks=locks)]

    def create_index_steps(self, intent: CreateIndex) -> list[Step]:
        kind = "UNIQUE INDEX" if intent.unique else "INDEX"
        sql = (f"{self.alter_table(intent.table)} ADD {kind} {self.quote(intent.name)} "
               f"{self.column_list(intent.columns)}{_ONLINE}")
        return [Step(intent.describe(), [sql], is_done=self.index_exists(intent.table, intent.name),
                     locks=self.index_locks)]

    def drop_index_steps(self, intent: DropIndex) -> list[Step]:
        sql = f"{self.alter_table(intent.table)} DROP INDEX {self.quote(intent.name)}{_ONLINE}"
        exists = self.index_exists(intent.table, intent.name)
        return [Step(intent.describe(), [sql], is_done=lambda conn: not exists(conn),
                     locks=_INPLACE_LOCKS.format("metadata only"))]

    def add_unique_steps(self, intent: AddUnique) -> list[Step]:
        # A unique index is MariaDB's unique constraint; rows that collide while it builds fail the build.
        [step] = self.create_index_steps(CreateIndex(intent.table, intent.name, intent.columns, unique=True))
        step.name = intent.describe()
        return [step]

    def add_foreign_key_steps(self, intent: AddForeignKey) -> list[Step]:
        add = f"{self.alter_table(intent.table)} ADD {self.constraint_sql(intent)}"
        exists = self.constraint_exists(intent.table, intent.name)
        if not self.is_mariadb:
            # MySQL has no SET STATEMENT to scope foreign_key_checks=0 to the ALTER, nor anonymous
            # blocks to validate afterwards: the checked form, which copies the table.
            return [Step(intent.describe(), [add + _COPY], is_done=exists, locks=_COPY_LOCKS.format("MySQL"))]
        # With foreign_key_checks=0 MariaDB adds the key INPLACE without reading a row, so the
        # rows are validated right after, by crossfade: contract checked them before its first
        # DDL, and this catches a row written between that check and the key.
        unchecked = Step(f"{intent.describe()}: unchecked, INPLACE",
                         [f"SET STATEMENT foreign_key_checks=0 FOR {add}{_ONLINE}"], is_done=exists,
                         locks=_INPLACE_LOCKS.format("foreign_key_checks=0: no row is read, the next step "
                                                     "validates them"))
        message = (f"crossfade: foreign key {intent.name} on {intent.table}: rows reference no "
                   f"{intent.ref_table} row; fix them, then contract again")
        block = (f"BEGIN NOT ATOMIC\n  IF EXISTS ({self.compile(intent.violating_rows())}) THEN\n"
                 f"    {self.raise_error(message)}\n  END IF;\nEND")
        validate = Step(f"{intent.describe()}: validate the existing rows", [block],
                        locks="no write lock (a consistent read of both tables)")
        return [unchecked, validate]

    def add_check_steps(self, intent: AddCheck) -> list[Step]:
        sql = f"{self.alter_table(intent.table)} ADD {self.constraint_sql(intent)}{_COPY}"
        # The copy checks every row: a failing one makes the ALTER fail, and leaves the table as it was.
        return [Step(intent.describe(), [sql], is_done=self.constraint_exists(intent.table, intent.name),
                     locks=_COPY_LOCKS.format("MariaDB" if self.is_mariadb else "MySQL"))]

    def index_exists(self, table: str, name: str):
        def probe(conn: sa.Connection) -> bool:
            return conn.execute(sa.text(
                "SELECT 1 FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() "
                "AND TABLE_NAME = :t AND INDEX_NAME = :n LIMIT 1"), {"t": table, "n": name}).first() is not None
        return probe

    def constraint_exists(self, table: str, name: str):
        def probe(conn: sa.Connection) -> bool:
            return conn.execute(sa.text(
                "SELECT 1 FROM information_schema.TABLE_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = DATABASE() "
                "AND TABLE_NAME = :t AND CONSTRAINT_NAME = :n"), {"t": table, "n": name}).first() is not None
        return probe

    # --- locks -------------------------------------------------------------------------------
    def session_lock_timeout(self, conn: sa.Connection) -> float:
        return float(conn.exec_driver_sql("SELECT @@SESSION.lock_wait_timeout").scalar())

    def set_lock_timeout(self, conn: sa.Connection, seconds: float) -> None:
        # lock_wait_timeout counts whole seconds; 0 fails at once, and retrying such attempts
        # keeps writers' worst stall at a few ms (DESIGN section 6).
        conn.exec_driver_sql(f"SET SESSION lock_wait_timeout = {int(seconds)}")

    def effective_lock_timeout(self, seconds: float) -> float:
        return float(int(seconds))

    def is_lock_timeout(self, exc: sa.exc.DBAPIError) -> bool:
        args = getattr(exc.orig, "args", ())
        return bool(args) and args[0] == LOCK_WAIT_TIMEOUT
