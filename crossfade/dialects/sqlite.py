"""SQLite: AFTER INSERT / AFTER UPDATE triggers that UPDATE the row by key, guarded by WHEN.

SQLite cannot assign NEW, so each rule of the sync law is one guarded UPDATE. The guards make
every nested firing a no-op, so the triggers are correct with `recursive_triggers` on or off.
SQLite checks NOT NULL before AFTER triggers run, hence `relaxes_old_not_null`; and changing a
column's NULL-ability or default means rebuilding the table, in one transaction that re-creates
the table's triggers (DROP TABLE drops them).
"""

from __future__ import annotations

from contextlib import contextmanager

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite
from sqlalchemy.sql.elements import ColumnElement

from .. import names, sqltext
from ..ddl import (
    AddCheck,
    AddForeignKey,
    AddStandIn,
    DropColumn,
    DropStandIn,
    Intent,
    SetDefault,
    SetNullable,
    Step,
    SwapStandIn,
    apply_to_schema,
)
from ..derived import DeriveStatements
from ..errors import Dependent, SchemaError
from ..expressions import TriggerRow
from ..names import PREFIX
from ..schema import Schema, constraint_columns, generation, plain_default
from ..sync import LinkRule, MoveStatements, TableSync, all_null, changed, conflict, row
from . import sqlite_derive
from .base import DbObject, TriggerDialect, renamed, table_exists, update_condition

REBUILD_PREFIX = "_crossfade_new_"
_SQLITE_BUSY_DELAYS = (0.001, 0.002, 0.005, 0.010, 0.015, 0.020, 0.025, 0.025, 0.025, 0.050, 0.050, 0.100)
_WAKE_UP = 0.002


