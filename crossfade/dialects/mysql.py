"""MySQL / MariaDB: BEFORE INSERT and BEFORE UPDATE triggers that `SET NEW.x`.

Never an UPDATE of the trigger's own table (error 1442). DDL is not transactional here, so
every step is checked before it runs and a rerun picks up where a crash left off.
"""

from __future__ import annotations

from contextlib import contextmanager

import sqlalchemy as sa
from sqlalchemy.dialects import mysql

from .. import names, sqltext
from ..ddl import AddCheck, AddForeignKey, AddUnique, CreateIndex, DropIndex, SetNullable, Step, SwapStandIn
from ..derived import DeriveRule, DeriveStatements
from ..errors import Dependent, LockHolder
from ..expressions import TriggerRow
from ..identification import column_marker
from ..names import PREFIX
from ..schema import Schema
from ..sync import LinkRule, MoveRule, MoveStatements, TableSync
from . import galera, mysql_derive, mysql_galera, mysql_grants
from .alter import COPY, INPLACE, INSTANT, Clause
from .base import DbObject, ProceduralTriggers, column_nullable, renamed, view_exists

LOCK_WAIT_TIMEOUT = 1205
LOCK_DEADLOCK = 1213
ALTER_NOT_SUPPORTED, ALTER_NOT_SUPPORTED_REASON = 1845, 1846  # the ALGORITHM (or LOCK) asked for

# The sql_mode crossfade creates triggers (and runs its checks and backfill) under. A trigger
# keeps the sql_mode it was created under and runs with it in every writer's session, so its body
# is rendered for this mode, whatever mode the session had (oslo.db sets one in a connect event,
# after SQLAlchemy detected the server's): backslashes escape, strings stay strings ('' is not
# NULL, || is OR, CHAR values are not padded), and strict, so a value that does not fit the
# column fails the writer's statement instead of being cut short in silence.
PINNED_SQL_MODE = "STRICT_TRANS_TABLES,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION"

_ONLINE = ", ALGORITHM=INPLACE, LOCK=NONE"
_COPY = ", ALGORITHM=COPY, LOCK=SHARED"
_INPLACE_LOCKS = ("no write lock (ALGORITHM=INPLACE, LOCK=NONE: {}); exclusive metadata lock for an instant "
                  "at start and end; each attempt waits at most lock_wait_timeout")
_COPY_LOCKS = ("blocks writes while the table is copied (ALGORITHM=COPY, LOCK=SHARED; reads go on): {} has no "
               "online form of this")


# The foreign keys on :table.:column and what they do on update and on delete.
_FOREIGN_KEY_RULES = (
    "SELECT r.CONSTRAINT_NAME, r.UPDATE_RULE, r.DELETE_RULE FROM information_schema.REFERENTIAL_CONSTRAINTS r "
    "JOIN information_schema.KEY_COLUMN_USAGE k ON k.CONSTRAINT_SCHEMA = r.CONSTRAINT_SCHEMA "
    "AND k.CONSTRAINT_NAME = r.CONSTRAINT_NAME AND k.TABLE_NAME = r.TABLE_NAME "
    "WHERE r.CONSTRAINT_SCHEMA = DATABASE() AND r.TABLE_NAME = :table AND k.COLUMN_NAME = :column")


