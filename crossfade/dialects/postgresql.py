"""PostgreSQL: one PL/pgSQL function per table, fired BEFORE INSERT and BEFORE UPDATE.

The UPDATE trigger fires only for UPDATEs that name a synced column (UPDATE OF), and its WHEN
clause skips the function call when no synced value changed. An UPDATE of unrelated columns
then pays only what PostgreSQL charges any BEFORE UPDATE row trigger: it locks the row first.
"""

from __future__ import annotations

import datetime as dt
from contextlib import contextmanager, nullcontext

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from .. import names, sqltext
from ..ddl import AddCheck, AddForeignKey, AddUnique, CreateIndex, DropIndex, SetNullable, Step, SwapStandIn
from ..derived import DeriveStatements
from ..errors import Dependent, LockHolder, SchemaError
from ..expressions import TriggerRow
from ..names import PREFIX
from ..schema import Schema
from ..sync import LinkRule, MoveStatements, TableSync, changed, conflict, row
from . import postgresql_derive
from .alter import INPLACE, INSTANT, Clause
from .base import DbObject, ProceduralTriggers, column_nullable, renamed

LOCK_NOT_AVAILABLE = "55P03"
DEADLOCK_DETECTED = "40P01"

# The schema the change's tables are in (the runner resolved it once), else the current one.
_IN_SCHEMA = "coalesce(CAST(:schema AS name), current_schema())"

_INSTANT = "ACCESS EXCLUSIVE for an instant ({}); each attempt waits at most lock_timeout"
_CONCURRENTLY = ("no write lock (CONCURRENTLY: SHARE UPDATE EXCLUSIVE; writes go on); outside a transaction; "
                 "may wait up to max_lock_wait for older transactions, stalling no writer")


# What PostgreSQL reads and writes dates, times, intervals and floats as text by, and converts
# timestamps to and from timestamptz by: the session's settings. A function pins (SET clauses)
# those its values go through, so every writer's session computes the same values, as the
# round-trip check and the backfill, pinned alike, do. Naive timestamps are UTC. Each SET costs
# every call its save and restore (a bulk INSERT of 200,000 rows here: TimeZone 2.2 s -> 4.2-4.6 s,
# DateStyle, IntervalStyle or extra_float_digits +0.2-0.5 s each), so a function pins only those
# its types read.
PINNED_SETTINGS = (("DateStyle", "ISO, MDY"), ("IntervalStyle", "postgres"), ("TimeZone", "UTC"),
                   ("extra_float_digits", "1"))


def settings_read(types: list[sa.types.TypeEngine]) -> list[tuple[str, str]]:
    """The PINNED_SETTINGS that converting between values of these types reads."""
    python_types = {_python_type(t) for t in types}
    as_text = str in python_types
    needed = {
        "DateStyle": as_text and bool(python_types & {dt.date, dt.datetime, dt.time}),
        "IntervalStyle": as_text and dt.timedelta in python_types,
        "TimeZone": any(getattr(t, "timezone", False) is True for t in types),
        "extra_float_digits": as_text and float in python_types,
    }
    return [(name, value) for name, value in PINNED_SETTINGS if needed[name]]


def _python_type(type_: sa.types.TypeEngine):
    try:
        return type_.python_type
    except NotImplementedError:
        return None