class SQLiteDialect(TriggerDialect):
    name = "sqlite"
    identifiers = names.SQLITE
    relaxes_old_not_null = True
    catalog_locks = "blocks writers for an instant (catalog only; SQLite has a single writer)"
    drop_column_locks = "blocks writers while the table is rewritten (SQLite has a single writer)"
    index_locks = "blocks writers while the index builds (SQLite has a single writer; readers go on)"
    rebuild_locks = "blocks writers while the table is copied (a table rebuild; SQLite has a single writer)"
    trigger_locks = "blocks writers for an instant (SQLite has a single writer)"
    backfill_locks = "blocks writers for one batch at a time (SQLite has a single writer)"
    utc_now_sql = "SELECT strftime('%Y-%m-%d %H:%M:%f', 'now')"

    # --- triggers ------------------------------------------------------------------------
    def trigger_objects(self, ts: TableSync) -> list[DbObject]:
        new, old, now = row(ts.table, "NEW"), row(ts.table, "OLD"), _current_row(ts.table)
        events = [("insert", "INSERT", self._insert_rules(ts, new, now))]
        events.append(("update", "UPDATE", self._update_rules(ts, new, old, now)))
        events.append(("delete", "DELETE", []))
        objects = []
        for suffix, event, rules in events:
            blocks = self._block_rules(ts, event, new, old)
            if not rules and not blocks:
                continue
            name = self.object_name(ts.name, suffix)
            required = ts.required if event != "DELETE" else []
            when = sa.or_(*[guard for guard, _ in rules], *[new.c[c].is_(None) for c in required],
                          *[violation for violation, _ in blocks])
            statements = [self._refuse(violation, message) for violation, message in blocks]
            statements += [self._update(ts, new, guard, sets) for guard, sets in rules]
            statements += [self._refuse_null(ts, new, column) for column in required]
            body = "\n".join(f"  {statement};" for statement in statements)
            # A DELETE's block refuses before the row goes (nothing to undo).
            timing = "BEFORE" if event == "DELETE" else "AFTER"
            create = (f"CREATE TRIGGER {self.quote(name)} {timing} {event} ON {self.quote(ts.name)}\n"
                      f"FOR EACH ROW WHEN {self.compile(when)}\nBEGIN\n{body}\nEND")
            drop = self.drop_sql("trigger", name, ts.name)
            objects.append(DbObject("trigger", name, ts.name, (drop, create)))
        return objects

    # Guards read NEW and OLD: what the statement wrote. Values read `now`, the row as earlier
    # rules (and the triggers their UPDATEs fired) left it, since SQLite's NEW never changes.
    # Fills come first: a group may derive its new columns from a filled column.
    def _insert_rules(self, ts: TableSync, new, now) -> list[tuple[ColumnElement, dict]]:
        rules = self._fill_rules(ts, new, now)
        for group in ts.ordered_groups():
            b_is_null = all_null([new.c[n] for n in group.new])
            rules.append((b_is_null, dict(zip(group.new, group.up_exprs(now)))))
            if group.down is not None:
                rules.append((sa.and_(sa.not_(b_is_null), conflict(group, new)),
                              dict(zip(group.old, group.down_exprs(now)))))
        return rules

    def _update_rules(self, ts: TableSync, new, old, now) -> list[tuple[ColumnElement, dict]]:
        rules = self._fill_rules(ts, new, now)
        for group in ts.ordered_groups():
            if not group.old:
                continue
            b_changed = changed(group.new, new, old)
            # NEW does not show what earlier rules wrote (a fill, another group's down), and with
            # recursive_triggers off their UPDATEs do not fire this trigger again: count them here.
            a_changed = sa.or_(changed(group.old, new, old), *_written_by(rules, group.old))
            if group.down is None:
                rules.append((sa.and_(a_changed, sa.not_(b_changed)), dict(zip(group.new, group.up_exprs(now)))))
                continue
            rules.append((sa.and_(b_changed, conflict(group, new)), dict(zip(group.old, group.down_exprs(now)))))
            rules.append((sa.and_(sa.not_(b_changed), a_changed, conflict(group, new)),
                          dict(zip(group.new, group.up_exprs(now)))))
        return rules

    def _fill_rules(self, ts: TableSync, new, now) -> list[tuple[ColumnElement, dict]]:
        return [(new.c[f.column].is_(None), {f.column: f.fill_expr(now)}) for f in ts.fills]

    @staticmethod
    def _block_rules(ts: TableSync, event: str, new, old) -> list[tuple[ColumnElement, str]]:
        """SQLite cannot tell who writes: a block of release N's writes refuses release N+1's
        too, and crossfade's own writes pass a table's block by dropping its triggers for the
        batch's transaction (compute.py), which no other writer can see."""
        if event == "INSERT":
            found = [(b.insert_violation(new), b.message) for b in ts.blocks]
        elif event == "UPDATE":
            found = [(b.update_violation(new, old), b.message) for b in ts.blocks]
        else:
            found = [(b.delete_violation(old), b.message) for b in ts.blocks]
        return [(violation, message) for violation, message in found if violation is not None]

    def _refuse(self, violation: ColumnElement, message: str) -> str:
        """block_writes: RAISE(ABORT) undoes the writer's whole statement."""
        return f"SELECT RAISE(ABORT, {self.compile(sa.literal(message))}) WHERE {self.compile(violation)}"

    def _update(self, ts: TableSync, new, guard: ColumnElement, sets: dict) -> str:
        assignments = ", ".join(f"{self.quote(c)} = ({self.compile(v)})" for c, v in sets.items())
        return (f"UPDATE {self.quote(ts.name)} SET {assignments} "
                f"WHERE {self._same_row(ts, new)} AND ({self.compile(guard)})")

    def _refuse_null(self, ts: TableSync, new, column: str) -> str:
        """Expand relaxed this NOT NULL column (SQLite checks it before AFTER triggers run); the
        trigger re-imposes it once the sync rules have filled what they could."""
        message = self.compile(sa.literal(f"NOT NULL constraint failed: {ts.name}.{column}"))
        # NEW.column IS NULL first: a constant for the statement, so SQLite skips the row lookup
        # for every row that did not leave the column NULL (nearly all of them).
        return (f"SELECT RAISE(ABORT, {message}) FROM {self.quote(ts.name)} "
                f"WHERE {self.compile(new.c[column].is_(None))} AND {self._same_row(ts, new)} "
                f"AND {self.quote(column)} IS NULL")

    def _same_row(self, ts: TableSync, new) -> str:
        key = self._key_columns(ts.table)
        return self.compile(sa.and_(*[sa.column(k) == (new.c[k] if k in new.c else sa.literal_column(f"NEW.{k}"))
                                      for k in key]))

    @staticmethod
    def _key_columns(table: sa.Table) -> list[str]:
        # The primary key (works for WITHOUT ROWID tables too); rowid when there is none.
        return [c.name for c in table.primary_key.columns] or ["rowid"]

    def update_condition(self, ts: TableSync):
        return update_condition(ts, row(ts.table, "NEW"), row(ts.table, "OLD"))

    def catalog_objects(self, conn: sa.Connection, tables: set[str]) -> dict[str, tuple[str, str, str]]:
        rows = conn.execute(sa.text(
            "SELECT name, tbl_name, sql FROM sqlite_master WHERE type = 'trigger' "
            "AND name LIKE :prefix ESCAPE '\\'"
        ), {"prefix": PREFIX.replace("_", "\\_") + "%"})
        return {name: ("trigger", table, sql) for name, table, sql in rows if table in tables}

    def foreign_triggers(self, conn: sa.Connection, table: str) -> list[str]:
        return list(conn.execute(sa.text(
            "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = :table "
            "AND name NOT LIKE :prefix ESCAPE '\\' ORDER BY 1"
        ), {"table": table, "prefix": PREFIX.replace("_", "\\_") + "%"}).scalars())

    def column_dependents(self, conn: sa.Connection, table: str, columns: list[str]) -> list[Dependent]:
        found = [Dependent(kind, name, f"{table}.{column}")
                 for kind, name, on, sql in conn.exec_driver_sql(
                     "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE type IN ('view', 'trigger') "
                     "AND sql IS NOT NULL ORDER BY type DESC, name")
                 if not (kind == "trigger" and name.startswith(PREFIX))
                 and (on == table or sqltext.mentions(sql, table))
                 for column in columns if sqltext.mentions(sql, column)]
        found += self._index_dependents(conn, table, columns)
        found += self._check_dependents(conn, table, columns)
        return found + self._key_dependents(conn, table, columns)

    def _check_dependents(self, conn: sa.Connection, table: str, columns: list[str]) -> list[Dependent]:
        """CHECK constraints over a column and others: the rebuild that drops the column drops them whole."""
        others = {c["name"] for c in sa.inspect(conn).get_columns(table)} - set(columns)
        found = []
        for check in sa.inspect(conn).get_check_constraints(table):
            text = check["sqltext"]
            if any(sqltext.mentions(text, other) for other in others):
                found += [Dependent("check constraint", f"{check['name'] or 'unnamed'} on {table}", f"{table}.{c}")
                          for c in columns if sqltext.mentions(text, c)]
        return found

    def _index_dependents(self, conn: sa.Connection, table: str, columns: list[str]) -> list[Dependent]:
        """Indexes (unique constraints included) over a column and anything else: an expression,
        a WHERE, or another column. The rebuild that drops the column would drop them whole."""
        found = []
        for _seq, name, _unique, _origin, partial in conn.exec_driver_sql(f"PRAGMA index_list({self.quote(table)})"):
            keys = [(cid, column) for _n, cid, column, _d, _c, key in
                    conn.exec_driver_sql(f"PRAGMA index_xinfo({self.quote(name)})") if key]
            sql = conn.exec_driver_sql("SELECT sql FROM sqlite_master WHERE name = ?", (name,)).scalar() or ""
            named = {column for _cid, column in keys if column}
            for column in columns:
                uses = column in named or sqltext.mentions(sql, column)
                more = partial or any(cid == -2 for cid, _ in keys) or bool(named - set(columns))
                if uses and more:
                    found.append(Dependent("index", name, f"{table}.{column}"))
        return found

    def _key_dependents(self, conn: sa.Connection, table: str, columns: list[str]) -> list[Dependent]:
        """Foreign keys of other tables that reference the columns."""
        found = []
        for (other,) in conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"):
            for fk_id, _seq, parent, column, ref_column, *_ in conn.exec_driver_sql(
                    f"PRAGMA foreign_key_list({self.quote(other)})"):
                if parent == table and ref_column in columns:
                    found.append(Dependent("foreign key", f"#{fk_id} of {other} ({column})", f"{table}.{ref_column}"))
        return found

    # --- cross-table links ---------------------------------------------------------------
    # A view cannot report the rowid an insert through it made (its INSTEAD OF trigger's
    # insert is forgotten when the trigger ends), so rename_table's stand-in is a mirror table.
    # Both tables hand out max(rowid) + 1 and SQLite runs one writer at a time, so a row
    # inserted on either side takes the same key on the other.
    mirrors_with_tables = True
    create_table_locks = "blocks writers for an instant (catalog only; SQLite has a single writer)"

    def link_objects(self, link: LinkRule) -> list[DbObject]:
        objects = []
        for side in ("source", "target"):
            table = getattr(link, side)
            other = link.target if side == "source" else link.source
            for suffix, event, statements in self._link_statements(link, side, table, other):
                name = self.object_name(table, suffix)
                when = ""
                if event == "INSERT" and side == "source" and not link.mirror:
                    when = " WHEN " + " OR ".join(f"NEW.{self.quote(c)} IS NOT NULL" for c in link.columns)
                if event.startswith("UPDATE"):
                    synced = (link.key, *link.columns)
                    when = " WHEN " + " OR ".join(f"OLD.{self.quote(c)} IS NOT NEW.{self.quote(c)}" for c in synced)
                body = "\n".join(f"  {statement};" for statement in statements)
                create = (f"CREATE TRIGGER {self.quote(name)} AFTER {event} ON {self.quote(table)}\n"
                          f"FOR EACH ROW{when}\nBEGIN\n{body}\nEND")
                sql = (self.drop_sql("trigger", name, table), create)
                if link.mirror and side == "source" and suffix == "link_insert":
                    sql += (self._count_keys_taken_meanwhile(link),)
                objects.append(DbObject("trigger", name, table, sql))
        return objects

    def _count_keys_taken_meanwhile(self, link: LinkRule) -> str:
        """Rows release N inserted after expand made the mirror but before this trigger existed
        took keys the mirror's AUTOINCREMENT has not seen; release N+1 would be handed one of them.
        Counted in the same transaction that installs the trigger, which copies every later one
        (an explicit key raises the counter by itself)."""
        key = self.quote(link.key)
        return (f"UPDATE sqlite_sequence SET seq = max(seq, (SELECT coalesce(max({key}), 0) FROM "
                f"{self.quote(link.source)})) WHERE name = {self.compile(sa.literal(link.target))}")

    def _link_statements(self, link: LinkRule, side: str, table: str, other: str):
        """Each statement writes only where the other side differs, so the trigger it fires in
        turn finds nothing to do: that ends the recursion, with recursive_triggers on or off."""
        key, cols = link.key, link.columns
        synced = (key, *cols)
        owns_rows = link.mirror or side == "source"
        update_of = "UPDATE OF " + ", ".join(self.quote(c) for c in synced)
        copy = self._copy_values(other, key, cols, "NEW")
        insert = self._insert_missing(other, synced, only_with_values=() if link.mirror else cols)
        if owns_rows:
            # On insert, the values straight from NEW (the trigger's WHEN tested a split's value);
            # the other side may hold the key already where its own trigger got there first.
            fresh = (f"INSERT INTO {self.quote(other)} ({', '.join(self.quote(c) for c in synced)}) "
                     f"VALUES ({', '.join('NEW.' + self.quote(c) for c in synced)}) ON CONFLICT ({self.quote(key)}) DO NOTHING")
            delete = f"DELETE FROM {self.quote(other)} WHERE {self.quote(key)} = OLD.{self.quote(key)}"
            rekey = (f"UPDATE {self.quote(other)} SET {self.quote(key)} = NEW.{self.quote(key)} "
                     f"WHERE {self.quote(key)} = OLD.{self.quote(key)} AND OLD.{self.quote(key)} IS NOT NEW.{self.quote(key)}")
            return [("link_insert", "INSERT", [fresh]), ("link_update", update_of, [rekey, copy, insert]),
                    ("link_delete", "DELETE", [delete])]
        clear = (f"UPDATE {self.quote(other)} SET " + ", ".join(f"{self.quote(c)} = NULL" for c in cols)
                 + f" WHERE {self.quote(key)} = OLD.{self.quote(key)} AND NOT ("
                 + " AND ".join(f"{self.quote(c)} IS NULL" for c in cols) + ")")
        return [("link_insert", "INSERT", [copy]), ("link_update", update_of, [copy]),
                ("link_delete", "DELETE", [clear])]

    def _copy_values(self, other: str, key: str, cols, row_name: str) -> str:
        differs = " OR ".join(f"{self.quote(c)} IS NOT {row_name}.{self.quote(c)}" for c in cols)
        return (f"UPDATE {self.quote(other)} SET " + ", ".join(f"{self.quote(c)} = {row_name}.{self.quote(c)}" for c in cols)
                + f" WHERE {self.quote(key)} = {row_name}.{self.quote(key)} AND ({differs})")

    def _insert_missing(self, other: str, synced, only_with_values) -> str:
        key = self.quote(synced[0])
        conditions = [f"NOT EXISTS (SELECT 1 FROM {self.quote(other)} WHERE {key} = NEW.{key})"]
        if only_with_values:
            conditions.append("(" + " OR ".join(f"NEW.{self.quote(c)} IS NOT NULL" for c in only_with_values) + ")")
        return (f"INSERT INTO {self.quote(other)} ({', '.join(self.quote(c) for c in synced)}) "
                f"SELECT {', '.join('NEW.' + self.quote(c) for c in synced)} WHERE {' AND '.join(conditions)}")

    def derive_objects(self, derive: DeriveStatements) -> list[DbObject]:
        return sqlite_derive.objects(self, derive)

    # --- move_column: AFTER triggers, each statement limited to rows that differ. A row's own
    # values are set by an UPDATE of that row (the trigger's NEW is not assignable here), and the
    # writes to the other table fire its triggers, which find nothing left to do.
    def move_objects(self, move: MoveStatements) -> list[DbObject]:
        rule = move.rule
        s, t = move.s, move.t
        s_new, s_old = TriggerRow(s, "NEW"), TriggerRow(s, "OLD")
        t_new, t_old = TriggerRow(t, "NEW"), TriggerRow(t, "OLD")
        this_source = s.c[rule.source_pk] == s_new.c[rule.source_pk]
        this_target = t.c[rule.target_pk] == t_new.c[rule.target_pk]
        source_changed = move.source_changed(s_new, s_old)
        source_key_changed = move.source_key_changed(s_new, s_old)
        target_changed = move.target_changed(t_new, t_old)
        target_key_changed = move.target_key_changed(t_new, t_old)

        def pull_into_source(*conditions):
            values = dict(zip(rule.source_columns, move.shared_values_for(s_new)))
            return sa.update(s).where(this_source, *conditions).values(values)

        def pull_into_target(*conditions):
            values = dict(zip(rule.target_columns, move.source_values_for(t_new)))
            return sa.update(t).where(this_target, *conditions).values(values)

        source_insert = [
            pull_into_source(move.source_empty(s_new), move.has_shared_values(s_new)),
            move.push_to_target(s_new).where(sa.not_(move.source_empty(s_new))),
        ]
        source_update = [
            pull_into_source(sa.not_(source_changed), source_key_changed, move.has_shared_values(s_new)),
            move.push_to_target(s_new).where(sa.or_(source_changed, sa.not_(move.has_shared_values(s_new)))),
            # A foreign key's ON DELETE SET NULL took the row from a target row that is gone.
            sa.update(s).where(this_source, s_new.c[rule.source_key].is_(None), s_old.c[rule.source_key].is_not(None),
                               sa.not_(source_changed), sa.not_(move.source_empty(s_new)),
                               sa.not_(_target_row_exists(move, s_old)))
            .values({c: None for c in rule.source_columns}),
        ]
        target_insert = [
            pull_into_target(move.target_empty(t_new), move.sources_hold_values(t_new)),
            move.push_to_sources(t_new).where(sa.not_(move.target_empty(t_new))),
        ]
        target_update = [
            pull_into_target(sa.not_(target_changed), target_key_changed, move.target_empty(t_new),
                             move.sources_hold_values(t_new)),
            move.clear_sources(t_old).where(target_key_changed),
            move.push_to_sources(t_new).where(sa.or_(target_changed, sa.not_(move.target_empty(t_new)))),
        ]
        target_delete = [move.clear_sources(t_old)]
        source_columns = (*rule.source_columns, rule.source_key)
        target_columns = (*rule.target_columns, rule.target_key)
        return [
            self._trigger(rule.source, "move_insert", "AFTER INSERT", source_insert),
            self._trigger(rule.source, "move_update", self._update_of(source_columns), source_update,
                          sa.or_(source_changed, source_key_changed)),
            self._trigger(rule.target, "move_insert", "AFTER INSERT", target_insert),
            self._trigger(rule.target, "move_update", self._update_of(target_columns), target_update,
                          sa.or_(target_changed, target_key_changed)),
            self._trigger(rule.target, "move_delete", "AFTER DELETE", target_delete),
        ]

    def _update_of(self, columns) -> str:
        return "AFTER UPDATE OF " + ", ".join(self.quote(c) for c in columns)

    def _trigger(self, table: str, suffix: str, event: str, statements, when=None) -> DbObject:
        name = self.object_name(table, suffix)
        when_sql = f" WHEN {self.compile(when)}" if when is not None else ""
        body = "\n".join(f"  {self.compile(statement)};" for statement in statements)
        create = (f"CREATE TRIGGER {self.quote(name)} {event} ON {self.quote(table)}\n"
                  f"FOR EACH ROW{when_sql}\nBEGIN\n{body}\nEND")
        return DbObject("trigger", name, table, (self.drop_sql("trigger", name, table), create))

    def insert_missing(self, target: sa.Table, key: str, columns: list[str], select: sa.Select) -> sa.Insert:
        # The SELECT always has a WHERE, which SQLite needs to parse ON CONFLICT after it.
        return sqlite.insert(target).from_select(columns, select).on_conflict_do_nothing(index_elements=[key])

    def add_stand_in_steps(self, intent: AddStandIn, schema: Schema) -> list[Step]:
        # Columns, types, NOT NULL, defaults and the key; the table's other constraints need no
        # copy: every write reaches the table itself in the same statement, which enforces them.
        source = schema.table(intent.table)
        [key] = source.primary_key.columns
        counts = isinstance(key.type, sa.Integer)
        mirror = sa.Table(intent.name, sa.MetaData(), *[
            sa.Column(c.name, c.type, *generation(c), nullable=c.nullable, primary_key=c.primary_key,
                      autoincrement=c.autoincrement, server_default=plain_default(c))
            for c in source.columns], sqlite_autoincrement=counts)
        sql = [str(sa.schema.CreateTable(mirror).compile(dialect=self.sa_dialect)).strip()]
        if counts:
            # Until the backfill is done the mirror holds fewer rows, so max(rowid) + 1 would hand
            # out keys the table already has. AUTOINCREMENT counts on from the largest key either
            # side ever had: seeded here, raised by every row the table's trigger copies over.
            sql.append(f"INSERT INTO sqlite_sequence (name, seq) SELECT {self.compile(sa.literal(intent.name))}, "
                       f"max(coalesce((SELECT max({self.quote(key.name)}) FROM {self.quote(intent.table)}), 0), "
                       f"coalesce((SELECT seq FROM sqlite_sequence WHERE name = {self.compile(sa.literal(intent.table))}), 0))")
        return [Step(intent.describe(), sql, is_done=table_exists(intent.name), locks=self.create_table_locks)]

    def swap_stand_in_steps(self, intent: SwapStandIn, schema: Schema) -> list[Step]:
        # One transaction: the table's link triggers and the mirror go, and the table takes the
        # mirror's name; writers wait on the lock and never find the name missing or unsynced.
        drops = [self.drop_sql("trigger", self.object_name(intent.table, suffix), intent.table)
                 for suffix in ("link_insert", "link_update", "link_delete")]
        sql = [*drops, f"DROP TABLE IF EXISTS {self.quote(intent.name)}",
               f"ALTER TABLE {self.quote(intent.table)} RENAME TO {self.quote(intent.name)}"]
        return [Step(intent.describe(), sql, is_done=renamed(intent.table, intent.name), locks=self.catalog_locks)]

    def drop_stand_in_steps(self, intent: DropStandIn) -> list[Step]:
        return [Step(intent.describe(), [f"DROP TABLE IF EXISTS {self.quote(intent.name)}"],
                     is_done=lambda conn: not table_exists(intent.name)(conn), locks=self.catalog_locks)]

    # --- DDL: what SQLite cannot ALTER, it rebuilds -------------------------------------
    def steps(self, intents: list[Intent], schema: Schema) -> list[Step]:
        """Plain ALTERs first, then one rebuild per table for everything ALTER cannot do."""
        plain: list[Step] = []
        rebuild: dict[str, list[Intent]] = {}
        for intent in intents:
            if self._needs_rebuild(intent, schema):
                rebuild.setdefault(intent.table, []).append(intent)
            else:
                plain.extend(self.intent_steps(intent, schema))
            apply_to_schema(schema, intent)
        return plain + [self._rebuild_step(table, group, schema) for table, group in rebuild.items()]

    def _needs_rebuild(self, intent: Intent, schema: Schema) -> bool:
        # ALTER TABLE cannot change a column's NULL-ability or default, nor add a constraint.
        if isinstance(intent, (SetNullable, SetDefault, AddCheck, AddForeignKey)):
            return True
        if isinstance(intent, DropColumn) and schema.has_column(intent.table, intent.column):
            # DROP COLUMN refuses a column an index or a constraint (unique, foreign key, check) names.
            table = schema.table(intent.table)
            names = {c.name for c in table.columns}
            indexed = any(intent.column in {c.name for c in i.columns} for i in table.indexes)
            constrained = any(intent.column in constraint_columns(k, names)
                              for k in table.constraints if not isinstance(k, sa.PrimaryKeyConstraint))
            return indexed or constrained
        return False

    def _rebuild_step(self, table_name: str, intents: list[Intent], schema: Schema) -> Step:
        target = schema.table(table_name)
        temp = REBUILD_PREFIX + table_name
        # The copy lives next to every table of the snapshot: its foreign keys render their
        # REFERENCES from the tables they point to.
        scratch = sa.MetaData()
        for table in schema.metadata.sorted_tables:
            table.to_metadata(scratch)
        copy = target.to_metadata(scratch, name=temp)
        for index in list(copy.indexes):
            copy.indexes.discard(index)
        # Generated columns compute themselves in the copy (SQLite refuses a value for them).
        column_list = ", ".join(self.quote(c.name) for c in target.columns if c.computed is None)
        sql = [
            f"DROP TABLE IF EXISTS {self.quote(temp)}",
            str(sa.schema.CreateTable(copy).compile(dialect=self.sa_dialect)).strip(),
            f"INSERT INTO {self.quote(temp)} ({column_list}) SELECT {column_list} FROM {self.quote(table_name)}",
            f"DROP TABLE {self.quote(table_name)}",
            f"ALTER TABLE {self.quote(temp)} RENAME TO {self.quote(table_name)}",
            *[str(sa.schema.CreateIndex(i).compile(dialect=self.sa_dialect)).strip() for i in target.indexes],
        ]
        name = f"rebuild table {table_name} ({'; '.join(i.describe() for i in intents)})"
        return Step(name, sql, is_done=_table_matches(target), rebuild=table_name, locks=self.rebuild_locks)

    # --- locks -----------------------------------------------------------------------------
    def hold_write_lock(self, conn: sa.Connection) -> None:
        # pysqlite begins at the first DML: a DROP TRIGGER before it would commit on its own,
        # and the batch's read would not share the write's transaction.
        if not conn.connection.dbapi_connection.in_transaction:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    def ddl_connection(self, conn: sa.Connection) -> sa.Connection:
        # pysqlite would otherwise run each DDL statement in its own implicit transaction;
        # in AUTOCOMMIT mode crossfade issues BEGIN IMMEDIATE / COMMIT itself.
        return conn.execution_options(isolation_level="AUTOCOMMIT")

    def session_lock_timeout(self, conn: sa.Connection) -> float:
        return conn.exec_driver_sql("PRAGMA busy_timeout").scalar() / 1000

    @contextmanager
    def ddl_transaction(self, conn: sa.Connection, lock_timeout: float, rebuild: str | None = None,
                        concurrent: bool = False):
        # Only the attempt waits briefly: the catalog reads between steps keep the session's
        # busy timeout, or concurrent writers would make them fail with "database is locked".
        session_timeout = self.session_lock_timeout(conn)
        self.set_lock_timeout(conn, lock_timeout)
        foreign_keys = conn.exec_driver_sql("PRAGMA foreign_keys").scalar()
        if rebuild and foreign_keys:
            # DROP TABLE would cascade into child tables; the pragma only changes outside a transaction.
            conn.exec_driver_sql("PRAGMA foreign_keys = OFF")
        legacy_alter = conn.exec_driver_sql("PRAGMA legacy_alter_table").scalar()
        if rebuild:
            # Renaming the copy into place re-checks every view and trigger naming the table, which
            # the DROP TABLE just before made unresolvable ("error in view v: no such table"). The
            # legacy rename checks nothing: the views name the table, and it is back under that name.
            conn.exec_driver_sql("PRAGMA legacy_alter_table = ON")
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
            try:
                triggers = self._triggers_on(conn, rebuild) if rebuild else []
                keys_before = self._foreign_keys(conn, rebuild) if rebuild else {}
                indexes, columns = (self._indexes_on(conn, rebuild), self._columns_of(conn, rebuild)) if rebuild else ({}, set())
                yield
                for sql in triggers:  # DROP TABLE dropped them; writers must never miss one
                    conn.exec_driver_sql(sql)
                if rebuild:
                    self._restore_indexes(conn, rebuild, indexes, columns - self._columns_of(conn, rebuild))
                    self._check_views(conn, rebuild)
                    self._check_foreign_keys(conn, rebuild, keys_before, everywhere=bool(foreign_keys))
                conn.exec_driver_sql("COMMIT")
            except BaseException:
                conn.exec_driver_sql("ROLLBACK")
                raise
        finally:
            if rebuild and foreign_keys:
                conn.exec_driver_sql("PRAGMA foreign_keys = ON")
            if rebuild:
                conn.exec_driver_sql(f"PRAGMA legacy_alter_table = {'ON' if legacy_alter else 'OFF'}")
            self.set_lock_timeout(conn, session_timeout)

    def _check_foreign_keys(self, conn: sa.Connection, table: str, before: dict[int, tuple],
                            everywhere: bool) -> None:
        """A rebuild copies the rows with foreign keys off (DROP TABLE would cascade), so nothing
        checked them. Where the connection enforces foreign keys, every key must hold after it;
        and a key the rebuild adds must hold in any case (a row written since contract's check).
        A failure here is still inside the rebuild's transaction: the table stays as it was."""
        after = self._foreign_keys(conn, table)
        added = {fk_id for fk_id, key in after.items() if key not in before.values()}
        if not everywhere and not added:
            return
        pragma = "PRAGMA foreign_key_check" + ("" if everywhere else f"({self.quote(table)})")
        for child, rowid, parent, fk_id in conn.exec_driver_sql(pragma):
            if everywhere or fk_id in added:
                raise sa.exc.IntegrityError(pragma, {}, Exception(
                    f"after rebuilding {table}: row {rowid} of {child} references no row of {parent}"))

    def _foreign_keys(self, conn: sa.Connection, table: str) -> dict[int, tuple]:
        """The table's foreign keys by SQLite's id: (referenced table, columns, referenced columns)."""
        keys: dict[int, tuple[str, list, list]] = {}
        for fk_id, _seq, parent, column, ref_column, *_ in conn.exec_driver_sql(
                f"PRAGMA foreign_key_list({self.quote(table)})"):
            entry = keys.setdefault(fk_id, (parent, [], []))
            entry[1].append(column)
            entry[2].append(ref_column)
        return {fk_id: (parent, tuple(cols), tuple(refs)) for fk_id, (parent, cols, refs) in keys.items()}

    @staticmethod
    def _indexes_on(conn: sa.Connection, table: str) -> dict[str, str]:
        return dict(conn.execute(sa.text(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = :t AND sql IS NOT NULL"
        ), {"t": table}).all())

    def _columns_of(self, conn: sa.Connection, table: str) -> set[str]:
        return {row[1] for row in conn.exec_driver_sql(f"PRAGMA table_xinfo({self.quote(table)})")}

    def _restore_indexes(self, conn: sa.Connection, table: str, before: dict[str, str], dropped: set[str]) -> None:
        """The indexes SQLAlchemy cannot reflect (over expressions), which the rebuild's DROP TABLE
        took: re-created from their own CREATE INDEX, unless they name a column the rebuild dropped
        (contract refuses those beforehand: crossfade/dependents.py)."""
        now = self._indexes_on(conn, table)
        for name, sql in sorted(before.items()):
            if name not in now and not any(sqltext.mentions(sql, column) for column in dropped):
                conn.exec_driver_sql(sql)

    def _check_views(self, conn: sa.Connection, table: str) -> None:
        """The legacy rename checks no view; one that uses a column the rebuild dropped (made after
        contract's check for dependent objects) fails here, and the rebuild is undone."""
        for name, sql in conn.exec_driver_sql("SELECT name, sql FROM sqlite_master WHERE type = 'view'").all():
            if sqltext.mentions(sql, table):
                conn.exec_driver_sql(f"SELECT * FROM {self.quote(name)} LIMIT 0").all()

    @staticmethod
    def _triggers_on(conn: sa.Connection, table: str) -> list[str]:
        return list(conn.execute(sa.text(
            "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = :t ORDER BY name"
        ), {"t": table}).scalars())

    def set_lock_timeout(self, conn: sa.Connection, seconds: float) -> None:
        # round(): a saved busy_timeout read back in seconds must be restored to the same ms.
        conn.exec_driver_sql(f"PRAGMA busy_timeout = {round(seconds * 1000)}")

    def is_lock_timeout(self, exc: sa.exc.DBAPIError) -> bool:
        return "database is locked" in str(exc.orig) or "database table is locked" in str(exc.orig)

    # A reader holds the database's SHARED lock for its transaction, and a writer cannot commit
    # meanwhile: the check's batches are sized as the backfill's, with the same rests.
    check_batch_seconds = 0.04

    def batch_key(self, table: sa.Table) -> list[ColumnElement]:
        return list(table.primary_key.columns) or [sa.literal_column("rowid")]

    max_backfill_jobs = 1  # one writer at a time: more workers would only queue for the lock

    def backfill_rest(self, took: float) -> float:
        """SQLite has one writer at a time, and a writer that finds the database locked sleeps
        between tries on a growing schedule (sqlite3_busy_timeout, which Python's `timeout` sets:
        these delays, then 100 ms for ever), so back-to-back batches never leave it a moment to
        get in. Rest as long as the delay a writer that began waiting during the batch is sleeping,
        plus 2 ms for it to wake: its next try falls in the rest. After a 40 ms batch that is
        22 ms, and a writer waits at most ~55 ms (~80 ms if the batch overshoots to 78 ms)."""
        waited = 0.0
        for delay in _SQLITE_BUSY_DELAYS:
            waited += delay
            if waited >= took:
                return delay + _WAKE_UP
        return _SQLITE_BUSY_DELAYS[-1] + _WAKE_UP

    def store_as(self, expr, type_: sa.types.TypeEngine):
        # A column keeps text as text, but CAST(x AS DATETIME) takes NUMERIC affinity in SQLite
        # and turns '1970-01-01 ...' into 1970: only strings are cast.
        if isinstance(type_, sa.String):
            return sa.cast(expr, type_)
        return sa.type_coerce(expr, type_)

    def resolve_schema(self, conn: sa.Connection, tables: set[str], declared: str | None) -> str | None:
        """SQLite finds an unqualified name in attached databases too; crossfade works on main
        only, so a table only an attached database has is refused by name before any DDL."""
        super().resolve_schema(conn, tables, declared)
        main = set(sa.inspect(conn).get_table_names())
        for _, attached, _ in conn.exec_driver_sql("PRAGMA database_list").all():
            if attached in ("main", "temp"):
                continue
            for table in sorted(tables - main):
                if table in sa.inspect(conn).get_table_names(schema=attached):
                    raise SchemaError(attached, f"table {table!r} is in the attached database {attached!r}: "
                                                "crossfade on sqlite works on the main database's tables only")
        return None


