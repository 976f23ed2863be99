"""Which phase a plain Alembic operation in a crossfade revision belongs to.

Release N keeps running until contract, so expand may only add what release N never notices:
tables, nullable columns or columns with a server default, plain indexes. What takes something
away or constrains release N's writes (drops, unique indexes, constraints, new defaults) waits
for contract, when no node of release N is left. An operation that would break release N as soon
as it ran, and that no phase can take as written, is refused with the crossfade operation that
does the same thing online.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from alembic.operations import ops as alembic_ops

from ..errors import PhaseError, ValidationError
from ..schema import Schema
from .recording import BatchOp

EXPAND, CONTRACT = "expand", "contract"


class UnsafeOperationError(ValidationError):
    """A plain Alembic operation that would break release N during a rolling upgrade."""

    def __init__(self, revision: str, operation: str, reason: str, instead: str):
        self.revision, self.operation = revision, operation
        super().__init__(f"revision {revision}: {operation} {reason}; use {instead}")


@dataclass
class Classified:
    expand: list = field(default_factory=list)
    contract: list = field(default_factory=list)


def classify(operations: list, schema: Schema, revision: str, *, strict: bool = True) -> Classified:
    """Split a revision's plain operations by phase; `schema` is release N's.

    strict: raise UnsafeOperationError for the first operation that no phase can run while
    release N is up. Otherwise (the offline path: release N is stopped) it goes with contract's.
    A batch block splits into an expand batch and a contract batch, each with the block's options.
    """
    result = Classified()
    created: set[str] = set()
    for operation in operations:
        inner = operation.operations if isinstance(operation, BatchOp) else [operation]
        phases: dict[str, list] = {EXPAND: [], CONTRACT: []}
        for one in inner:
            try:
                phases[phase_of(one, schema, revision, created)].append(one)
            except UnsafeOperationError:
                if strict:
                    raise
                phases[CONTRACT].append(one)
        for phase, chosen in phases.items():
            if chosen:
                piece = (BatchOp(operation.table_name, operation.schema, dict(operation.options), chosen)
                         if isinstance(operation, BatchOp) else operation)
                (result.expand if phase == EXPAND else result.contract).append(piece)
        if isinstance(operation, alembic_ops.CreateTableOp):
            created.add(operation.table_name)
    return result


def phase_of(operation, schema: Schema, revision: str, created: set[str]) -> str:
    """EXPAND or CONTRACT for one operation (`created`: tables the revision creates before it)."""
    def refuse(reason: str, instead: str):
        raise UnsafeOperationError(revision, describe(operation), reason, instead)

    if isinstance(operation, (alembic_ops.CreateTableOp, alembic_ops.CreateTableCommentOp,
                              alembic_ops.DropTableCommentOp)):
        return EXPAND
    if isinstance(operation, alembic_ops.AddColumnOp):
        column = operation.column
        if not column.nullable and column.server_default is None and operation.table_name not in created:
            refuse("is NOT NULL without a server default, so release N's inserts would fail",
                   f'crossfade.ops.add_column("{operation.table_name}", sa.Column(...), backfill=...) '
                   "(filled for release N's rows until contract makes it NOT NULL)")
        return EXPAND
    if isinstance(operation, alembic_ops.CreateIndexOp):
        return CONTRACT if operation.unique else EXPAND  # unique: release N may still write duplicates
    if isinstance(operation, alembic_ops.DropColumnOp):
        table, column = operation.table_name, operation.column_name
        if schema.has_column(table, column) and schema.needs_a_value(table, column):
            refuse("drops a NOT NULL column without a server default, which release N+1's inserts leave out "
                   "while release N still requires it",
                   f'crossfade.ops.drop_column("{table}", "{column}", fill=...)')
        return CONTRACT
    if isinstance(operation, (alembic_ops.DropTableOp, alembic_ops.DropIndexOp, alembic_ops.DropConstraintOp,
                              alembic_ops.AddConstraintOp)):
        return CONTRACT
    if isinstance(operation, alembic_ops.AlterColumnOp):
        table, column = operation.table_name, operation.column_name
        if operation.modify_name is not None:
            refuse("renames a column release N still reads and writes",
                   f'crossfade.ops.rename_column("{table}", "{column}", "{operation.modify_name}")')
        if operation.modify_type is not None:
            refuse("changes the type of a column release N still writes",
                   f'crossfade.ops.replace_column("{table}", "{column}", sa.Column(...), up=..., down=...)')
        if operation.modify_nullable is False:
            refuse("makes a column NOT NULL while release N may still write NULL",
                   f'crossfade.ops.set_not_null("{table}", "{column}", fill=...)')
        if operation.modify_server_default is not False:
            return CONTRACT  # release N's inserts keep the default they were written for
        return EXPAND  # allowing NULL or a new comment: release N does not notice
    if isinstance(operation, alembic_ops.RenameTableOp):
        refuse("renames a table release N still uses",
               "a revision of its own run offline (`alembic upgrade`, release N stopped): "
               "crossfade has no rename_table operation yet")
    if isinstance(operation, alembic_ops.ExecuteSQLOp):
        refuse("runs SQL crossfade cannot classify",
               "crossfade.ops for the schema change, or a revision of its own run offline (`alembic upgrade`)")
    if isinstance(operation, alembic_ops.BulkInsertOp):
        table = getattr(operation.table, "name", operation.table)
        if table not in created:
            refuse("inserts into a table the revision did not create, which a rerun after a crash would repeat",
                   "a revision of its own run offline (`alembic upgrade`)")
        return EXPAND
    refuse("is an operation crossfade cannot classify",
           "a revision of its own run offline (`alembic upgrade`)")
    raise AssertionError("unreachable")


def undo(operation, revision: str):
    """What undoes a plain expand operation (rollback); None for rows inserted into a table the
    revision creates, which dropping the table takes with it."""
    if isinstance(operation, alembic_ops.BulkInsertOp):
        return None
    try:
        return operation.reverse()
    except (NotImplementedError, ValueError) as exc:
        raise PhaseError(f"revision {revision}: {describe(operation)} cannot be undone ({exc}); "
                         "roll it back by hand") from None


def describe(operation) -> str:
    """What the revision asked for, shortly: `op.add_column tasks.priority`,
    `op.create_index ix_labels_task_id on labels`, `op.drop_table projects`."""
    if isinstance(operation, BatchOp):
        inner = ", ".join(describe(o).removeprefix("op.") for o in operation.operations)
        return f"op.batch_alter_table {operation.table_name}: {inner}"
    name = _OP_NAMES.get(type(operation), type(operation).__name__)
    table, subject = _table_of(operation), _subject_of(operation)
    if subject is None:
        return f"op.{name} {table}" if table else f"op.{name}"
    if isinstance(operation, (alembic_ops.AddColumnOp, alembic_ops.DropColumnOp, alembic_ops.AlterColumnOp)):
        return f"op.{name} {table}.{subject}"
    return f"op.{name} {subject} on {table}" if table else f"op.{name} {subject}"


def table_of(operation) -> str | None:
    """The table an operation changes (a batch's table; None for op.execute)."""
    if isinstance(operation, BatchOp):
        return operation.table_name
    return _table_of(operation)


def _table_of(operation) -> str | None:
    if isinstance(operation, alembic_ops.BulkInsertOp):
        return getattr(operation.table, "name", operation.table)
    for attribute in ("table_name", "source_table"):
        value = getattr(operation, attribute, None)
        if isinstance(value, str):
            return value
    return None


def _subject_of(operation) -> str | None:
    if isinstance(operation, alembic_ops.AddColumnOp):
        return operation.column.name
    for attribute in ("column_name", "index_name", "constraint_name", "new_table_name"):
        value = getattr(operation, attribute, None)
        if isinstance(value, str):
            return value
    return None


_OP_NAMES = {
    alembic_ops.CreateTableOp: "create_table", alembic_ops.DropTableOp: "drop_table",
    alembic_ops.AddColumnOp: "add_column", alembic_ops.DropColumnOp: "drop_column",
    alembic_ops.AlterColumnOp: "alter_column", alembic_ops.CreateIndexOp: "create_index",
    alembic_ops.DropIndexOp: "drop_index", alembic_ops.RenameTableOp: "rename_table",
    alembic_ops.ExecuteSQLOp: "execute", alembic_ops.BulkInsertOp: "bulk_insert",
    alembic_ops.CreateUniqueConstraintOp: "create_unique_constraint",
    alembic_ops.CreateForeignKeyOp: "create_foreign_key",
    alembic_ops.CreateCheckConstraintOp: "create_check_constraint",
    alembic_ops.CreatePrimaryKeyOp: "create_primary_key", alembic_ops.DropConstraintOp: "drop_constraint",
    alembic_ops.CreateTableCommentOp: "create_table_comment", alembic_ops.DropTableCommentOp: "drop_table_comment",
}
