"""A snapshot of the tables a change touches: reflected from a database or taken from metadata.

Ops validate against it and dialects render DDL from it. `plan` works without a database by
simulating each phase's DDL on the snapshot (`apply`), so contract SQL sees expand's columns.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable

import sqlalchemy as sa

from . import sqltext
from .errors import ConstraintExistsError, UnknownColumnError, UnknownTableError, ValidationError


def inspect(conn: sa.Connection) -> sa.Inspector:
    """sa.inspect(conn), with names reflected as the database stores them (see
    dialects/mysql_reflection.py: SQLAlchemy leaves a MySQL name's backtick doubled)."""
    if conn.dialect.name in ("mysql", "mariadb"):
        from .dialects.mysql_reflection import mend_reflection  # here: the dialects import this module

        mend_reflection(conn.dialect)
    return sa.inspect(conn)


class Schema:
    """Tables are looked up by their plain names; where the change's tables are in a named
    database schema (`metadata.schema`), every table here is in it, so compiled SQL names it."""

    def __init__(self, metadata: sa.MetaData, views: Iterable[str] = ()):
        self.metadata = metadata
        self.views = set(views)  # views in the database (a new table's name must not be one)

    @classmethod
    def reflect(cls, conn: sa.Connection, tables: set[str], schema: str | None = None) -> Schema:
        metadata = sa.MetaData(schema=schema)
        inspector = inspect(conn)
        existing = set(inspector.get_table_names(schema=schema))
        with warnings.catch_warnings():
            # SQLAlchemy reflects PostgreSQL's NOT VALID checks (add_check between its two steps)
            # with an option Table() then warns it cannot validate.
            warnings.filterwarnings("ignore", "Can't validate argument 'dialect_options'", sa.exc.SAWarning)
            for name in sorted(tables & existing):
                table = sa.Table(name, metadata, autoload_with=conn)
                if conn.dialect.name == "sqlite":
                    _reread_generated(conn, table)
        return cls(metadata, inspector.get_view_names(schema=schema))

    @classmethod
    def from_metadata(cls, metadata: sa.MetaData) -> Schema:
        return cls(_copy_metadata(metadata))

    def copy(self) -> Schema:
        return Schema(_copy_metadata(self.metadata), self.views)

    def name_taken(self, name: str) -> bool:
        return self.has_table(name) or name in self.views

    def has_table(self, name: str) -> bool:
        return self.fullname(name) in self.metadata.tables

    def fullname(self, name: str) -> str:
        """The table's name with its schema, as SQLAlchemy keys it (and a foreign key targets it)."""
        return f"{self.metadata.schema}.{name}" if self.metadata.schema else name

    def table(self, name: str) -> sa.Table:
        try:
            return self.metadata.tables[self.fullname(name)]
        except KeyError:
            raise UnknownTableError(name) from None

    def column(self, table: str, name: str) -> sa.Column:
        columns = self.table(table).columns
        if name not in columns:
            raise UnknownColumnError(table, name)
        return columns[name]

    def has_column(self, table: str, name: str) -> bool:
        return self.has_table(table) and name in self.table(table).columns

    def needs_a_value(self, table: str, name: str) -> bool:
        """NOT NULL without a server default: an INSERT that leaves the column out fails."""
        column = self.column(table, name)
        return not column.nullable and column.server_default is None

    def is_unique(self, table: str, column: str) -> bool:
        """No two rows can share a value of `column` alone (its primary key, a unique constraint
        or a unique index on just that column)."""
        t = self.table(table)
        alone = [(column,)]
        keys = [tuple(c.name for c in t.primary_key.columns)]
        keys += [tuple(c.name for c in k.columns) for k in t.constraints if isinstance(k, sa.UniqueConstraint)]
        keys += [tuple(c.name for c in i.columns) for i in t.indexes if i.unique]
        return any(key in alone for key in keys) or bool(t.c[column].unique)

    def has_index_on(self, table: str, column: str) -> bool:
        """Rows can be looked up by `column`: an index, unique constraint or primary key starts with it."""
        t = self.table(table)
        leading = [[c.name for c in t.primary_key.columns]]
        leading += [[c.name for c in i.columns] for i in t.indexes]
        leading += [[c.name for c in k.columns] for k in t.constraints if isinstance(k, sa.UniqueConstraint)]
        return any(names and names[0] == column for names in leading) or bool(t.c[column].index or t.c[column].unique)

    def primary_key(self, table: str) -> tuple[str, ...]:
        return tuple(c.name for c in self.table(table).primary_key.columns)

    def require_columns(self, table: str, names: Iterable[str]) -> list[sa.Column]:
        return [self.column(table, name) for name in names]

    def index_and_constraint_names(self, table: str) -> set[str]:
        t = self.table(table)
        return {i.name for i in t.indexes if i.name} | {k.name for k in t.constraints if isinstance(k.name, str)}

    def require_new_name(self, table: str, name: str) -> None:
        """An index or constraint `name` is not on the table yet."""
        if name in self.index_and_constraint_names(table):
            raise ConstraintExistsError(table, name)

    # --- simulation of DDL, for plans without a database -------------------------------
    def add_column(self, table: str, column: sa.Column) -> None:
        if not self.has_column(table, column.name):
            self.table(table).append_column(_fresh(column))

    def drop_column(self, table: str, name: str) -> None:
        t = self.table(table)
        if name in t.columns:
            # sa.Table has no public remove; rebuild the table without the column.
            self._replace_table(t, [_fresh(c) for c in t.columns if c.name != name])

    def set_nullable(self, table: str, name: str, nullable: bool) -> None:
        self.column(table, name).nullable = nullable

    def set_default(self, table: str, name: str, default) -> None:
        column = self.column(table, name)
        column.server_default = sa.DefaultClause(default) if default is not None else None

    def add_index(self, table: str, name: str, columns: Iterable[str], unique: bool = False) -> None:
        t = self.table(table)
        if name not in {i.name for i in t.indexes}:
            sa.Index(name, *[t.c[c] for c in columns], unique=unique)

    def drop_index(self, table: str, name: str) -> None:
        t = self.table(table)
        for index in [i for i in t.indexes if i.name == name]:
            t.indexes.discard(index)

    def add_foreign_key(self, table: str, name: str, columns: Iterable[str], ref_table: str,
                        ref_columns: Iterable[str], ondelete: str | None = None,
                        onupdate: str | None = None) -> None:
        t = self.table(table)
        if name in self.index_and_constraint_names(table):
            return
        ref_columns = list(ref_columns)
        if not self.has_table(ref_table):
            # The snapshot holds the change's own tables; the referenced one is known by name
            # only, which is all a rendered REFERENCES clause (a SQLite rebuild) needs.
            sa.Table(ref_table, self.metadata, *[sa.Column(c, sa.types.NullType) for c in ref_columns],
                     info={"crossfade_stub": True})
        t.append_constraint(sa.ForeignKeyConstraint(list(columns), [f"{ref_table}.{c}" for c in ref_columns],
                                                    name=name, ondelete=ondelete, onupdate=onupdate))

    def add_check(self, table: str, name: str, condition) -> None:
        t = self.table(table)
        if name not in self.index_and_constraint_names(table):
            t.append_constraint(sa.CheckConstraint(condition, name=name))

    def create_table(self, intent) -> None:
        """A ddl.CreateTable's table (its referenced table must be in the snapshot)."""
        if self.has_table(intent.table):
            return  # made by an earlier run of the same phase
        key_type = self.column(intent.ref_table, intent.key).type
        intent.build(self.metadata, key_type)

    def drop_table(self, name: str) -> None:
        if self.has_table(name):
            self.metadata.remove(self.table(name))

    def rename_table(self, old: str, new: str) -> None:
        """`old` takes the name `new`, replacing what had it (rename_table's stand-in)."""
        if not self.has_table(old) and self.has_table(new):
            return  # renamed by an earlier run of the same phase
        table = self.table(old)
        self.drop_table(new)
        table.to_metadata(self.metadata, name=new)
        self.metadata.remove(table)

    def _replace_table(self, table: sa.Table, columns: list[sa.Column]) -> None:
        """`table` with only `columns`; indexes and constraints on dropped columns go with them."""
        name = table.name
        kept = {c.name for c in columns}
        indexes = [(i.name, [c.name for c in i.columns], i.unique)
                   for i in table.indexes if {c.name for c in i.columns} <= kept]
        constraints = [_copy_constraint(k) for k in table.constraints
                       if not isinstance(k, sa.PrimaryKeyConstraint)
                       and constraint_columns(k, {c.name for c in table.columns}) <= kept]
        self.metadata.remove(table)
        new = sa.Table(name, self.metadata, *columns, *constraints)
        for index_name, cols, unique in indexes:
            sa.Index(index_name, *[new.c[c] for c in cols], unique=unique)


def _reread_generated(conn: sa.Connection, table: sa.Table) -> None:
    """SQLAlchemy's SQLite reflection runs a generated column's expression into the next column's
    definition; read the expressions from the CREATE TABLE statement instead."""
    if not any(c.computed is not None for c in table.columns):
        return
    master = f"{conn.dialect.identifier_preparer.quote(table.schema)}.sqlite_master" if table.schema else "sqlite_master"
    create = conn.exec_driver_sql(f"SELECT sql FROM {master} WHERE type = 'table' AND name = ?",
                                  (table.name,)).scalar()
    for name, (expression, stored) in sqltext.generated_columns(create or "").items():
        if name in table.columns and table.c[name].computed is not None:
            table.c[name].computed.sqltext = sa.text(expression)
            table.c[name].computed.persisted = stored


def _copy_metadata(metadata: sa.MetaData) -> sa.MetaData:
    copied = sa.MetaData(schema=metadata.schema)
    for table in metadata.sorted_tables:
        table.to_metadata(copied)
    return copied


def _fresh(column: sa.Column) -> sa.Column:
    """An unattached copy of a column's definition (Column.copy() is deprecated), generated and
    identity columns included."""
    return sa.Column(column.name, column.type, *generation(column), nullable=column.nullable,
                     primary_key=column.primary_key, server_default=plain_default(column),
                     autoincrement=column.autoincrement)


def plain_default(column: sa.Column):
    """The column's server default, as Column(server_default=...) takes it; None for none and for a
    generated or identity column (their `server_default` is a Computed or an Identity, no value)."""
    default = column.server_default
    return default.arg if isinstance(default, sa.DefaultClause) else None


def generation(column: sa.Column) -> list:
    """A fresh copy of the column's GENERATED ... AS (...) or IDENTITY clause, if it has one."""
    if column.computed is not None:
        return [sa.Computed(column.computed.sqltext, persisted=column.computed.persisted)]
    if column.identity is not None:
        return [column.identity._copy()]
    return []


def is_generated(column: sa.Column) -> bool:
    """A computed column: the database writes it, nobody else may."""
    return column.computed is not None


def constraint_columns(constraint: sa.Constraint, names: set[str]) -> set[str]:
    """The table's columns a constraint mentions (for a CHECK, the names its text or expression uses)."""
    if isinstance(constraint, sa.CheckConstraint):
        sqltext = constraint.sqltext
        if isinstance(sqltext, sa.TextClause):
            words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_$]*", sqltext.text))
            return names & words
        return names & {c.name for c in sa.sql.visitors.iterate(sqltext) if isinstance(c, sa.ColumnClause)}
    return {c.name for c in constraint.columns}


def _copy_constraint(constraint: sa.Constraint) -> sa.Constraint:
    """An unattached copy of a unique, foreign key or check constraint, by column name."""
    if isinstance(constraint, sa.ForeignKeyConstraint):
        return sa.ForeignKeyConstraint([e.parent.name for e in constraint.elements],
                                       [e.target_fullname for e in constraint.elements], name=constraint.name,
                                       ondelete=constraint.ondelete, onupdate=constraint.onupdate)
    if isinstance(constraint, sa.CheckConstraint):
        return sa.CheckConstraint(constraint.sqltext, name=constraint.name)
    return sa.UniqueConstraint(*[c.name for c in constraint.columns], name=constraint.name)


def column_names(columns: str | Iterable[str], what: str) -> tuple[str, ...]:
    """The column names a user gave an op: one name or several, at least one."""
    names = (columns,) if isinstance(columns, str) else tuple(columns)
    if not names:
        raise ValidationError(f"{what}: name at least one column")
    return names
