"""PostgreSQL: one PL/pgSQL function per table, fired BEFORE INSERT and BEFORE UPDATE.

The UPDATE trigger fires only for UPDATEs that name a synced column (UPDATE OF), and its WHEN
clause skips the function call when no synced value changed. An UPDATE of unrelated columns
then pays only what PostgreSQL charges any BEFORE UPDATE row trigger: it locks the row first.
"""

from __future__ import annotations

import sqlalchemy as sa

from ..ddl import SetNullable, Step
from ..schema import Schema
from ..sync import TableSync
from .base import PREFIX, DbObject, ProceduralTriggers, column_nullable

LOCK_NOT_AVAILABLE = "55P03"


class PostgresDialect(ProceduralTriggers):
    name = "postgresql"
    max_identifier_length = 63

    def assign(self, target: str, value: str) -> str:
        return f"{target} := {value};"

    def raise_error(self, message: str) -> str:
        # USING MESSAGE: the text is an expression, so a % in it is not a format placeholder.
        return f"RAISE EXCEPTION USING MESSAGE = {self.compile(sa.literal(message))}, ERRCODE = 'P0001';"

    def trigger_objects(self, ts: TableSync) -> list[DbObject]:
        function = self.object_name(ts.name, "sync")
        table = self.quote(ts.name)
        body = [
            "IF TG_OP = 'INSERT' THEN",
            *self._indent(self.insert_program(ts)),
            "ELSE",
            *self._indent(self.update_program(ts) or ["NULL;"]),
            "END IF;",
            "RETURN NEW;",
        ]
        create_function = (
            f"CREATE OR REPLACE FUNCTION {self.quote(function)}() RETURNS trigger\n"
            f"LANGUAGE plpgsql AS $crossfade$\nBEGIN\n"
            + "\n".join(self._indent(body)) + "\nEND\n$crossfade$"
        )
        objects = [DbObject("function", function, ts.name, (create_function,))]
        events = [("insert", "INSERT", None)]
        condition = self.update_condition(ts)
        if condition is not None:
            # Only a SET of a synced column can change one (fills included: a column becomes NULL
            # only when an UPDATE names it), so other UPDATEs skip even the WHEN evaluation.
            columns = ", ".join(self.quote(c) for c in sorted(ts.synced_columns()))
            events.append(("update", f"UPDATE OF {columns}", condition))
        for suffix, event, when in events:
            name = self.object_name(ts.name, suffix)
            when_sql = f"\nWHEN ({self.compile(when)})" if when is not None else ""
            create = (f"CREATE TRIGGER {self.quote(name)} BEFORE {event} ON {table}\nFOR EACH ROW{when_sql}\n"
                      f"EXECUTE FUNCTION {self.quote(function)}()")
            # Drop and create in one transaction: CREATE OR REPLACE TRIGGER needs PostgreSQL 14.
            drop = self.drop_sql("trigger", name, ts.name)
            objects.append(DbObject("trigger", name, ts.name, (drop, create)))
        return objects

    def drop_sql(self, kind: str, name: str, table: str) -> str:
        if kind == "function":
            return f"DROP FUNCTION IF EXISTS {self.quote(name)}()"
        return f"DROP TRIGGER IF EXISTS {self.quote(name)} ON {self.quote(table)}"

    def catalog_objects(self, conn: sa.Connection, tables: set[str]) -> dict[str, tuple[str, str, str]]:
        found: dict[str, tuple[str, str, str]] = {}
        triggers = conn.execute(sa.text(
            "SELECT t.tgname, c.relname, pg_get_triggerdef(t.oid) FROM pg_trigger t "
            "JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE NOT t.tgisinternal AND n.nspname = current_schema() "
            "AND t.tgname LIKE :prefix AND c.relname = ANY(:tables)"
        ), {"prefix": PREFIX.replace("_", r"\_") + "%", "tables": sorted(tables)})
        for name, table, definition in triggers:
            found[name] = ("trigger", table, definition)
        wanted = {self.object_name(t, "sync"): t for t in tables}
        functions = conn.execute(sa.text(
            "SELECT p.proname, pg_get_functiondef(p.oid) FROM pg_proc p "
            "JOIN pg_namespace n ON n.oid = p.pronamespace "
            "WHERE n.nspname = current_schema() AND p.proname = ANY(:names)"
        ), {"names": sorted(wanted)})
        for name, definition in functions:
            found[name] = ("function", wanted[name], definition)
        return found

    def foreign_triggers(self, conn: sa.Connection, table: str) -> list[str]:
        return list(conn.execute(sa.text(
            "SELECT t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE NOT t.tgisinternal "
            "AND n.nspname = current_schema() AND c.relname = :table AND t.tgname NOT LIKE :prefix "
            "ORDER BY 1"
        ), {"table": table, "prefix": PREFIX.replace("_", r"\_") + "%"}).scalars())

    def privilege_problems(self, conn: sa.Connection, tables: list[str]) -> list[str]:
        problems = []
        if not conn.execute(sa.text("SELECT has_schema_privilege(current_schema(), 'CREATE')")).scalar():
            problems.append("the database user may not create functions in the current schema "
                            "(GRANT CREATE ON SCHEMA)")
        owned = conn.execute(sa.text(
            "SELECT c.relname, pg_has_role(c.relowner, 'USAGE') FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = current_schema() AND c.relname = ANY(:tables)"
        ), {"tables": tables})
        for table, is_owner in owned:
            if not is_owner:
                problems.append(f"the database user does not own table {table!r}; "
                                "ALTER TABLE and CREATE TRIGGER need its owner")
        return problems

    def orphan_functions(self, conn: sa.Connection) -> list[str]:
        return list(conn.execute(sa.text(
            "SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
            "WHERE n.nspname = current_schema() AND p.proname LIKE :prefix "
            "AND NOT EXISTS (SELECT 1 FROM pg_trigger t WHERE t.tgfoid = p.oid) ORDER BY 1"
        ), {"prefix": PREFIX.replace("_", r"\_") + "%"}).scalars())

    # --- DDL ---------------------------------------------------------------------------------
    def set_nullable_steps(self, intent: SetNullable, schema: Schema) -> list[Step]:
        alter = f"{self.alter_table(intent.table)} ALTER COLUMN {self.quote(intent.column)}"
        is_nullable = column_nullable(intent.table, intent.column)
        if intent.nullable:
            return [Step(intent.describe(), [f"{alter} DROP NOT NULL"], is_done=is_nullable)]
        # Online NOT NULL: a NOT VALID check is instant, VALIDATE scans without blocking writes,
        # and SET NOT NULL then trusts the validated check instead of scanning under a lock.
        check = self.object_name(f"{intent.table}_{intent.column}", "nn")
        table = self.alter_table(intent.table)
        is_not_null = lambda conn: is_nullable(conn) is False
        has_check = _constraint_exists(intent.table, check)
        return [
            Step(f"{intent.describe()}: add CHECK NOT VALID",
                 [(f"{table} ADD CONSTRAINT {self.quote(check)} "
                   f"CHECK ({self.quote(intent.column)} IS NOT NULL) NOT VALID")],
                 is_done=lambda conn: is_not_null(conn) or has_check(conn)),
            Step(f"{intent.describe()}: validate the check",
                 [f"{table} VALIDATE CONSTRAINT {self.quote(check)}"], is_done=is_not_null),
            Step(f"{intent.describe()}: SET NOT NULL", [f"{alter} SET NOT NULL"], is_done=is_not_null),
            Step(f"{intent.describe()}: drop the check",
                 [f"{table} DROP CONSTRAINT IF EXISTS {self.quote(check)}"],
                 is_done=lambda conn: not has_check(conn)),
        ]

    # --- locks -------------------------------------------------------------------------------
    def set_lock_timeout(self, conn: sa.Connection, seconds: float) -> None:
        # SET LOCAL: a failed attempt's rollback must not undo it (DESIGN section 6).
        conn.exec_driver_sql(f"SET LOCAL lock_timeout = '{max(1, int(seconds * 1000))}ms'")

    def is_lock_timeout(self, exc: sa.exc.DBAPIError) -> bool:
        return getattr(exc.orig, "sqlstate", None) == LOCK_NOT_AVAILABLE


def _constraint_exists(table: str, name: str):
    def probe(conn: sa.Connection) -> bool:
        return conn.execute(sa.text(
            "SELECT 1 FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = current_schema() AND c.relname = :t AND k.conname = :n"
        ), {"t": table, "n": name}).first() is not None
    return probe