class MySQLDialect(ProceduralTriggers):
    name = "mysql"
    identifiers = names.MYSQL
    transactional_ddl = False
    same_actions = (("RESTRICT", "NO ACTION"),)  # InnoDB checks both at once; the catalog shows neither
    elsif = "ELSEIF"
    index_locks = _INPLACE_LOCKS.format("the index builds while writes go on")
    trigger_locks = "exclusive metadata lock for an instant per CREATE/DROP TRIGGER"
    backfill_locks = "row locks on one batch's rows, one short transaction per batch"
    utc_now_sql = "SELECT UTC_TIMESTAMP(6)"

    @property
    def is_mariadb(self) -> bool:
        return bool(getattr(self.sa_dialect, "is_mariadb", False))

    def column_spec(self, column: sa.Column) -> str:
        # The server keeps BOOL as TINYINT(1) and reflects it so: saying that, a plan made from
        # metadata prints the statement a run on the live table sends (tests/test_cli.py).
        if type(column.type) is sa.Boolean:
            column = column._copy()
            column.type = mysql.TINYINT(1)
        return super().column_spec(column)

    def assign(self, target: str, value: str) -> str:
        return f"SET {target} = ({value});"

    def _fix_rendering(self, rendering: sa.Dialect) -> None:
        rendering._backslash_escapes = True  # PINNED_SQL_MODE has no NO_BACKSLASH_ESCAPES
        # Backticks quote in every mode, ANSI_QUOTES or not.
        rendering.identifier_preparer = rendering.preparer(rendering, server_ansiquotes=False)

    def pinned_sql_mode(self) -> str:
        # SQLAlchemy quotes with " where it found ANSI_QUOTES at the first connect: its own SQL
        # on this session (reflection, checks) must keep reading that way.
        ansi = getattr(self.engine_dialect, "_server_ansiquotes", False)
        return PINNED_SQL_MODE + (",ANSI_QUOTES" if ansi else "")

    def session_notes(self) -> list[str]:
        return [f"Literals are written for sql_mode '{self.pinned_sql_mode()}', which triggers keep:",
                f"run this after SET SESSION sql_mode = '{self.pinned_sql_mode()}', as crossfade does."]

    @contextmanager
    def pinned_session(self, conn: sa.Connection):
        outside = not conn.in_transaction()  # inside one (Alembic's), the caller ends it
        saved = conn.exec_driver_sql("SELECT @@SESSION.sql_mode").scalar()
        pinned = self.pinned_sql_mode()
        if saved != pinned:
            conn.execute(sa.text("SET SESSION sql_mode = :mode"), {"mode": pinned})
        if outside:
            conn.commit()  # ends the read's transaction (a SET SESSION is not transactional)
        try:
            yield conn
        finally:
            if saved != pinned:
                _restore_sql_mode(conn, saved)

    def raise_error(self, message: str) -> str:
        # SQLSTATE 45000: an unhandled user-defined exception; MESSAGE_TEXT holds 128 characters.
        return f"SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = {self.compile(sa.literal(message[:128]))};"

    # PyMySQL's executemany sends an UPDATE per row, a round trip each: a Python backfill writes
    # slices of rows in one statement (measured: benchmarks/python_backfill.py).
    rows_per_update = 500

    def crossfade_writing_sql(self) -> str:
        return "@crossfade_writer <=> 'crossfade'"

    def writing_guard(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        # A session variable outlives the transaction: the batch clears it in a finally.
        return ("SET @crossfade_writer = 'crossfade'",), ("SET @crossfade_writer = NULL",)

    def identified_sql(self) -> str:
        # Set by identify_new_release on release N+1's connections.
        return "@crossfade_release <=> 'new'"

    def named_sql(self, table: str, columns: tuple[str, ...]) -> str:
        # Release N+1's engine marks each UPDATE with the columns its SET names (identification.py).
        found = [f"LOCATE({self.compile(sa.literal(column_marker(table, c)))}, @crossfade_named) > 0"
                 for c in columns]
        return f"COALESCE({' OR '.join(found)}, FALSE)"

    def trigger_objects(self, ts: TableSync) -> list[DbObject]:
        # UPDATE first: each CREATE TRIGGER commits on its own, and a row the INSERT trigger
        # synced must never meet an UPDATE without its trigger (a row left unsynced by an
        # INSERT before its trigger exists keeps B NULL, which the backfill fills).
        inserts = self.insert_program(ts)
        programs = [("insert", "INSERT", inserts)] if inserts or not ts.blocks else []
        if self.has_update_work(ts):
            programs.insert(0, ("update", "UPDATE", self._skipped_while_deriving(ts, self.update_program(ts))))
        deletes = self.delete_program(ts)
        if deletes:
            programs.append(("delete", "DELETE", deletes))
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

    def derive_guard(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        # A session variable outlives the transaction: the backfill clears it in a finally.
        return ("SET @crossfade_deriving = 1",), ("SET @crossfade_deriving = NULL",)

    def _skipped_while_deriving(self, ts: TableSync, program: list[str]) -> list[str]:
        """MariaDB pays for every statement a trigger runs, per row: the backfill's B := up(A) needs
        nothing from the UPDATE trigger (down(up(A)) = A, the round-trip law crossfade checked), so
        one test of the backfill's mark skips the rest (measured on 200,000 rows: the backfill
        UPDATE 1.18x its time without a trigger, against 1.88x through the whole program). Not
        where a lossy group's trigger must correct A, nor with fills or blocks to apply."""
        if ts.fills or ts.blocks or any(g.lossy for g in ts.groups):
            return program
        return ["IF @crossfade_deriving IS NULL THEN", *self._indent(program), "END IF;"]

    def catalog_objects(self, conn: sa.Connection, tables: set[str]) -> dict[str, tuple[str, str, str]]:
        rows = conn.execute(sa.text(
            "SELECT TRIGGER_NAME, EVENT_OBJECT_TABLE, ACTION_TIMING, EVENT_MANIPULATION, SQL_MODE, "
            "ACTION_STATEMENT FROM information_schema.TRIGGERS "
            "WHERE TRIGGER_SCHEMA = DATABASE() AND TRIGGER_NAME LIKE :prefix"
        ), {"prefix": PREFIX.replace("_", "\\_") + "%"})
        # The sql_mode too: the same text created under another mode (one without backslash
        # escapes) reads otherwise, and is drift.
        return {name: ("trigger", table, f"{timing} {event} sql_mode={mode} {body}")
                for name, table, timing, event, mode, body in rows if table in tables}

    def foreign_triggers(self, conn: sa.Connection, table: str) -> list[str]:
        return list(conn.execute(sa.text(
            "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE() "
            "AND EVENT_OBJECT_TABLE = :table AND TRIGGER_NAME NOT LIKE :prefix ORDER BY 1"
        ), {"table": table, "prefix": PREFIX.replace("_", "\\_") + "%"}).scalars())

    def column_dependents(self, conn: sa.Connection, table: str, columns: list[str]) -> list[Dependent]:
        found = []
        params = {"table": table, "prefix": PREFIX.replace("_", "\\_") + "%"}
        texts = sa.text(_TEXT_DEPENDENTS).bindparams(sa.bindparam("columns", expanding=True))
        for kind, name, on, sql in conn.execute(texts, {**params, "columns": list(columns)}):
            sql = sql or ""  # a view the user may not see the definition of
            if on == table or sqltext.mentions(sql, table):
                found += [Dependent(kind, name, f"{table}.{c}") for c in columns if _uses(sql, c)]
        keys = sa.text(_KEY_DEPENDENTS).bindparams(sa.bindparam("columns", expanding=True))
        for kind, name, column in conn.execute(keys, {"table": table, "columns": list(columns)}):
            found.append(Dependent(kind, name, f"{table}.{column}"))
        return found

    def renamed_table_dependents(self, conn: sa.Connection, table: str, new: str) -> list[Dependent]:
        # RENAME TABLE leaves a view or another table's trigger naming the old name broken.
        texts = sa.text(_TEXT_DEPENDENTS).bindparams(sa.bindparam("columns", expanding=True))
        rows = conn.execute(texts, {"table": table, "prefix": PREFIX.replace("_", "\\_") + "%", "columns": [""]})
        return [Dependent(kind, name, table) for kind, name, on, sql in rows
                if kind != "check constraint" and on not in (table, new) and sqltext.mentions(sql or "", table)]

    def store_as(self, expr, type_: sa.types.TypeEngine):
        # MySQL cannot CAST to BOOLEAN (or most numeric types); the column would coerce anyway.
        if isinstance(type_, (sa.String, sa.DateTime, sa.Date)):
            return sa.cast(expr, type_)
        return sa.type_coerce(expr, type_)

    def privilege_problems(self, conn: sa.Connection, tables: list[str]) -> tuple[list[str], list[str]]:
        return mysql_grants.privilege_problems(conn, tables)

    def cluster_problems(self, conn: sa.Connection, tables: list[str]) -> list[str]:
        return mysql_galera.galera_problems(conn, tables)

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

    def move_problems(self, conn: sa.Connection, move: MoveRule) -> list[str]:
        if move.source_key == move.source_pk:
            return []  # the target holds the key: a cascade moves it along with the values it matches
        rules = conn.execute(sa.text(_FOREIGN_KEY_RULES), {"table": move.source, "column": move.source_key})
        return [f"foreign key {name} on {move.source}.{move.source_key} has ON UPDATE {on_update} / ON DELETE "
                f"{on_delete}: MySQL/MariaDB cascades skip triggers, so rows it re-points would keep the moved "
                f"values of their old {move.target} row (use RESTRICT, NO ACTION, CASCADE on delete or SET NULL on delete)"
                for name, on_update, on_delete in rules
                if on_update in ("CASCADE", "SET NULL", "SET DEFAULT") or on_delete == "SET DEFAULT"]

    def derive_problems(self, conn: sa.Connection, derive: DeriveRule) -> list[str]:
        problems = []
        for source in derive.sources:
            rules = conn.execute(sa.text(_FOREIGN_KEY_RULES), {"table": source.table, "column": source.via})
            problems += [f"foreign key {name} on {source.table}.{source.via} has ON UPDATE {on_update} / ON DELETE "
                         f"{on_delete}: MySQL/MariaDB cascades skip triggers, so {derive.target}.{derive.column} would "
                         f"keep the value of the rows it re-points (use RESTRICT or NO ACTION on update)"
                         for name, on_update, on_delete in rules
                         if on_update in ("CASCADE", "SET NULL", "SET DEFAULT") or on_delete == "SET DEFAULT"]
        return problems

    def link_warnings(self, link: LinkRule | MoveRule | DeriveRule) -> list[str]:
        if isinstance(link, DeriveRule):
            sources = ", ".join(link.source_tables())
            return [(f"derive_column {link.target}.{link.column}: a MySQL/MariaDB trigger cannot write a table its "
                    f"statement also reads (error 1442). Until contract, a statement that writes {sources} while "
                    f"reading {link.target} (INSERT ... SELECT ... FROM {link.target}, UPDATE ... JOIN, a subquery) "
                    "fails; run it as a read, then a write")]
        if isinstance(link, LinkRule) and link.mirror:
            return []  # rename_table: a view, no triggers
        source, target = link.source, link.target
        warnings = [(f"{source} <-> {target}: a MySQL/MariaDB trigger cannot write a table its statement also "
                    f"reads (error 1442). Until contract, a statement that writes one of them while reading the "
                    f"other (INSERT INTO {source} ... SELECT ... FROM {target}, INSERT INTO {target} ... SELECT "
                    f"... FROM {source}, UPDATE ... JOIN, a subquery) fails whenever its trigger has to write the "
                    "table it reads; run it as a read, then a write")]
        if isinstance(link, MoveRule) and link.many:
            columns = ", ".join(link.source_columns)
            warnings.append(
                f"move_column {source}.{columns} -> {target}: several {source} rows share one {target} row, and a "
                f"MySQL/MariaDB trigger cannot write the table its statement writes (error 1442): a release N "
                f"write to one {source} row reaches {target} but not the other rows of that {target} row. "
                f"Release N must update them together (UPDATE {source} SET ... WHERE {link.source_key} = ...)")
        return warnings

    # --- cross-table links -------------------------------------------------------------------
    create_table_locks = "a new table: a metadata lock on the referenced table for an instant"
    view_options = "ALGORITHM=MERGE "  # a view MariaDB can write through
    view_locks = "a shared metadata lock on the table for an instant (writes go on)"

    def link_objects(self, link: LinkRule) -> list[DbObject]:
        if link.mirror:
            raise NotImplementedError("MariaDB's rename_table stand-in is a view")
        objects = []
        # UPDATE first, as for the sync triggers: each CREATE TRIGGER commits on its own.
        for table, programs in ((link.source, self._source_programs(link)), (link.target, self._target_programs(link))):
            for suffix, event in (("link_update", "UPDATE"), ("link_insert", "INSERT"), ("link_delete", "DELETE")):
                when, program = programs[event]
                objects.append(self._guarded_trigger(table, suffix, f"AFTER {event}", program, when))
        return objects

    def _link_changed(self, link: LinkRule) -> str:
        # The key compares as the database compares keys; the values byte for byte.
        key = self.quote(link.key)
        return " OR ".join([f"NOT (OLD.{key} <=> NEW.{key})", *(
            f"NOT (BINARY OLD.{self.quote(c)} <=> BINARY NEW.{self.quote(c)})" for c in link.columns)])

    def _guarded_trigger(self, table: str, suffix: str, event: str, program: list[str], when: str = "",
                         when_first: bool = False) -> DbObject:
        """A cross-table trigger: while it writes the other table, that table's triggers do
        nothing (the guard), which also keeps them from writing back (error 1442 forbids it).
        `when`, a test of NEW / OLD alone, is made inside the guard's IF, not joined to it with
        AND: MariaDB evaluates a trigger's whole condition for every row (measured: a row the
        guard stops cost 15% more with the two joined). `when_first`: the guard inside `when`'s
        IF instead, for a trigger whose rows mostly fail `when` (an UPDATE of other columns)."""
        name = self.object_name(table, suffix)
        # The guard (set by _writing, around each write of the other table) holds the statement's
        # start time: NOW(6) is one value for a statement and every trigger it fires, another for
        # the session's next statement. So one that a deadlock leaves set (MariaDB rolls the
        # statement back without running the handler) names a statement that is over: ignored.
        guard = "@crossfade_backfill IS NULL AND (@crossfade_link IS NULL OR @crossfade_link <> NOW(6) + 0)"
        outer, inner = (when, guard) if when and when_first else (guard, when)
        if inner:
            program = [f"IF {inner} THEN", *self._indent(program), "END IF;"]
        body = [f"IF {outer} THEN", *self._indent(program), "END IF;"]
        create_verb = "CREATE OR REPLACE TRIGGER" if self.is_mariadb else "CREATE TRIGGER"
        create = (f"{create_verb} {self.quote(name)} {event} ON {self.quote(table)}\n"
                  "FOR EACH ROW\nBEGIN\n" + "\n".join(self._indent(body)) + "\nEND")
        statements = (create,) if self.is_mariadb else (self.drop_sql("trigger", name, table), create)
        return DbObject("trigger", name, table, statements)

    @staticmethod
    def _writing(*statements: str) -> list[str]:
        """Statements that write the other table, with its triggers off meanwhile (the guard),
        which a failed write clears. Set only around the writes: a row that writes nothing pays
        nothing for it, not even the handler."""
        return ["BEGIN",
                "  DECLARE EXIT HANDLER FOR SQLEXCEPTION BEGIN SET @crossfade_link = NULL; RESIGNAL; END;",
                "  SET @crossfade_link = NOW(6) + 0;",
                *[f"  {s}" if s.endswith(";") else f"  {s};" for s in statements],
                "  SET @crossfade_link = NULL;",
                "END;"]

    derive_locking_reads = True

    def derive_objects(self, derive: DeriveStatements) -> list[DbObject]:
        return mysql_derive.objects(self, derive)

    def placeholder_objects(self, link, schema) -> list[DbObject]:
        if isinstance(link, DeriveRule):
            return mysql_derive.placeholders(self, DeriveStatements(link, schema.table))
        return []

    # --- move_column: BEFORE triggers only, each setting NEW and writing the other table. A
    # trigger cannot write its own table (error 1442), so a write to one source row does not
    # reach the other rows of its target row here; release N updates those together.
    def move_objects(self, move: MoveStatements) -> list[DbObject]:
        rule = move.rule
        s_new, s_old = TriggerRow(move.s, "NEW"), TriggerRow(move.s, "OLD")
        t_new, t_old = TriggerRow(move.t, "NEW"), TriggerRow(move.t, "OLD")
        pull_source = self._assign_all(s_new, rule.source_columns, move.shared_values_for(s_new))
        pull_target = self._assign_all(t_new, rule.target_columns, move.source_values_for(t_new))
        source_changed = move.source_changed(s_new, s_old)
        source_key_changed = move.source_key_changed(s_new, s_old)
        target_changed = move.target_changed(t_new, t_old)
        target_key_changed = move.target_key_changed(t_new, t_old)
        # Each condition on NEW / OLD alone is tested before any that reads a table: MariaDB
        # evaluates a whole condition, subqueries and all, for every row.
        push_to_target = self._writing(self.compile(move.push_to_target(s_new)))
        push_to_sources = self._writing(self.compile(move.push_to_sources(t_new)))
        # A row that takes its values from the other table (pulls) writes nothing there: the
        # statement may read that table (INSERT ... SELECT FROM orgs), and a trigger writing it
        # would fail with error 1442 even when it changes no row.
        source_update = self._if(sa.not_(source_changed), self._if(
            move.has_shared_values(s_new), pull_source, otherwise=push_to_target), otherwise=push_to_target)
        source_insert = self._if(move.source_empty(s_new), self._if(move.has_shared_values(s_new), pull_source),
                                 otherwise=push_to_target)
        target_update = [
            *self._if(sa.and_(sa.not_(target_changed), move.target_empty(t_new)), pull_target),
            *self._if(target_key_changed, self._writing(self.compile(move.clear_sources(t_old)))),
            *push_to_sources]
        source_update_when = self.compile(sa.or_(source_changed, source_key_changed))
        target_update_when = self.compile(sa.or_(target_changed, target_key_changed))
        target_insert = self._if(move.target_empty(t_new), pull_target, otherwise=push_to_sources)
        target_delete = self._writing(self.compile(move.clear_sources(t_old)))
        # UPDATE triggers first: each CREATE TRIGGER commits on its own.
        return [self._guarded_trigger(rule.source, "move_update", "BEFORE UPDATE", source_update, source_update_when),
                self._guarded_trigger(rule.source, "move_insert", "BEFORE INSERT", source_insert),
                self._guarded_trigger(rule.target, "move_update", "BEFORE UPDATE", target_update, target_update_when),
                self._guarded_trigger(rule.target, "move_delete", "BEFORE DELETE", target_delete),
                self._guarded_trigger(rule.target, "move_insert", "BEFORE INSERT", target_insert)]

    def _refs(self, row_name: str, columns) -> str:
        return ", ".join(f"{row_name}.{self.quote(c)}" for c in columns)

    def _source_programs(self, link: LinkRule) -> dict[str, tuple[str, list[str]]]:
        """Per event: (when, program)."""
        target, key, cols = self.quote(link.target), self.quote(link.key), link.columns
        names = ", ".join(self.quote(c) for c in cols)
        has_value = " OR ".join(f"NEW.{self.quote(c)} IS NOT NULL" for c in cols)
        upsert = (f"INSERT INTO {target} ({key}, {names}) VALUES (NEW.{key}, {self._refs('NEW', cols)}) "
                  "ON DUPLICATE KEY UPDATE " + ", ".join(f"{self.quote(c)} = VALUES({self.quote(c)})" for c in cols) + ";")
        update = (f"UPDATE {target} SET " + ", ".join(f"{self.quote(c)} = NEW.{self.quote(c)}" for c in cols)
                  + f" WHERE {key} = NEW.{key};")
        # A new row can have no target row yet (the target's key references it): a plain INSERT.
        insert = f"INSERT INTO {target} ({key}, {names}) VALUES (NEW.{key}, {self._refs('NEW', cols)});"
        return {"INSERT": (has_value, self._writing(insert)),
                "UPDATE": (self._link_changed(link), [f"IF {has_value} THEN", *self._indent(self._writing(upsert)),
                                                      "ELSE", *self._indent(self._writing(update)), "END IF;"]),
                "DELETE": ("", self._writing(f"DELETE FROM {target} WHERE {key} = OLD.{key};"))}

    def _target_programs(self, link: LinkRule) -> dict[str, tuple[str, list[str]]]:
        source, key, cols = self.quote(link.source), self.quote(link.key), link.columns
        copy = (f"UPDATE {source} SET " + ", ".join(f"{self.quote(c)} = NEW.{self.quote(c)}" for c in cols)
                + f" WHERE {key} = NEW.{key};")
        clear = (f"UPDATE {source} SET " + ", ".join(f"{self.quote(c)} = NULL" for c in cols)
                 + f" WHERE {key} = OLD.{key};")
        return {"INSERT": ("", self._writing(copy)), "UPDATE": (self._link_changed(link), self._writing(copy)),
                "DELETE": ("", self._writing(clear))}

    def insert_missing(self, target: sa.Table, key: str, columns: list[str], select: sa.Select) -> sa.Insert:
        # Not INSERT IGNORE: it would also turn a bad value into a warning and a default.
        insert = mysql.insert(target).from_select(columns, select)
        return insert.on_duplicate_key_update({key: target.c[key]})

    def link_guard(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        # A session variable outlives the transaction: the backfill clears it in a finally.
        return ("SET @crossfade_backfill = 1",), ("SET @crossfade_backfill = NULL",)

    def swap_stand_in_steps(self, intent: SwapStandIn, schema: Schema) -> list[Step]:
        # One RENAME TABLE renames both at once: no statement finds the name missing.
        retired = self.object_name(intent.table, "retired_view")
        swap = (f"RENAME TABLE {self.quote(intent.name)} TO {self.quote(retired)}, "
                f"{self.quote(intent.table)} TO {self.quote(intent.name)}")
        return [Step(intent.describe(), [swap], is_done=renamed(intent.table, intent.name),
                     locks="exclusive metadata locks on both names for an instant; each attempt waits at most "
                           "lock_wait_timeout"),
                Step(f"drop the retired stand-in {retired}", [f"DROP VIEW IF EXISTS {self.quote(retired)}"],
                     is_done=lambda conn: not view_exists(retired)(conn), locks="catalog only")]

    # --- DDL ---------------------------------------------------------------------------------
    # ADD/DROP COLUMN, defaults, NULL-ability and indexes are clauses of one ALTER TABLE per table
    # (alter.py): on Galera each statement aborts writers on the other nodes (DESIGN 8).
    alter_clauses = True
    instant_locks = ("instant (ALGORITHM=INSTANT: catalog only, no row read or copied); exclusive metadata lock "
                     "for an instant; each attempt waits at most lock_wait_timeout")

    @property
    def idempotent_clauses(self) -> bool:
        return self.is_mariadb  # MySQL has no ADD COLUMN IF NOT EXISTS (nor DROP ... IF EXISTS)

    catalog_locks = "exclusive metadata lock for an instant; each attempt waits at most lock_wait_timeout"
    drop_column_locks = _INPLACE_LOCKS.format("the table is rebuilt while writes go on")

    def add_column_how(self, column: sa.Column) -> str:
        # At the end of the table (crossfade never says AFTER): MariaDB 10.3, MySQL 8.0.12 (unverified).
        return INSTANT if self._version_at_least((10, 3), (8, 0, 12)) else INPLACE

    def drop_column_how(self) -> str:
        return INSTANT if self._version_at_least((10, 4), (8, 0, 29)) else INPLACE

    def _version_at_least(self, mariadb: tuple[int, ...], mysql: tuple[int, ...]) -> bool:
        """The server is at least this version; a plan made without a server assumes a current one."""
        version = getattr(self.engine_dialect, "server_version_info", None)
        return version is None or tuple(version[:3]) >= (mariadb if self.is_mariadb else mysql)

    def alter_algorithm(self, how: str) -> str:
        # Named, so the server refuses rather than quietly copying the table under a lock.
        return {INSTANT: ", ALGORITHM=INSTANT", INPLACE: _ONLINE, COPY: _COPY}[how]

    def is_algorithm_refused(self, exc: sa.exc.DBAPIError) -> bool:
        args = getattr(exc.orig, "args", ())
        return bool(args) and args[0] in (ALTER_NOT_SUPPORTED, ALTER_NOT_SUPPORTED_REASON)

    def own_alter_clause(self, intent, schema: Schema) -> Clause | None:
        if isinstance(intent, SetNullable):
            return self._set_nullable_clause(intent, schema)
        if isinstance(intent, (CreateIndex, AddUnique, DropIndex)):
            return self._index_clause(intent)
        return None

    def _index_clause(self, intent: CreateIndex | AddUnique | DropIndex) -> Clause:
        if not isinstance(intent, DropIndex):
            unique = isinstance(intent, AddUnique) or intent.unique
            # A unique index is MariaDB's unique constraint; rows that collide while it builds fail the build.
            kind = "UNIQUE INDEX" if unique else "INDEX"
            return Clause(intent.table, f"ADD {kind} {self._if_exists('NOT ')}{self.quote(intent.name)} "
                          f"{self.column_list(intent.columns)}", intent.describe(), f"index {intent.name}", INPLACE,
                          self.index_exists(intent.table, intent.name), self.index_locks)
        exists = self.index_exists(intent.table, intent.name)
        return Clause(intent.table, f"DROP INDEX {self._if_exists()}{self.quote(intent.name)}", intent.describe(),
                      f"index {intent.name}", INPLACE, lambda conn: not exists(conn),
                      _INPLACE_LOCKS.format("metadata only"))

    def _if_exists(self, negation: str = "") -> str:
        return f"IF {negation}EXISTS " if self.idempotent_clauses else ""

    def _set_nullable_clause(self, intent: SetNullable, schema: Schema) -> Clause:
        current = schema.column(intent.table, intent.column)
        column = sa.Column(current.name, current.type, nullable=intent.nullable,
                           server_default=current.server_default)
        # INPLACE + LOCK=NONE: the table is rebuilt online; writers keep going. Not with a STORED
        # generated column on the table: MariaDB refuses INPLACE (error 1845) and only copies.
        stored = _has_stored_generated(schema.table(intent.table))
        probe = column_nullable(intent.table, intent.column)
        # NOT NULL -> NULL is instant only in ROW_FORMAT=REDUNDANT: MariaDB rebuilds the table online too.
        locks = (_COPY_LOCKS.format("a table with a STORED generated column") if stored
                 else _INPLACE_LOCKS.format("the table is rebuilt while writes go on"))
        return Clause(intent.table, f"MODIFY COLUMN {self.column_spec(column)}", intent.describe(),
                      f"column {intent.column}", COPY if stored else INPLACE,
                      lambda conn: probe(conn) is intent.nullable, locks)

    # Alembic's own index operations come here one by one (alembic/render.py).
    def create_index_steps(self, intent: CreateIndex) -> list[Step]:
        return self._alter_steps([self._index_clause(intent)])

    def drop_index_steps(self, intent: DropIndex) -> list[Step]:
        return self._alter_steps([self._index_clause(intent)])

    def add_unique_steps(self, intent: AddUnique) -> list[Step]:
        return self._alter_steps([self._index_clause(intent)])

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

    def is_deadlock(self, exc: sa.exc.DBAPIError) -> bool:
        args = getattr(exc.orig, "args", ())
        return bool(args) and args[0] == LOCK_DEADLOCK

    def first_batch_rows(self, conn: sa.Connection) -> int | None:
        return galera.FIRST_BATCH_ROWS if mysql_galera.is_galera(conn) else None

    def consistent_read_settings(self, conn: sa.Connection) -> tuple[str, ...]:
        return galera.CONSISTENT_READS if mysql_galera.is_galera(conn) else ()

    # --- lock holders and lost work: what an operator needs to know about a step's locks ------
    def lock_holders(self, conn: sa.Connection, tables: list[str]) -> list[LockHolder]:
        """The sessions with a metadata lock on the tables (or on the table of a trigger named
        there), from MariaDB's metadata_lock_info plugin. Without it the server cannot say which
        tables a transaction holds, so every transaction open in this database is a suspect."""
        if not tables:
            return []
        plugin = conn.execute(sa.text(
            "SELECT 1 FROM information_schema.PLUGINS WHERE PLUGIN_NAME = 'METADATA_LOCK_INFO' "
            "AND PLUGIN_STATUS = 'ACTIVE'")).first()
        if plugin:
            query = sa.text(_METADATA_LOCK_HOLDERS).bindparams(sa.bindparam("tables", expanding=True))
            rows = conn.execute(query, {"tables": tables})
        else:
            rows = conn.execute(sa.text(_OPEN_TRANSACTIONS))
        return [LockHolder(f"connection {session}", f"{user}@{host}", state or command,
                           None if age is None else float(age), query or "",
                           f"has {modes}" if modes else "", certain=bool(plugin))
                for session, user, host, command, state, age, query, modes in rows]

    def lost_work_risk(self, statements: list[str]) -> str:
        sql = "\n".join(statements)
        if _COPY in sql:
            return ("can lose its work: each attempt copies the table, then needs an exclusive metadata lock to put "
                    "the copy in place, and a transaction on the table at that moment (a reader too) throws the "
                    "copy away")
        if _ONLINE in sql and (" ADD INDEX " in sql or " ADD UNIQUE INDEX " in sql):
            return _LOST_BUILD.format("the online index build")
        if " MODIFY COLUMN " in sql:
            return _LOST_BUILD.format("the online table rebuild")
        if _ONLINE in sql and " FOREIGN KEY " in sql:
            return _LOST_BUILD.format("building an index for the key (where its columns have none)")
        return ""


def _restore_sql_mode(conn: sa.Connection, saved: str) -> None:
    try:
        outside = not conn.in_transaction()
        conn.execute(sa.text("SET SESSION sql_mode = :mode"), {"mode": saved})
        if outside:
            conn.commit()
    except sa.exc.DBAPIError:
        conn.invalidate()  # never back to the pool with crossfade's mode


def _uses(sql: str, column: str) -> bool:
    """`sql` names `column` other than as an alias (MariaDB stores a view as `select ... AS `column``)."""
    toks = sqltext.tokens(sql)
    return any(t.kind == "identifier" and t.value.casefold() == column.casefold()
               and not (i and toks[i - 1].kind == "identifier" and toks[i - 1].value.upper() == "AS")
               for i, t in enumerate(toks))


# Views, other triggers and check constraints whose text uses a column (MariaDB refuses to drop a
# column a check names, and leaves a view or trigger that names it broken).
_TEXT_DEPENDENTS = """
SELECT 'view', TABLE_NAME, TABLE_NAME, VIEW_DEFINITION FROM information_schema.VIEWS
WHERE TABLE_SCHEMA = DATABASE()
UNION ALL
SELECT 'trigger', CONCAT(TRIGGER_NAME, ' on ', EVENT_OBJECT_TABLE), EVENT_OBJECT_TABLE, ACTION_STATEMENT
FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE() AND TRIGGER_NAME NOT LIKE :prefix
UNION ALL
SELECT 'check constraint', CONCAT(CONSTRAINT_NAME, ' on ', TABLE_NAME), TABLE_NAME, CHECK_CLAUSE
FROM information_schema.CHECK_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = DATABASE() AND TABLE_NAME = :table
  AND NOT (LEVEL = 'Column' AND CONSTRAINT_NAME IN :columns)
ORDER BY 1, 2
"""
# Foreign keys that reference a column, or that a column belongs to (MariaDB refuses to drop it);
# indexes over a column and others (DROP COLUMN would quietly narrow them, a unique one too).
_KEY_DEPENDENTS = """
SELECT DISTINCT 'foreign key', CONCAT(CONSTRAINT_NAME, ' on ', TABLE_NAME),
       CASE WHEN REFERENCED_TABLE_NAME = :table AND REFERENCED_COLUMN_NAME IN :columns
            THEN REFERENCED_COLUMN_NAME ELSE COLUMN_NAME END
FROM information_schema.KEY_COLUMN_USAGE
WHERE TABLE_SCHEMA = DATABASE() AND REFERENCED_TABLE_NAME IS NOT NULL
  AND ((REFERENCED_TABLE_SCHEMA = DATABASE() AND REFERENCED_TABLE_NAME = :table AND REFERENCED_COLUMN_NAME IN :columns)
       OR (TABLE_NAME = :table AND COLUMN_NAME IN :columns))
UNION ALL
SELECT DISTINCT 'index', s.INDEX_NAME, s.COLUMN_NAME FROM information_schema.STATISTICS s
WHERE s.TABLE_SCHEMA = DATABASE() AND s.TABLE_NAME = :table AND s.COLUMN_NAME IN :columns
  AND EXISTS (SELECT 1 FROM information_schema.STATISTICS o WHERE o.TABLE_SCHEMA = s.TABLE_SCHEMA
              AND o.TABLE_NAME = s.TABLE_NAME AND o.INDEX_NAME = s.INDEX_NAME AND o.COLUMN_NAME NOT IN :columns)
ORDER BY 1, 2
"""


def _has_stored_generated(table: sa.Table) -> bool:
    return any(c.computed is not None and c.computed.persisted for c in table.columns)


_LOST_BUILD = ("can lose its work: {} needs an exclusive metadata lock at its very end, and one transaction on "
               "the table at that moment throws the whole build away (a build lost 3 times stops the phase with a "
               "LockTimeoutError)")
_HOLDER_COLUMNS = ("p.ID, p.USER, p.HOST, p.COMMAND, p.STATE, TIMESTAMPDIFF(SECOND, t.trx_started, NOW()), "
                   "LEFT(COALESCE(p.INFO, t.trx_query), 120)")
_METADATA_LOCK_HOLDERS = (
    f"SELECT {_HOLDER_COLUMNS}, GROUP_CONCAT(DISTINCT m.LOCK_MODE) "
    "FROM information_schema.METADATA_LOCK_INFO m JOIN information_schema.PROCESSLIST p ON p.ID = m.THREAD_ID "
    "LEFT JOIN information_schema.INNODB_TRX t ON t.trx_mysql_thread_id = p.ID "
    "WHERE m.TABLE_SCHEMA = DATABASE() AND p.ID <> CONNECTION_ID() AND (m.TABLE_NAME IN :tables OR m.TABLE_NAME IN "
    "(SELECT EVENT_OBJECT_TABLE FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE() "
    "AND TRIGGER_NAME IN :tables)) "
    "GROUP BY p.ID, p.USER, p.HOST, p.COMMAND, p.STATE, t.trx_started, p.INFO, t.trx_query "
    "ORDER BY t.trx_started IS NULL, t.trx_started LIMIT 10")
_OPEN_TRANSACTIONS = (
    f"SELECT {_HOLDER_COLUMNS}, NULL FROM information_schema.INNODB_TRX t "
    "JOIN information_schema.PROCESSLIST p ON p.ID = t.trx_mysql_thread_id "
    "WHERE p.ID <> CONNECTION_ID() AND p.DB = DATABASE() ORDER BY t.trx_started LIMIT 10")
