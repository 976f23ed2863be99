"""MySQL / MariaDB: BEFORE INSERT and BEFORE UPDATE triggers that `SET NEW.x`.

Never an UPDATE of the trigger's own table (error 1442). DDL is not transactional here, so
every step is checked before it runs and a rerun picks up where a crash left off.
"""

from __future__ import annotations

import sqlalchemy as sa

from ..ddl import SetNullable, Step
from ..schema import Schema
from ..sync import TableSync
from .base import PREFIX, DbObject, ProceduralTriggers, column_nullable

LOCK_WAIT_TIMEOUT = 1205


class MySQLDialect(ProceduralTriggers):
    name = "mysql"
    max_identifier_length = 64
    transactional_ddl = False
    elsif = "ELSEIF"

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
        return [Step(intent.describe(), [sql], is_done=lambda conn: probe(conn) is intent.nullable)]

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
