"""Release N's schema without a database: earlier revisions replayed onto a Schema snapshot.

`alembic upgrade --sql` and `crossfade plan` render a crossfade change for a database they never
see, and the change's SQL depends on the tables it finds (SQLite rebuilds a whole table, a
renamed column keeps its type). So the revisions before it are read, oldest first, and their
operations applied to a snapshot: plain Alembic operations here, crossfade changes through
their own DDL intents. Operations that do not change tables, columns or indexes (op.execute,
constraints) are skipped. A revision module defining `metadata` (release N's sa.MetaData)
states its tables outright, for histories that cannot be replayed.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic.operations import ops as alembic_ops

from ..change import Change
from ..ddl import apply_to_schema
from ..schema import Schema, generation, plain_default
from .recording import BatchOp


def apply(schema: Schema, operation) -> None:
    """Simulate one plain Alembic operation on `schema`."""
    if isinstance(operation, BatchOp):
        for inner in operation.operations:
            apply(schema, inner)
        return
    metadata = schema.metadata
    table = getattr(operation, "table_name", None)
    if isinstance(operation, alembic_ops.CreateTableOp):
        _remove(schema, operation.table_name)
        operation.to_table().to_metadata(metadata)
    elif isinstance(operation, alembic_ops.DropTableOp):
        _remove(schema, operation.table_name)
    elif not isinstance(table, str) or not schema.has_table(table):
        return
    elif isinstance(operation, alembic_ops.AddColumnOp):
        schema.add_column(table, operation.column)
    elif isinstance(operation, alembic_ops.DropColumnOp):
        schema.drop_column(table, operation.column_name)
    elif isinstance(operation, alembic_ops.AlterColumnOp):
        _alter_column(schema, operation)
    elif isinstance(operation, alembic_ops.CreateIndexOp):
        columns = [schema.table(table).c.get(c) if isinstance(c, str) else None for c in operation.columns]
        if all(c is not None for c in columns):
            sa.Index(operation.index_name, *columns, unique=bool(operation.unique))
    elif isinstance(operation, alembic_ops.DropIndexOp):
        for index in list(schema.table(table).indexes):
            if index.name == operation.index_name:
                schema.table(table).indexes.discard(index)
    elif isinstance(operation, alembic_ops.RenameTableOp):
        _rebuild(schema, table, [_copy(c) for c in schema.table(table).columns], operation.new_table_name)


def apply_change(schema: Schema, change: Change) -> None:
    """Simulate a crossfade change from release N to release N+1 (expand, then contract)."""
    for intent in change.expand_intents(schema):
        apply_to_schema(schema, intent)
    for intent in change.contract_intents(schema):
        apply_to_schema(schema, intent)


def merge(schema: Schema, metadata: sa.MetaData) -> None:
    """A revision's own `metadata` wins over the replayed snapshot for the tables it names."""
    for table in metadata.sorted_tables:
        _remove(schema, table.name)
        table.to_metadata(schema.metadata)


def _alter_column(schema: Schema, operation: alembic_ops.AlterColumnOp) -> None:
    table, name = operation.table_name, operation.column_name
    if not schema.has_column(table, name):
        return
    if operation.modify_nullable is not None:
        schema.set_nullable(table, name, operation.modify_nullable)
    if operation.modify_server_default is not False:
        default = operation.modify_server_default
        schema.set_default(table, name, getattr(default, "arg", default))
    if operation.modify_type is not None or operation.modify_name is not None:
        columns = []
        for column in schema.table(table).columns:
            copied = _copy(column)
            if column.name == name:
                copied = sa.Column(operation.modify_name or name, operation.modify_type or column.type,
                                   nullable=column.nullable, primary_key=column.primary_key,
                                   server_default=_default_of(column))
            columns.append(copied)
        _rebuild(schema, table, columns)


def _rebuild(schema: Schema, name: str, columns: list[sa.Column], new_name: str | None = None) -> None:
    old = schema.table(name)
    kept = {c.name for c in columns}
    indexes = [(i.name, [c.name for c in i.columns], i.unique) for i in old.indexes
               if {c.name for c in i.columns} <= kept]
    schema.metadata.remove(old)
    table = sa.Table(new_name or name, schema.metadata, *columns)
    for index_name, index_columns, unique in indexes:
        sa.Index(index_name, *[table.c[c] for c in index_columns], unique=unique)


def _remove(schema: Schema, name: str) -> None:
    if schema.has_table(name):
        schema.metadata.remove(schema.table(name))


def _copy(column: sa.Column) -> sa.Column:
    return sa.Column(column.name, column.type, *generation(column), nullable=column.nullable,
                     primary_key=column.primary_key, server_default=_default_of(column),
                     autoincrement=column.autoincrement)


def _default_of(column: sa.Column):
    return plain_default(column)
