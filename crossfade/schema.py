"""A snapshot of the tables a change touches: reflected from a database or taken from metadata.

Ops validate against it and dialects render DDL from it. `plan` works without a database by
simulating each phase's DDL on the snapshot (`apply`), so contract SQL sees expand's columns.
"""

from __future__ import annotations

import sqlalchemy as sa

from .errors import UnknownColumnError, UnknownTableError


class Schema:
    def __init__(self, metadata: sa.MetaData):
        self.metadata = metadata

    @classmethod
    def reflect(cls, conn: sa.Connection, tables: set[str]) -> Schema:
        metadata = sa.MetaData()
        existing = set(sa.inspect(conn).get_table_names())
        for name in sorted(tables & existing):
            sa.Table(name, metadata, autoload_with=conn)
        return cls(metadata)

    @classmethod
    def from_metadata(cls, metadata: sa.MetaData) -> Schema:
        return cls(_copy_metadata(metadata))

    def copy(self) -> Schema:
        return Schema(_copy_metadata(self.metadata))

    def has_table(self, name: str) -> bool:
        return name in self.metadata.tables

    def table(self, name: str) -> sa.Table:
        try:
            return self.metadata.tables[name]
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

    def primary_key(self, table: str) -> tuple[str, ...]:
        return tuple(c.name for c in self.table(table).primary_key.columns)

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

    def _replace_table(self, table: sa.Table, columns: list[sa.Column]) -> None:
        name = table.name
        indexes = [
            (i.name, [c.name for c in i.columns], i.unique)
            for i in table.indexes
            if all(c.name in {k.name for k in columns} for c in i.columns)
        ]
        self.metadata.remove(table)
        new = sa.Table(name, self.metadata, *columns)
        for index_name, cols, unique in indexes:
            sa.Index(index_name, *[new.c[c] for c in cols], unique=unique)


def _copy_metadata(metadata: sa.MetaData) -> sa.MetaData:
    copied = sa.MetaData()
    for table in metadata.sorted_tables:
        table.to_metadata(copied)
    return copied


def _fresh(column: sa.Column) -> sa.Column:
    """An unattached copy of a column's definition (Column.copy() is deprecated)."""
    default = column.server_default.arg if column.server_default is not None else None
    return sa.Column(column.name, column.type, nullable=column.nullable, primary_key=column.primary_key,
                     server_default=default, autoincrement=column.autoincrement)