def _written_by(rules: list[tuple[ColumnElement, dict]], columns: tuple[str, ...]) -> list[ColumnElement]:
    """The guards of the rules that set any of `columns`."""
    return [guard for guard, sets in rules if set(sets) & set(columns)]


def _current_row(table: sa.Table) -> sa.TableClause:
    """The table's own columns (`images.is_public`), read by a trigger's UPDATE of the row."""
    return sa.table(table.name, *[sa.column(c.name, c.type) for c in table.columns])


def _table_matches(target: sa.Table):
    """The rebuild already happened: columns, NULL-ability, defaults and the named check and
    foreign key constraints are as targeted."""
    def probe(conn: sa.Connection) -> bool:
        inspector = sa.inspect(conn)
        live = {c["name"]: c for c in inspector.get_columns(target.name)}
        if set(live) != {c.name for c in target.columns}:
            return False
        columns_match = all(bool(live[c.name]["nullable"]) == bool(c.nullable)
                            and (live[c.name]["default"] is None) == (plain_default(c) is None)
                            for c in target.columns if not c.primary_key)
        checks = {k["name"] for k in inspector.get_check_constraints(target.name)}
        keys = {(tuple(k["constrained_columns"]), k["referred_table"], tuple(k["referred_columns"]))
                for k in inspector.get_foreign_keys(target.name)}
        wanted_checks = {k.name for k in target.constraints if isinstance(k, sa.CheckConstraint) and k.name}
        wanted_keys = {_reference(k) for k in target.constraints if isinstance(k, sa.ForeignKeyConstraint)}
        return columns_match and wanted_checks <= checks and wanted_keys <= keys
    return probe


def _reference(key: sa.ForeignKeyConstraint) -> tuple[tuple[str, ...], str, tuple[str, ...]]:
    """(columns, referenced table, referenced columns), as the inspector reports a foreign key."""
    targets = [e.target_fullname.rsplit(".", 1) for e in key.elements]  # "table.column"
    return tuple(e.parent.name for e in key.elements), targets[0][0], tuple(column for _, column in targets)


def _target_row_exists(move: MoveStatements, source_row) -> sa.ColumnElement:
    t, rule = move.t, move.rule
    return sa.exists().where(t.c[rule.target_key] == source_row.c[rule.source_key])
