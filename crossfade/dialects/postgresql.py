"""PostgreSQL: one PL/pgSQL function per table, fired BEFORE INSERT and BEFORE UPDATE.

The UPDATE trigger fires only for UPDATEs that name a synced column (UPDATE OF), and its WHEN
clause skips the function call when no synced value changed. An UPDATE of unrelated columns
then pays only what PostgreSQL charges any BEFORE UPDATE row trigger: it locks the row first.
"""

from __future__ import annotations

from contextlib import contextmanager

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from ..ddl import AddCheck, AddForeignKey, AddUnique, CreateIndex, DropIndex, SetNullable, Step, SwapStandIn
from ..errors import LockHolder
from ..expressions import TriggerRow
from ..schema import Schema
from ..sync import LinkRule, MoveStatements, TableSync, changed, conflict, row
from .base import PREFIX, DbObject, ProceduralTriggers, column_nullable, renamed

LOCK_NOT_AVAILABLE = "55P03"
DEADLOCK_DETECTED = "40P01"

_INSTANT = "ACCESS EXCLUSIVE for an instant ({}); each attempt waits at most lock_timeout"
_CONCURRENTLY = ("no write lock (CONCURRENTLY: SHARE UPDATE EXCLUSIVE; writes go on); outside a transaction; "
                 "may wait up to max_lock_wait for older transactions, stalling no writer")