class PostgresDialect(ProceduralTriggers):
    name = "postgresql"
    identifiers = names.POSTGRESQL
    catalog_locks = _INSTANT.format("catalog only, no scan")
    alter_clauses = idempotent_clauses = True

    def own_alter_clause(self, intent, schema: Schema) -> Clause | None:
        # DROP NOT NULL is catalog only; SET NOT NULL is an online sequence of its own (set_nullable_steps).
        if isinstance(intent, SetNullable) and intent.nullable:
            is_nullable = column_nullable(intent.table, intent.column, self.schema)
            return Clause(intent.table, f"ALTER COLUMN {self.quote(intent.column)} DROP NOT NULL", intent.describe(),
                          f"column {intent.column}", INSTANT, is_nullable, self.catalog_locks)
        return None

    def add_column_how(self, column: sa.Column) -> str:
        # Since PostgreSQL 11 a non-volatile default is catalog only too; a volatile one rewrites.
        default = column.server_default
        return INSTANT if default is None or isinstance(getattr(default, "arg", None), str) else INPLACE
    trigger_locks = ("CREATE TRIGGER: SHARE ROW EXCLUSIVE, DROP TRIGGER: ACCESS EXCLUSIVE, each for an instant; "
                     "each attempt waits at most lock_timeout")
    backfill_locks = "row locks on one batch's rows, one short transaction per batch"
    utc_now_sql = "SELECT clock_timestamp() AT TIME ZONE 'UTC'"

    def resolve_schema(self, conn: sa.Connection, tables: set[str], declared: str | None) -> str | None:
        """The schema the tables are really in: the declared one, else where the session's
        search_path finds them (not necessarily current_schema()), else the current schema."""
        if declared is not None:
            if conn.execute(sa.text("SELECT to_regnamespace(quote_ident(:s))"), {"s": declared}).scalar() is None:
                raise SchemaError(declared, f"schema {declared!r} does not exist")
            return declared
        found = {}
        for table in sorted(tables):
            schema = conn.execute(sa.text(
                "SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE c.oid = to_regclass(quote_ident(:t))"), {"t": table}).scalar()
            if schema is not None:
                found[table] = schema
        if len(set(found.values())) > 1:
            where = ", ".join(f"{table} in {schema}" for table, schema in sorted(found.items()))
            raise SchemaError(None, f"the change's tables are in different schemas ({where}); a change works in "
                                    "one schema: name it with Change(..., schema=...)")
        if found:
            return next(iter(found.values()))
        return conn.execute(sa.text("SELECT current_schema()")).scalar()

    def assign(self, target: str, value: str) -> str:
        return f"{target} := {value};"

    @contextmanager
    def pinned_session(self, conn: sa.Connection):
        names = [name for name, _ in PINNED_SETTINGS]
        outside = not conn.in_transaction()  # inside one (Alembic's), the caller ends it
        saved = conn.execute(sa.select(*[sa.func.current_setting(n) for n in names])).one()
        _set_all(conn, PINNED_SETTINGS, commit=outside)
        try:
            yield conn
        finally:
            try:
                _set_all(conn, list(zip(names, saved)), commit=not conn.in_transaction())
            except sa.exc.DBAPIError:
                conn.invalidate()  # never back to the pool with crossfade's settings

    def pinned_batch(self, conn: sa.Connection):
        return nullcontext(conn)  # backfill_batch_settings pins each batch's transaction

    def _fix_rendering(self, rendering: sa.Dialect) -> None:
        rendering._backslash_escapes = False  # the compiler writes E'' itself
        rendering.statement_compiler = _escape_proof(type(self.engine_dialect).statement_compiler)

    def raise_error(self, message: str) -> str:
        # USING MESSAGE: the text is an expression, so a % in it is not a format placeholder.
        return f"RAISE EXCEPTION USING MESSAGE = {self.compile(sa.literal(message))}, ERRCODE = 'P0001';"

    def trigger_objects(self, ts: TableSync) -> list[DbObject]:
        function = self.object_name(ts.name, "sync")
        table = self.qualified(ts.name)
        named = self.named_program(ts)
        deletes = self.delete_program(ts)
        body = [
            *(["IF TG_NARGS > 0 THEN", *self._indent(named), "  RETURN NEW;", "END IF;"] if named else []),
            *(["IF TG_OP = 'DELETE' THEN", *self._indent(deletes), "  RETURN OLD;", "END IF;"] if deletes else []),
            "IF TG_OP = 'INSERT' THEN",
            *self._indent(self.insert_program(ts) or ["NULL;"]),
            "ELSE",
            *self._indent(self.update_program(ts) or ["NULL;"]),
            "END IF;",
            "RETURN NEW;",
        ]
        create_function = self._function_sql(function, body, settings_read(ts.value_types()))
        objects = [DbObject("function", function, ts.name, (create_function,))]
        events = [("insert", "INSERT", None)] if self.insert_program(ts) or not ts.blocks else []
        condition = self.update_condition(ts)
        if condition is not None:
            # Only a SET of a synced column can change one (fills included: a column becomes NULL
            # only when an UPDATE names it), so other UPDATEs skip even the WHEN evaluation.
            columns = ", ".join(self.quote(c) for c in sorted(ts.synced_columns()))
            # A table's block of updates looks at every UPDATE, whichever columns it names.
            whole = any(b.whole_table and b.blocks("update") for b in ts.blocks)
            events.append(("update", "UPDATE" if whole or not columns else f"UPDATE OF {columns}", condition))
        if deletes:
            events.append(("delete", "DELETE", None))
        events += self._named_events(ts)
        for suffix, event, when, *args in events:
            name = self.object_name(ts.name, suffix)
            when_sql = f"\nWHEN ({self._when_sql(when)})" if when is not None else ""
            objects.append(self._trigger(name, ts.name, f"BEFORE {event} ON {table}\nFOR EACH ROW{when_sql}\n"
                                         f"EXECUTE FUNCTION {self.qualified(function)}({', '.join(args)})"))
        return objects

    def _trigger(self, name: str, table: str, definition: str) -> DbObject:
        """One statement where PostgreSQL (14+) replaces a trigger; before, drop and create in one
        transaction. A plan made without a server assumes a current one."""
        version = getattr(self.engine_dialect, "server_version_info", None)
        if version is None or version >= (14,):
            return DbObject("trigger", name, table, (f"CREATE OR REPLACE TRIGGER {self.quote(name)} {definition}",))
        create = f"CREATE TRIGGER {self.quote(name)} {definition}"
        return DbObject("trigger", name, table, (self.drop_sql("trigger", name, table), create))

    def crossfade_writing_sql(self) -> str:
        # Transaction-local (writing_guard): it ends with crossfade's batch, whatever happens.
        return "coalesce(current_setting('crossfade.writer', true), '') = 'crossfade'"

    def writing_guard(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        return ("SELECT set_config('crossfade.writer', 'crossfade', true)",), ()

    def identified_sql(self) -> str:
        # Set by identify_new_release on release N+1's connections; `true`: NULL when unset.
        return "coalesce(current_setting('crossfade.release', true), '') = 'new'"

    def named_program(self, ts: TableSync) -> list[str]:
        """The function's part for the named triggers below (TG_ARGV[0]: the group's index):
        release N+1 named the group's B, so A := down(B)."""
        new = row(ts.table, "NEW")
        lines: list[str] = []
        for index, group in self.named_groups(ts):
            lines += [f"IF TG_ARGV[0] = '{index}' THEN",
                      f"  IF {self.compile(conflict(group, new))} THEN",
                      *self._indent(self._assign_all(new, group.old, group.down_exprs(new)), 2),
                      "  END IF;", "END IF;"]
        return lines

    def _named_events(self, ts: TableSync) -> list[tuple]:
        """Per two-way group, a trigger for release N+1's UPDATE that names B without changing it
        (SET amount_cents = NULL where it is NULL already): UPDATE OF fires for a named column,
        changed or not, and the function then sets A := down(B). Named so that it fires before
        the update trigger (alphabetically), which then sees A's change like any other."""
        new, old = row(ts.table, "NEW"), row(ts.table, "OLD")
        events = []
        for index, group in self.named_groups(ts):
            columns = ", ".join(self.quote(c) for c in group.new)
            when = f"{self.identified_sql()} AND NOT ({self.compile(changed(group.new, new, old))})"
            events.append((f"named{index}", f"UPDATE OF {columns}", when, f"'{index}'"))
        return events

    def _when_sql(self, when) -> str:
        return when if isinstance(when, str) else self.compile(when)

    def drop_sql(self, kind: str, name: str, table: str) -> str:
        if kind == "function":
            return f"DROP FUNCTION IF EXISTS {self.qualified(name)}()"
        return f"DROP TRIGGER IF EXISTS {self.quote(name)} ON {self.qualified(table)}"

    def catalog_objects(self, conn: sa.Connection, tables: set[str]) -> dict[str, tuple[str, str, str]]:
        found: dict[str, tuple[str, str, str]] = {}
        with self._definitions_qualified(conn):
            triggers = conn.execute(sa.text(
                "SELECT t.tgname, c.relname, pg_get_triggerdef(t.oid) FROM pg_trigger t "
                "JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
                f"WHERE NOT t.tgisinternal AND n.nspname = {_IN_SCHEMA} "
                "AND t.tgname LIKE :prefix AND c.relname = ANY(:tables)"
            ), {"prefix": PREFIX.replace("_", r"\_") + "%", "tables": sorted(tables), "schema": self.schema})
            for name, table, definition in triggers:
                found[name] = ("trigger", table, definition)
            wanted = {self.object_name(t, kind): t for t in tables for kind in ("sync", "link", "move", "derive")}
            functions = conn.execute(sa.text(
                "SELECT p.proname, pg_get_functiondef(p.oid) FROM pg_proc p "
                "JOIN pg_namespace n ON n.oid = p.pronamespace "
                f"WHERE n.nspname = {_IN_SCHEMA} AND p.proname = ANY(:names)"
            ), {"names": sorted(wanted), "schema": self.schema})
            for name, definition in functions:
                found[name] = ("function", wanted[name], definition)
        return found

    def disabled_triggers(self, conn: sa.Connection, tables: set[str]) -> dict[str, tuple[str, str]]:
        """pg_trigger.tgenabled: 'D' (DISABLE TRIGGER, or DISABLE TRIGGER ALL) never fires; 'R'
        (ENABLE REPLICA TRIGGER) fires only under session_replication_role = replica, so never for
        the applications' writes. 'A' (ENABLE ALWAYS) fires for every write and is fine."""
        rows = conn.execute(sa.text(
            "SELECT t.tgname, c.relname, t.tgenabled FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            f"WHERE NOT t.tgisinternal AND n.nspname = {_IN_SCHEMA} AND t.tgname LIKE :prefix "
            "AND c.relname = ANY(:tables) AND t.tgenabled IN ('D', 'R')"
        ), {"prefix": PREFIX.replace("_", r"\_") + "%", "tables": sorted(tables), "schema": self.schema})
        how = {"D": "disabled (ALTER TABLE ... DISABLE TRIGGER)",
               "R": "enabled only for replication (ENABLE REPLICA TRIGGER): the applications' writes skip it"}
        return {name: (table, how[mode]) for name, table, mode in rows}

    def replication_warnings(self, conn: sa.Connection, tables: list[str]) -> list[str]:
        from .postgresql_publications import publication_warnings  # it reads this module's _IN_SCHEMA

        return publication_warnings(conn, self.schema, tables)

    def enable_trigger_sql(self, name: str, table: str) -> str:
        return f"ALTER TABLE {self.qualified(table)} ENABLE TRIGGER {self.quote(name)}"

    @contextmanager
    def _definitions_qualified(self, conn: sa.Connection):
        """pg_get_triggerdef names a table with its schema only where the session's search_path
        does not reach it: for a resolved schema the definitions are read with every name
        qualified, so their checksums do not depend on the path of whoever runs crossfade."""
        if self.schema is None:
            yield
            return
        saved = conn.execute(sa.text("SELECT current_setting('search_path')")).scalar()
        conn.execute(sa.text("SELECT set_config('search_path', 'pg_catalog', true)"))
        try:
            yield
        finally:
            conn.execute(sa.text("SELECT set_config('search_path', :saved, true)"), {"saved": saved})

    def foreign_triggers(self, conn: sa.Connection, table: str) -> list[str]:
        return list(conn.execute(sa.text(
            "SELECT t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE NOT t.tgisinternal "
            f"AND n.nspname = {_IN_SCHEMA} AND c.relname = :table AND t.tgname NOT LIKE :prefix "
            "ORDER BY 1"
        ), {"table": table, "prefix": PREFIX.replace("_", r"\_") + "%", "schema": self.schema}).scalars())

    def column_dependents(self, conn: sa.Connection, table: str, columns: list[str]) -> list[Dependent]:
        params = {"table": table, "prefix": PREFIX.replace("_", r"\_") + "%", "schema": self.schema}
        rows = conn.execute(sa.text(_DEPENDENTS), {**params, "columns": list(columns)})
        found = [Dependent(kind, name, f"{table}.{column}") for kind, name, column in rows]
        bodies = conn.execute(sa.text(_TRIGGER_BODIES), params)
        found += [Dependent("trigger", name, f"{table}.{column}") for name, body in bodies
                  for column in columns if sqltext.mentions(body, column)]
        return sorted(set(found), key=lambda d: (d.kind, d.name, d.column))

    def privilege_problems(self, conn: sa.Connection, tables: list[str]) -> tuple[list[str], list[str]]:
        user, schema, may_create = conn.execute(sa.text(
            f"SELECT current_user, {_IN_SCHEMA}, has_schema_privilege({_IN_SCHEMA}, 'CREATE')"),
            {"schema": self.schema}).one()
        who = self.quote(user)
        problems = []
        if not may_create:
            problems.append(f"the database user {user} may not create the trigger functions in schema {schema}: "
                            f"GRANT CREATE ON SCHEMA {self.preparer.quote_schema(schema)} TO {who}")
        rows = conn.execute(sa.text(
            "SELECT c.relname, pg_get_userbyid(c.relowner), pg_has_role(c.relowner, 'USAGE'), "
            "has_table_privilege(c.oid, 'TRIGGER') FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            f"WHERE n.nspname = {_IN_SCHEMA} AND c.relname = ANY(:tables) ORDER BY 1"
        ), {"tables": tables, "schema": self.schema})
        for table, owner, is_owner, may_trigger in rows:
            if not may_trigger:
                problems.append(f"the database user {user} lacks the TRIGGER privilege on table {table}: "
                                f"GRANT TRIGGER ON TABLE {self.qualified(table)} TO {who}")
            if not is_owner:
                problems.append(f"the database user {user} does not own table {table} (owner: {owner}), and "
                                f"ALTER TABLE and DROP TRIGGER need its owner: GRANT {self.quote(owner)} TO {who} "
                                f"(or ALTER TABLE {self.qualified(table)} OWNER TO {who})")
        return problems, []

    def orphan_functions(self, conn: sa.Connection) -> list[str]:
        return list(conn.execute(sa.text(
            "SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
            f"WHERE n.nspname = {_IN_SCHEMA} AND p.proname LIKE :prefix "
            "AND NOT EXISTS (SELECT 1 FROM pg_trigger t WHERE t.tgfoid = p.oid) ORDER BY 1"
        ), {"prefix": PREFIX.replace("_", r"\_") + "%", "schema": self.schema}).scalars())

    # --- cross-table links -------------------------------------------------------------------
    create_table_locks = ("CREATE TABLE with a foreign key: SHARE ROW EXCLUSIVE on the referenced table for an "
                          "instant (blocks its writes only while waiting); each attempt waits at most lock_timeout")
    view_locks = "catalog only: ACCESS SHARE on the table (writes go on)"

    def link_objects(self, link: LinkRule) -> list[DbObject]:
        objects = []
        for table, programs in ((link.source, self._source_programs(link)), (link.target, self._target_programs(link))):
            function = self.object_name(table, "link")
            insert, update, delete = programs
            body = [
                # The guard: a write this function makes fires the other table's link trigger,
                # which must not write back. Transaction-local, and undone with a failed statement.
                "IF coalesce(current_setting('crossfade.link', true), '') = 'on' THEN",
                "  RETURN NULL;",
                "END IF;",
                *self._guarded(["IF TG_OP = 'INSERT' THEN", *self._indent(insert),
                                "ELSIF TG_OP = 'UPDATE' THEN", *self._indent(update),
                                "ELSE", *self._indent(delete),
                                "END IF;"]),
                "RETURN NULL;",
            ]
            create_function = self._function_sql(function, body)
            objects.append(DbObject("function", function, table, (create_function,)))
            synced = (link.key, *link.columns)
            changed_sql = f"({self._refs('OLD', synced)}) IS DISTINCT FROM ({self._refs('NEW', synced)})"
            has_value = " OR ".join(f"NEW.{self.quote(c)} IS NOT NULL" for c in link.columns)
            insert_when = f"\nWHEN ({has_value})" if table == link.source else ""
            events = (("link_insert", "INSERT", insert_when), ("link_delete", "DELETE", ""),
                      ("link_update", f"UPDATE OF {', '.join(self.quote(c) for c in synced)}", f"\nWHEN ({changed_sql})"))
            for suffix, event, when in events:
                name = self.object_name(table, suffix)
                objects.append(self._trigger(name, table, f"AFTER {event} ON {self.qualified(table)}\n"
                                             f"FOR EACH ROW{when}\nEXECUTE FUNCTION {self.qualified(function)}()"))
        return objects

    def _refs(self, row_name: str, columns) -> str:
        return ", ".join(f"{row_name}.{self.quote(c)}" for c in columns)

    def _source_programs(self, link: LinkRule) -> tuple[list[str], list[str], list[str]]:
        """Release N's table: its values reach the new table's row, made when one has a value."""
        if link.mirror:
            raise NotImplementedError("PostgreSQL's rename_table stand-in is a view")
        target, key, cols = self.qualified(link.target), self.quote(link.key), link.columns
        names = ", ".join(self.quote(c) for c in cols)
        has_value = " OR ".join(f"NEW.{self.quote(c)} IS NOT NULL" for c in cols)
        upsert = (f"INSERT INTO {target} AS t ({key}, {names}) VALUES (NEW.{key}, {self._refs('NEW', cols)})\n"
                  f"  ON CONFLICT ({key}) DO UPDATE SET "
                  + ", ".join(f"{self.quote(c)} = EXCLUDED.{self.quote(c)}" for c in cols)
                  + f"\n  WHERE ({self._refs('t', cols)}) IS DISTINCT FROM ({self._refs('EXCLUDED', cols)});")
        update = (f"UPDATE {target} AS t SET " + ", ".join(f"{self.quote(c)} = NEW.{self.quote(c)}" for c in cols)
                  + f" WHERE t.{key} = NEW.{key} AND ({self._refs('t', cols)}) IS DISTINCT FROM ({self._refs('NEW', cols)});")
        # A new row can have no target row yet (the target's key references it): a plain INSERT,
        # fired only with a value (the source's INSERT trigger's WHEN).
        insert = [f"INSERT INTO {target} ({key}, {names}) VALUES (NEW.{key}, {self._refs('NEW', cols)});"]
        # An update usually finds its row: a plain UPDATE first, the upsert (a speculative insert,
        # dearer) only for a row not there yet, or one already equal.
        return insert, [update, f"IF NOT FOUND AND ({has_value}) THEN", f"  {upsert}", "END IF;"], [
            f"DELETE FROM {target} WHERE {key} = OLD.{key};"]

    def _target_programs(self, link: LinkRule) -> tuple[list[str], list[str], list[str]]:
        """Release N+1's table: its values reach release N's columns; no row means NULLs."""
        source, key, cols = self.qualified(link.source), self.quote(link.key), link.columns
        copy = (f"UPDATE {source} AS s SET " + ", ".join(f"{self.quote(c)} = NEW.{self.quote(c)}" for c in cols)
                + f" WHERE s.{key} = NEW.{key} AND ({self._refs('s', cols)}) IS DISTINCT FROM ({self._refs('NEW', cols)});")
        clear = (f"UPDATE {source} AS s SET " + ", ".join(f"{self.quote(c)} = NULL" for c in cols)
                 + f" WHERE s.{key} = OLD.{key} AND NOT ("
                 + " AND ".join(f"s.{self.quote(c)} IS NULL" for c in cols) + ");")
        return [copy], [copy], [clear]

    def insert_missing(self, target: sa.Table, key: str, columns: list[str], select: sa.Select) -> sa.Insert:
        return postgresql.insert(target).from_select(columns, select).on_conflict_do_nothing(index_elements=[key])

    def keep_rows_while_copying(self, select: sa.Select, source: sa.Table) -> sa.Select:
        # FOR KEY SHARE: a concurrent DELETE waits, and a row deleted before the lock is skipped
        # (READ COMMITTED re-reads a row that changed under it), while updates go on.
        return select.with_for_update(read=True, key_share=True, of=source)

    def link_guard(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        # Transaction-local: it ends with the batch's transaction whatever happens.
        return ("SELECT set_config('crossfade.link', 'on', true)",), ()

    def derive_objects(self, derive: DeriveStatements) -> list[DbObject]:
        return postgresql_derive.objects(self, derive)

    # --- move_column ---------------------------------------------------------------------------
    # BEFORE triggers fill the written row from the other side (NEW := ...); AFTER triggers write
    # the other side, after the whole statement has written its rows: a BEFORE trigger writing
    # sibling rows the same statement updates next would fail ("tuple already modified").
    def move_objects(self, move: MoveStatements) -> list[DbObject]:
        rule = move.rule
        s_new, s_old = TriggerRow(move.s, "NEW"), TriggerRow(move.s, "OLD")
        t_new, t_old = TriggerRow(move.t, "NEW"), TriggerRow(move.t, "OLD")
        pull = self._assign_all(s_new, rule.source_columns, move.shared_values_for(s_new))
        source_before = [
            "IF TG_OP = 'INSERT' THEN",
            *self._indent(self._if(sa.and_(move.source_empty(s_new), move.has_shared_values(s_new)), pull)),
            # The UPDATE trigger's WHEN: the row now matches another target row, its values unchanged.
            "ELSE",
            *self._indent(self._if(move.has_shared_values(s_new), pull)),
            "END IF;",
        ]
        # The other rows of the target follow only when the target's value changed: otherwise
        # they hold it already (the law), and looking them all up on every write is the cost.
        source_after = [f"{self.compile(move.push_to_target(s_new))};"]
        if rule.many:
            source_after += ["IF FOUND THEN", f"  {self.compile(move.push_to_siblings(s_new))};", "END IF;"]
        target_before = [
            "IF TG_OP = 'DELETE' THEN",
            *self._indent(self._guarded([f"{self.compile(move.clear_sources(t_old))};"])),
            "  RETURN OLD;",
            "END IF;",
            *self._if(move.target_empty(t_new), self._assign_all(t_new, rule.target_columns,
                                                                 move.source_values_for(t_new))),
        ]
        target_after = [
            "IF TG_OP = 'UPDATE' THEN",
            *self._indent(self._if(move.target_key_changed(t_new, t_old),
                                   [f"{self.compile(move.clear_sources(t_old))};"])),
            "END IF;",
            f"{self.compile(move.push_to_sources(t_new))};",
        ]
        source_keys = (*rule.source_columns, rule.source_key)
        target_keys = (*rule.target_columns, rule.target_key)
        return [
            # An insert that leaves the values out takes the target's (BEFORE); one that gives them
            # writes them on (AFTER): each trigger fires only for the inserts it has work for.
            *self._move_side(rule.source, source_before, source_after, source_keys,
                             before_insert=move.source_empty(s_new), after_insert=sa.not_(move.source_empty(s_new)),
                             before_update=sa.and_(sa.not_(move.source_changed(s_new, s_old)),
                                                   move.source_key_changed(s_new, s_old)),
                             after_update=sa.or_(move.source_changed(s_new, s_old),
                                                 move.source_key_changed(s_new, s_old))),
            *self._move_side(rule.target, target_before, target_after, target_keys,
                             before_insert=move.target_empty(t_new), after_insert=None,
                             before_update=sa.and_(sa.not_(move.target_changed(t_new, t_old)),
                                                   move.target_key_changed(t_new, t_old)),
                             after_update=sa.or_(move.target_changed(t_new, t_old),
                                                 move.target_key_changed(t_new, t_old)),
                             on_delete=True),
        ]

    def _move_side(self, table: str, before: list[str], after: list[str], columns, *, before_insert, after_insert,
                   before_update, after_update, on_delete: bool = False) -> list[DbObject]:
        """One table's function and triggers. The other side's triggers do nothing while this one
        writes it (the guard); each returns what its timing needs."""
        function = self.object_name(table, "move")
        body = [
            "IF coalesce(current_setting('crossfade.link', true), '') = 'on' THEN",
            "  IF TG_WHEN = 'AFTER' THEN RETURN NULL; ELSIF TG_OP = 'DELETE' THEN RETURN OLD; END IF;",
            "  RETURN NEW;",
            "END IF;",
            "IF TG_WHEN = 'BEFORE' THEN",
            *self._indent(before),
            "  RETURN NEW;",
            "END IF;",
            *self._guarded(after),
            "RETURN NULL;",
        ]
        create_function = self._function_sql(function, body)
        update_of = f"UPDATE OF {', '.join(self.quote(c) for c in columns)}"
        events = [("move_insert_before", "BEFORE INSERT", before_insert),
                  ("move_update_before", f"BEFORE {update_of}", before_update),
                  ("move_insert_after", "AFTER INSERT", after_insert),
                  ("move_update_after", f"AFTER {update_of}", after_update)]
        if on_delete:
            events.append(("move_delete_before", "BEFORE DELETE", None))
        objects = [DbObject("function", function, table, (create_function,))]
        for suffix, event, when in events:
            name = self.object_name(table, suffix)
            when_sql = f"\nWHEN ({self.compile(when)})" if when is not None else ""
            objects.append(self._trigger(name, table, f"{event} ON {self.qualified(table)}\nFOR EACH ROW{when_sql}\n"
                                         f"EXECUTE FUNCTION {self.qualified(function)}()"))
        return objects

    def _function_sql(self, function: str, body: list[str], pins: list[tuple[str, str]] = (),
                      variables: tuple[str, ...] = ()) -> str:
        declare = "DECLARE\n" + "".join(f"  {v};\n" for v in variables) if variables else ""
        code = declare + "BEGIN\n" + "\n".join(self._indent(body)) + "\nEND"
        tag = names.dollar_tag(code)  # a name or a literal in the body may hold $crossfade$
        settings = "".join(f"SET {name} TO '{value}'\n" for name, value in pins)
        return (f"CREATE OR REPLACE FUNCTION {self.qualified(function)}() RETURNS trigger\n"
                f"LANGUAGE plpgsql\n{settings}AS {tag}\n{code}\n{tag}")

    @staticmethod
    def _guarded(statements: list[str]) -> list[str]:
        """Statements that write the other table, with that table's triggers switched off: the
        setting is transaction-local, and a failed statement undoes it with everything else."""
        return ["PERFORM set_config('crossfade.link', 'on', true);", *statements,
                "PERFORM set_config('crossfade.link', '', true);"]

    def swap_stand_in_steps(self, intent: SwapStandIn, schema: Schema) -> list[Step]:
        # One transaction: no statement ever finds the name missing.
        sql = [f"DROP VIEW IF EXISTS {self.qualified(intent.name)}",
               f"{self.alter_table(intent.table)} RENAME TO {self.quote(intent.name)}"]
        return [Step(intent.describe(), sql, is_done=renamed(intent.table, intent.name, self.schema),
                     locks=_INSTANT.format("catalog only, no scan"))]

    # --- DDL ---------------------------------------------------------------------------------
    def set_nullable_steps(self, intent: SetNullable, schema: Schema) -> list[Step]:
        alter = f"{self.alter_table(intent.table)} ALTER COLUMN {self.quote(intent.column)}"
        is_nullable = column_nullable(intent.table, intent.column, self.schema)
        if intent.nullable:
            return [Step(intent.describe(), [f"{alter} DROP NOT NULL"], is_done=is_nullable,
                         locks=self.catalog_locks)]
        # Online NOT NULL: a NOT VALID check is instant, VALIDATE scans without blocking writes,
        # and SET NOT NULL then trusts the validated check instead of scanning under a lock.
        check = self.object_name(f"{intent.table}_{intent.column}", "nn")
        table = self.alter_table(intent.table)
        is_not_null = lambda conn: is_nullable(conn) is False
        has_check = _constraint_exists(self.schema, intent.table, check)
        return [
            Step(f"{intent.describe()}: add CHECK NOT VALID",
                 [(f"{table} ADD CONSTRAINT {self.quote(check)} "
                   f"CHECK ({self.quote(intent.column)} IS NOT NULL) NOT VALID")],
                 is_done=lambda conn: is_not_null(conn) or has_check(conn),
                 locks=_INSTANT.format("NOT VALID: no scan")),
            Step(f"{intent.describe()}: validate the check",
                 [f"{table} VALIDATE CONSTRAINT {self.quote(check)}"], is_done=is_not_null,
                 locks="no write lock (VALIDATE: SHARE UPDATE EXCLUSIVE while it scans; writes go on)"),
            Step(f"{intent.describe()}: SET NOT NULL", [f"{alter} SET NOT NULL"], is_done=is_not_null,
                 locks=_INSTANT.format("the validated check spares the scan")),
            Step(f"{intent.describe()}: drop the check",
                 [f"{table} DROP CONSTRAINT IF EXISTS {self.quote(check)}"],
                 is_done=lambda conn: not has_check(conn), locks=self.catalog_locks),
        ]

    # Online indexes: CONCURRENTLY, outside a transaction block. An interrupted build (killed,
    # cancelled, a duplicate found) leaves an INVALID index behind, which the first step drops
    # so that running the phase again builds it afresh.
    def create_index_steps(self, intent: CreateIndex) -> list[Step]:
        return [
            Step(f"{intent.describe()}: drop an INVALID index an interrupted build left (if any)",
                 [f"DROP INDEX CONCURRENTLY IF EXISTS {self.qualified(intent.name)}"],
                 is_done=_not_index(self.schema, intent.table, intent.name, valid=False), concurrent=True,
                 locks=_CONCURRENTLY),
            Step(intent.describe(), [self.create_index_sql(intent, "CONCURRENTLY")],
                 is_done=self.index_exists(intent.table, intent.name), concurrent=True, locks=_CONCURRENTLY),
        ]

    def drop_index_steps(self, intent: DropIndex) -> list[Step]:
        return [Step(intent.describe(), [f"DROP INDEX CONCURRENTLY IF EXISTS {self.qualified(intent.name)}"],
                     is_done=_not_index(self.schema, intent.table, intent.name, valid=None), concurrent=True,
                     locks=_CONCURRENTLY)]

    def add_unique_steps(self, intent: AddUnique) -> list[Step]:
        """The unique index builds CONCURRENTLY; attaching it as the constraint is then instant."""
        has_constraint = _constraint_exists(self.schema, intent.table, intent.name)
        build = self.create_index_steps(CreateIndex(intent.table, intent.name, intent.columns, unique=True))
        build[0].name = f"{intent.describe()}: drop an INVALID index an interrupted build left (if any)"
        build[1].name = f"{intent.describe()}: build the unique index"
        for step in build:
            probe = step.is_done
            step.is_done = lambda conn, probe=probe: has_constraint(conn) or probe(conn)
        sql = (f"{self.alter_table(intent.table)} ADD CONSTRAINT {self.quote(intent.name)} "
               f"UNIQUE USING INDEX {self.quote(intent.name)}")
        attach = Step(f"{intent.describe()}: attach the index as the constraint", [sql],
                      is_done=has_constraint, locks=_INSTANT.format("the index is already built"))
        return [*build, attach]

    def add_foreign_key_steps(self, intent: AddForeignKey) -> list[Step]:
        add = Step(f"{intent.describe()}: NOT VALID",
                   [f"{self.alter_table(intent.table)} ADD {self.constraint_sql(intent)} NOT VALID"],
                   is_done=_constraint_exists(self.schema, intent.table, intent.name),
                   locks=(f"SHARE ROW EXCLUSIVE on {intent.table} and {intent.ref_table} for an instant "
                          "(NOT VALID: no scan); each attempt waits at most lock_timeout"))
        validate = self._validate_step(intent, locks=(
            f"no write lock (VALIDATE: SHARE UPDATE EXCLUSIVE on {intent.table}, ROW SHARE on "
            f"{intent.ref_table} while it scans; writes go on)"))
        return [add, validate]

    def add_check_steps(self, intent: AddCheck) -> list[Step]:
        add = Step(f"{intent.describe()}: NOT VALID",
                   [f"{self.alter_table(intent.table)} ADD {self.constraint_sql(intent)} NOT VALID"],
                   is_done=_constraint_exists(self.schema, intent.table, intent.name), locks=_INSTANT.format("NOT VALID: no scan"))
        validate = self._validate_step(
            intent, locks="no write lock (VALIDATE: SHARE UPDATE EXCLUSIVE while it scans; writes go on)")
        return [add, validate]

    def _validate_step(self, intent: AddForeignKey | AddCheck, locks: str) -> Step:
        return Step(f"{intent.describe()}: VALIDATE",
                    [f"{self.alter_table(intent.table)} VALIDATE CONSTRAINT {self.quote(intent.name)}"],
                    is_done=_constraint_exists(self.schema, intent.table, intent.name, validated=True), locks=locks)

    def index_exists(self, table: str, name: str):
        return _index(self.schema, table, name, valid=True)

    # --- backfill ----------------------------------------------------------------------------
    def block_count(self, conn: sa.Connection, table: sa.Table) -> int | None:
        """Heap pages: the check walks them with TID Range Scans (PostgreSQL 14+), reading the
        heap in storage order as a full scan does, measured 1.3-1.7x a parallel count(*) against
        2.6-5x for primary-key ranges (benchmarks/contract_check.py)."""
        if conn.dialect.server_version_info < (14,):
            return None
        # The table by catalog lookup, not a quoted name cast to regclass: a bound name must not
        # carry the %% the preparer writes for the driver (a table named t%1).
        return int(conn.execute(sa.text(
            "SELECT pg_relation_size(c.oid) / current_setting('block_size')::bigint FROM pg_class c "
            f"JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = {_IN_SCHEMA} AND c.relname = :t"
        ), {"t": table.name, "schema": self.schema}).scalar())

    def block_range(self, table: sa.Table, first: int, end: int) -> sa.ColumnElement:
        ctid = sa.column("ctid", _selectable=table)  # quoted by the compiler, once
        return sa.and_(ctid >= sa.literal_column(f"'({int(first)},0)'::tid"),
                       ctid < sa.literal_column(f"'({int(end)},0)'::tid"))

    def backfill_batch_settings(self) -> tuple[str, ...]:
        # A batch's commit need not wait for its WAL to reach disk: the checkpoint commits in the
        # same transaction, so a batch lost in a crash is simply redone by the rerun, and any later
        # synchronous commit (the runner's own state records) flushes the earlier WAL with it.
        # Measured on 1,000,000 rows: 5-8% faster, and on a busy disk 6.5 s instead of 9.2 s with
        # the writer's worst stall 11-25 ms instead of 16-38 ms (6 interleaved runs each).
        # psycopg prepares a statement run five times, and PostgreSQL may then plan it once for
        # any key range: a plan guessing thousands of rows per batch scanned a whole 800,000-row
        # table for a batch of 10 (539 s instead of 13 s), and the batch sizer shrank the batches
        # to match. Each batch's range gets a plan of its own.
        # And the settings the sync functions pin, so the backfill's up(A) is what a trigger computes.
        # All in one statement: one round trip per batch, not three.
        local = (("synchronous_commit", "off"), ("plan_cache_mode", "force_custom_plan"), *PINNED_SETTINGS)
        return ("SELECT " + ", ".join(f"set_config('{name}', '{value}', true)" for name, value in local),)

    # --- locks -------------------------------------------------------------------------------
    @contextmanager
    def ddl_transaction(self, conn: sa.Connection, lock_timeout: float, rebuild: str | None = None,
                        concurrent: bool = False):
        if not concurrent:
            with super().ddl_transaction(conn, lock_timeout):
                yield
            return
        # CONCURRENTLY refuses a transaction block: autocommit, with a session lock_timeout that
        # is put back afterwards (the pooled connection returns with the waits it had).
        conn.rollback()
        conn.execution_options(isolation_level="AUTOCOMMIT")
        try:
            saved = conn.exec_driver_sql("SELECT current_setting('lock_timeout')").scalar()
            conn.exec_driver_sql(f"SET lock_timeout = '{max(1, int(lock_timeout * 1000))}ms'")
            try:
                yield
            finally:
                conn.execute(sa.text("SELECT set_config('lock_timeout', :saved, false)"), {"saved": saved})
        finally:
            conn.rollback()
            conn.execution_options(isolation_level=conn.default_isolation_level)

    def set_lock_timeout(self, conn: sa.Connection, seconds: float) -> None:
        # SET LOCAL: a failed attempt's rollback must not undo it (DESIGN section 6).
        conn.exec_driver_sql(f"SET LOCAL lock_timeout = '{max(1, int(seconds * 1000))}ms'")

    def is_lock_timeout(self, exc: sa.exc.DBAPIError) -> bool:
        return getattr(exc.orig, "sqlstate", None) == LOCK_NOT_AVAILABLE

    def is_deadlock(self, exc: sa.exc.DBAPIError) -> bool:
        return getattr(exc.orig, "sqlstate", None) == DEADLOCK_DETECTED

    # --- lock holders: named when a DDL step gives up ------------------------------------------
    def lock_holders(self, conn: sa.Connection, tables: list[str]) -> list[LockHolder]:
        """Every other session with a lock on the tables, granted or queued, oldest transaction
        first. Not pg_blocking_pids: by the time a step gives up its own request is withdrawn, so
        no backend of crossfade's waits to be asked about; and every lock on a table conflicts
        with the ACCESS EXCLUSIVE most DDL needs (the modes are shown for the other cases)."""
        conn.exec_driver_sql("SET LOCAL statement_timeout = '5s'")
        rows = conn.execute(sa.text(
            "SELECT a.pid, a.usename, a.application_name, a.state, "
            "extract(epoch FROM clock_timestamp() - a.xact_start) AS age, "
            "left(regexp_replace(a.query, E'\\\\s+', ' ', 'g'), 120) AS query, "  # E'': read alike in any session
            "string_agg(DISTINCT l.mode || CASE WHEN l.granted THEN '' ELSE ' (queued)' END, ', ') AS modes "
            "FROM pg_locks l JOIN pg_class c ON c.oid = l.relation JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'relation' AND l.database = (SELECT oid FROM pg_database "
            "WHERE datname = current_database()) AND c.relname = ANY(:tables) AND c.relkind IN ('r', 'p') "
            "AND CASE WHEN CAST(:schema AS text) IS NULL THEN pg_table_is_visible(c.oid) "
            "ELSE c.relnamespace = to_regnamespace(quote_ident(:schema))::oid END AND l.pid <> pg_backend_pid() "
            "GROUP BY a.pid, a.usename, a.application_name, a.state, a.xact_start, a.query "
            "ORDER BY a.xact_start NULLS LAST LIMIT 10"), {"tables": tables, "schema": self.schema})
        return [LockHolder(f"pid {pid}", f"user {user}" + (f", application {app!r}" if app else ""), state or "",
                           None if age is None else float(age), query or "", f"has {modes}")
                for pid, user, app, state, age, query, modes in rows]


def _set_all(conn: sa.Connection, settings, commit: bool) -> None:
    conn.execute(sa.select(*[sa.func.set_config(name, value, False) for name, value in settings]))
    if commit:
        conn.commit()  # a session setting made in a transaction is undone by its rollback


_COMPILERS: dict[type, type] = {}


def _escape_proof(base: type) -> type:
    """`base` rendering a string literal that holds a backslash as E'...': PostgreSQL reads
    '...' by the session's standard_conforming_strings (a function body by the *caller's*, when
    it first runs in a session), but E'...' the same way under any setting."""
    if base not in _COMPILERS:
        class EscapeProofCompiler(base):
            def render_literal_value(self, value, type_):
                rendered = super().render_literal_value(value, type_)
                if "\\" not in rendered:
                    return rendered
                if not rendered.startswith("'"):
                    raise sa.exc.CompileError(f"cannot render {rendered} so that every session reads it alike")
                return "E" + rendered.replace("\\", "\\\\")

        _COMPILERS[base] = EscapeProofCompiler
    return _COMPILERS[base]


def _constraint_exists(schema: str | None, table: str, name: str, validated: bool = False):
    def probe(conn: sa.Connection) -> bool:
        found = conn.execute(sa.text(
            "SELECT k.convalidated FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            f"WHERE n.nspname = {_IN_SCHEMA} AND c.relname = :t AND k.conname = :n"
        ), {"t": table, "n": name, "schema": schema}).first()
        return found is not None and (found[0] or not validated)
    return probe


def _index(schema: str | None, table: str, name: str, valid: bool | None):
    """A probe: `table` has an index `name` that is valid (True), INVALID (False), or either (None)."""
    def probe(conn: sa.Connection) -> bool:
        found = conn.execute(sa.text(
            "SELECT i.indisvalid FROM pg_index i JOIN pg_class x ON x.oid = i.indexrelid "
            "JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
            f"WHERE n.nspname = {_IN_SCHEMA} AND c.relname = :t AND x.relname = :n"
        ), {"t": table, "n": name, "schema": schema}).first()
        return found is not None and (valid is None or found[0] is valid)
    return probe


def _not_index(schema: str | None, table: str, name: str, valid: bool | None):
    probe = _index(schema, table, name, valid)
    return lambda conn: not probe(conn)


# What uses the table's `columns` (see crossfade/dependents.py): views and rules through pg_rewrite's
# dependencies; indexes and unique or check constraints that also cover other columns (DROP COLUMN
# drops them whole); foreign keys that reference the columns; other triggers that name a column in
# UPDATE OF or WHEN, or whose function's body mentions it as a word.
_DEPENDENTS = """
WITH tbl AS (
  SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE n.nspname = """ + _IN_SCHEMA + """ AND c.relname = :table
), dropped AS (
  SELECT a.attnum, a.attname FROM pg_attribute a, tbl WHERE a.attrelid = tbl.oid AND a.attname = ANY(:columns)
)
SELECT CASE WHEN r.rulename <> '_RETURN' THEN 'rule' WHEN v.relkind = 'm' THEN 'materialized view' ELSE 'view' END,
       CASE WHEN r.rulename = '_RETURN' THEN v.oid::regclass::text ELSE r.rulename || ' on ' || v.oid::regclass::text END,
       x.attname
FROM pg_depend d JOIN tbl ON d.refobjid = tbl.oid JOIN dropped x ON x.attnum = d.refobjsubid
JOIN pg_rewrite r ON d.classid = 'pg_rewrite'::regclass AND r.oid = d.objid
JOIN pg_class v ON v.oid = r.ev_class
WHERE d.refclassid = 'pg_class'::regclass
UNION
SELECT 'index', i.indexrelid::regclass::text, x.attname
FROM pg_depend d JOIN tbl ON d.refobjid = tbl.oid JOIN dropped x ON x.attnum = d.refobjsubid
JOIN pg_index i ON d.classid = 'pg_class'::regclass AND i.indexrelid = d.objid
WHERE d.refclassid = 'pg_class'::regclass
  AND (i.indexprs IS NOT NULL OR i.indpred IS NOT NULL
       OR EXISTS (SELECT 1 FROM unnest(i.indkey) k WHERE k NOT IN (SELECT attnum FROM dropped)))
UNION
SELECT CASE k.contype WHEN 'f' THEN 'foreign key' WHEN 'c' THEN 'check constraint' ELSE 'unique constraint' END,
       k.conname || ' on ' || k.conrelid::regclass::text, x.attname
FROM pg_constraint k JOIN tbl ON tbl.oid IN (k.conrelid, k.confrelid) JOIN dropped x ON TRUE
WHERE (k.contype = 'f' AND k.confrelid = tbl.oid AND x.attnum = ANY(k.confkey))
   OR (k.contype IN ('c', 'u', 'x') AND k.conrelid = tbl.oid AND x.attnum = ANY(k.conkey)
       AND EXISTS (SELECT 1 FROM unnest(k.conkey) c WHERE c NOT IN (SELECT attnum FROM dropped)))
UNION
SELECT 'trigger', t.tgname || ' on ' || t.tgrelid::regclass::text, x.attname
FROM pg_trigger t JOIN tbl ON t.tgrelid = tbl.oid JOIN dropped x ON TRUE
WHERE NOT t.tgisinternal AND t.tgname NOT LIKE :prefix
  AND (x.attnum = ANY(t.tgattr) OR EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_trigger'::regclass
       AND d.objid = t.oid AND d.refobjid = tbl.oid AND d.refobjsubid = x.attnum))
ORDER BY 1, 2, 3
"""
_TRIGGER_BODIES = """
SELECT t.tgname || ' on ' || t.tgrelid::regclass::text, p.prosrc
FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_proc p ON p.oid = t.tgfoid
WHERE n.nspname = """ + _IN_SCHEMA + """ AND c.relname = :table AND NOT t.tgisinternal AND t.tgname NOT LIKE :prefix
"""
