"""Reading a revision's plain Alembic operations without running them.

crossfade calls the revision's `upgrade()` with Alembic's `op` pointing at a recorder: every
`op.*` call becomes the Alembic operation object it builds (`alembic.operations.ops`), and a
`with op.batch_alter_table(...)` block becomes one BatchOp holding the operations inside it.
The recorder answers `op.get_context()` with an offline context of the target dialect, so a
revision may still ask which database it is for; it refuses `op.get_bind()`, since nothing runs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import SimpleNamespace

import sqlalchemy as sa
from alembic import op as alembic_op
from alembic.operations import BatchOperations, Operations
from alembic.operations import ops as alembic_ops
from alembic.runtime.migration import MigrationContext

from ..errors import ChangeLoadError, CrossfadeError


@dataclass
class BatchOp:
    """`with op.batch_alter_table(table_name, **options)`: its operations, run as one batch."""

    table_name: str
    schema: str | None = None
    options: dict = field(default_factory=dict)
    operations: list = field(default_factory=list)

    def reverse(self) -> BatchOp:
        return BatchOp(self.table_name, self.schema, dict(self.options),
                       [o.reverse() for o in reversed(self.operations)])


class DeclarationError(CrossfadeError):
    """A revision does something while declaring that crossfade cannot record."""


def record(fn: Callable[[], None], dialect: sa.Dialect, where: str) -> list:
    """The plain Alembic operations `fn` declares, in order (`where` names it in errors)."""
    recorded: list = []
    operations = Operations(offline_context(dialect))
    operations.invoke = lambda operation: _keep(recorded, operation)
    operations.batch_alter_table = lambda table_name, schema=None, **options: _batch(
        recorded, operations, table_name, schema, options)
    operations.get_bind = lambda: _refuse_bind(where)
    with _installed(operations):
        try:
            fn()
        except CrossfadeError:
            raise
        except Exception as exc:
            raise ChangeLoadError(f"{where}: upgrade() failed while crossfade read it: "
                                  f"{type(exc).__name__}: {exc}") from exc
    return recorded


def offline_context(dialect: sa.Dialect, output: Statements | None = None, **opts) -> MigrationContext:
    """An Alembic context that renders SQL for `dialect` into `output` instead of running it."""
    logger = logging.getLogger("alembic.runtime.migration")
    disabled, logger.disabled = logger.disabled, True  # its "Context impl ..." lines are about the real run
    try:
        return MigrationContext.configure(dialect=dialect, opts={
            "as_sql": True, "literal_binds": True, "output_buffer": output if output is not None else Statements(),
            **opts})
    finally:
        logger.disabled = disabled


class Statements:
    """An output buffer for Alembic's offline mode, which writes one statement per `write`."""

    def __init__(self):
        self.statements: list[str] = []

    def write(self, text: str) -> None:
        statement = text.strip()
        if statement.endswith(";"):
            statement = statement[:-1].rstrip()
        if statement:
            self.statements.append(statement)

    def flush(self) -> None:
        pass


def _keep(recorded: list, operation):
    recorded.append(operation)
    # `op.create_table` returns the table; revisions pass it on to `op.bulk_insert`.
    return operation.to_table() if isinstance(operation, alembic_ops.CreateTableOp) else None


@contextmanager
def _batch(recorded: list, operations: Operations, table_name: str, schema: str | None,
           options: dict) -> Iterator[BatchOperations]:
    batch = BatchOp(table_name, schema, options)
    # Batch operations read only the table's name and schema from their implementation.
    batch_ops = BatchOperations(operations.migration_context,
                                impl=SimpleNamespace(table_name=table_name, schema=schema))
    batch_ops.invoke = batch.operations.append
    yield batch_ops
    recorded.append(batch)


def _refuse_bind(where: str):
    raise DeclarationError(f"{where}: upgrade() calls op.get_bind(), so it runs SQL of its own; crossfade can "
                           "only classify Alembic operations. Run this revision offline (`alembic upgrade`), "
                           "or move the SQL into crossfade operations")


@contextmanager
def _installed(operations: Operations) -> Iterator[None]:
    """Point Alembic's module-level `op` at `operations`, then back at whatever it was (Alembic's
    own, when a plain `alembic upgrade` is running the revision)."""
    previous = alembic_op.__dict__.get("_proxy")
    operations._install_proxy()
    try:
        yield
    finally:
        if previous is not None:
            previous._install_proxy()
        else:
            operations._remove_proxy()