class PostgresDialect(ProceduralTriggers):
    name = "postgresql"
    max_identifier_length = 63
    catalog_locks = _INSTANT.format("catalog only, no scan")
    trigger_locks = ("CREATE TRIGGER: SHARE ROW EXCLUSIVE, DROP TRIGGER: ACCESS EXCLUSIVE, each for an instant; "
                     "each attempt waits at most lock_timeout")
    backfill_locks = "row locks on one batch's rows, one short transaction per batch"

    def assign(self, target: str, value: str) -> str:
        return f"{target} := {value};"

    def raise_error(self, message: str) -> str:
        # USING MESSAGE: the text is an expression, so a % in it is not a format placeholder.
        return f"RAISE EXCEPTION USING MESSAGE = {self.compile(sa.literal(message))}, ERRCODE = 'P0001';"

    def trigger_objects(self, ts: TableSync) -> list[DbObject]:
        function = self.object_name(ts.name, "sync")
        table = self.quote(ts.name)
        named = self.named_program(ts)
        body = [
            *(["IF TG_NARGS > 0 THEN", *self._indent(named), "  RETURN NEW;", "END IF;"] if named else []),
            "IF TG_OP = 'INSERT' THEN",
            *self._indent(self.insert_program(ts)),
            "ELSE",
            *self._indent(self.update_program(ts) or ["NULL;"]),
            "END IF;",
            "RETURN NEW;",
        ]
        create_function = self._function_sql(function, body)
        objects = [DbObject("function", function, ts.name, (create_function,))]
        events = [("insert", "INSERT", None)]
        condition = self.update_condition(ts)
        if condition is not None:
            # Only a SET of a synced column can change one (fills included: a column becomes NULL
            # only when an UPDATE names it), so other UPDATEs skip even the WHEN evaluation.
            columns = ", ".join(self.quote(c) for c in sorted(ts.synced_columns()))
            events.append(("update", f"UPDATE OF {columns}", condition))
        events += self._named_events(ts)
        for suffix, event, when, *args in events:
            name = self.object_name(ts.name, suffix)
            when_sql = f"\nWHEN ({self._when_sql(when)})" if when is not None else ""
            create = (f"CREATE TRIGGER {self.quote(name)} BEFORE {event} ON {table}\nFOR EACH ROW{when_sql}\n"
                      f"EXECUTE FUNCTION {self.quote(function)}({', '.join(args)})")
            # Drop and create in one transaction: CREATE OR REPLACE TRIGGER needs PostgreSQL 14.
            drop = self.drop_sql("trigger", name, ts.name)
            objects.append(DbObject("trigger", name, ts.name, (drop, create)))
        return objects

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
        wanted = {self.object_name(t, kind): t for t in tables for kind in ("sync", "link", "move")}
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
                create = (f"CREATE TRIGGER {self.quote(name)} AFTER {event} ON {self.quote(table)}\n"
                          f"FOR EACH ROW{when}\nEXECUTE FUNCTION {self.quote(function)}()")
                objects.append(DbObject("trigger", name, table, (self.drop_sql("trigger", name, table), create)))
        return objects

    def _refs(self, row_name: str, columns) -> str:
        return ", ".join(f"{row_name}.{self.quote(c)}" for c in columns)

    def _source_programs(self, link: LinkRule) -> tuple[list[str], list[str], list[str]]:
        """Release N's table: its values reach the new table's row, made when one has a value."""
        if link.mirror:
            raise NotImplementedError("PostgreSQL's rename_table stand-in is a view")
        target, key, cols = self.quote(link.target), self.quote(link.key), link.columns
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
        source, key, cols = self.quote(link.source), self.quote(link.key), link.columns
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
            create = (f"CREATE TRIGGER {self.quote(name)} {event} ON {self.quote(table)}\nFOR EACH ROW{when_sql}\n"
                      f"EXECUTE FUNCTION {self.quote(function)}()")
            objects.append(DbObject("trigger", name, table, (self.drop_sql("trigger", name, table), create)))
        return objects

    def _function_sql(self, function: str, body: list[str]) -> str:
        return (f"CREATE OR REPLACE FUNCTION {self.quote(function)}() RETURNS trigger\n"
                f"LANGUAGE plpgsql AS $crossfade$\nBEGIN\n" + "\n".join(self._indent(body)) + "\nEND\n$crossfade$")

    @staticmethod
    def _guarded(statements: list[str]) -> list[str]:
        """Statements that write the other table, with that table's triggers switched off: the
        setting is transaction-local, and a failed statement undoes it with everything else."""
        return ["PERFORM set_config('crossfade.link', 'on', true);", *statements,
                "PERFORM set_config('crossfade.link', '', true);"]

    def swap_stand_in_steps(self, intent: SwapStandIn, schema: Schema) -> list[Step]:
        # One transaction: no statement ever finds the name missing.
        sql = [f"DROP VIEW IF EXISTS {self.quote(intent.name)}",
               f"{self.alter_table(intent.table)} RENAME TO {self.quote(intent.name)}"]
        return [Step(intent.describe(), sql, is_done=renamed(intent.table, intent.name),
                     locks=_INSTANT.format("catalog only, no scan"))]

    # --- DDL ---------------------------------------------------------------------------------
    def set_nullable_steps(self, intent: SetNullable, schema: Schema) -> list[Step]:
        alter = f"{self.alter_table(intent.table)} ALTER COLUMN {self.quote(intent.column)}"
        is_nullable = column_nullable(intent.table, intent.column)
        if intent.nullable:
            return [Step(intent.describe(), [f"{alter} DROP NOT NULL"], is_done=is_nullable,
                         locks=self.catalog_locks)]
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
                 [f"DROP INDEX CONCURRENTLY IF EXISTS {self.quote(intent.name)}"],
                 is_done=_not_index(intent.table, intent.name, valid=False), concurrent=True,
                 locks=_CONCURRENTLY),
            Step(intent.describe(), [self.create_index_sql(intent, "CONCURRENTLY")],
                 is_done=self.index_exists(intent.table, intent.name), concurrent=True, locks=_CONCURRENTLY),
        ]

    def drop_index_steps(self, intent: DropIndex) -> list[Step]:
        return [Step(intent.describe(), [f"DROP INDEX CONCURRENTLY IF EXISTS {self.quote(intent.name)}"],
                     is_done=_not_index(intent.table, intent.name, valid=None), concurrent=True,
                     locks=_CONCURRENTLY)]

    def add_unique_steps(self, intent: AddUnique) -> list[Step]:
        """The unique index builds CONCURRENTLY; attaching it as the constraint is then instant."""
        has_constraint = _constraint_exists(intent.table, intent.name)
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
                   is_done=_constraint_exists(intent.table, intent.name),
                   locks=(f"SHARE ROW EXCLUSIVE on {intent.table} and {intent.ref_table} for an instant "
                          "(NOT VALID: no scan); each attempt waits at most lock_timeout"))
        validate = self._validate_step(intent, locks=(
            f"no write lock (VALIDATE: SHARE UPDATE EXCLUSIVE on {intent.table}, ROW SHARE on "
            f"{intent.ref_table} while it scans; writes go on)"))
        return [add, validate]

    def add_check_steps(self, intent: AddCheck) -> list[Step]:
        add = Step(f"{intent.describe()}: NOT VALID",
                   [f"{self.alter_table(intent.table)} ADD {self.constraint_sql(intent)} NOT VALID"],
                   is_done=_constraint_exists(intent.table, intent.name), locks=_INSTANT.format("NOT VALID: no scan"))
        validate = self._validate_step(
            intent, locks="no write lock (VALIDATE: SHARE UPDATE EXCLUSIVE while it scans; writes go on)")
        return [add, validate]

    def _validate_step(self, intent: AddForeignKey | AddCheck, locks: str) -> Step:
        return Step(f"{intent.describe()}: VALIDATE",
                    [f"{self.alter_table(intent.table)} VALIDATE CONSTRAINT {self.quote(intent.name)}"],
                    is_done=_constraint_exists(intent.table, intent.name, validated=True), locks=locks)

    def index_exists(self, table: str, name: str):
        return _index(table, name, valid=True)

    # --- backfill ----------------------------------------------------------------------------
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
        return ("SET LOCAL synchronous_commit = off", "SET LOCAL plan_cache_mode = force_custom_plan")

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
            "left(regexp_replace(a.query, '\\s+', ' ', 'g'), 120) AS query, "
            "string_agg(DISTINCT l.mode || CASE WHEN l.granted THEN '' ELSE ' (queued)' END, ', ') AS modes "
            "FROM pg_locks l JOIN pg_class c ON c.oid = l.relation JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'relation' AND l.database = (SELECT oid FROM pg_database "
            "WHERE datname = current_database()) AND c.relname = ANY(:tables) AND c.relkind IN ('r', 'p') "
            "AND pg_table_is_visible(c.oid) AND l.pid <> pg_backend_pid() "
            "GROUP BY a.pid, a.usename, a.application_name, a.state, a.xact_start, a.query "
            "ORDER BY a.xact_start NULLS LAST LIMIT 10"), {"tables": tables})
        return [LockHolder(f"pid {pid}", f"user {user}" + (f", application {app!r}" if app else ""), state or "",
                           None if age is None else float(age), query or "", f"has {modes}")
                for pid, user, app, state, age, query, modes in rows]


def _constraint_exists(table: str, name: str, validated: bool = False):
    def probe(conn: sa.Connection) -> bool:
        found = conn.execute(sa.text(
            "SELECT k.convalidated FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = current_schema() AND c.relname = :t AND k.conname = :n"
        ), {"t": table, "n": name}).first()
        return found is not None and (found[0] or not validated)
    return probe


def _index(table: str, name: str, valid: bool | None):
    """A probe: `table` has an index `name` that is valid (True), INVALID (False), or either (None)."""
    def probe(conn: sa.Connection) -> bool:
        found = conn.execute(sa.text(
            "SELECT i.indisvalid FROM pg_index i JOIN pg_class x ON x.oid = i.indexrelid "
            "JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = current_schema() AND c.relname = :t AND x.relname = :n"
        ), {"t": table, "n": name}).first()
        return found is not None and (valid is None or found[0] is valid)
    return probe


def _not_index(table: str, name: str, valid: bool | None):
    probe = _index(table, name, valid)
    return lambda conn: not probe(conn)
