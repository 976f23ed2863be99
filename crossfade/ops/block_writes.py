"""block_writes: the escape hatch for a change that truly cannot be synced (Keystone's choice).

While the change is in flight, writes to the named columns fail with a clear error from the
database: an INSERT giving one of them a value other than its default, an UPDATE changing one.
Reads keep working. Nothing is lost silently: the writer sees the error and can retry after the
upgrade. Contract drops the triggers, and the block with them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import ValidationError
from ..schema import Schema
from ..sync import BlockRule
from .base import Op, Sync, check_not_primary_key, default_expr


@dataclass(frozen=True)
class BlockWritesOp(Op):
    table: str
    columns: tuple[str, ...]
    message: str | None = None

    def describe(self) -> str:
        return f"block_writes {self.table}.{', '.join(self.columns)}"

    def validate(self, schema: Schema) -> None:
        for name in self.columns:
            schema.column(self.table, name)
            check_not_primary_key(schema, self.table, name)

    def sync(self, schema: Schema) -> Sync:
        blocks = []
        for name in self.columns:
            column = schema.column(self.table, name)
            default = default_expr(column) if column.server_default is not None else None
            blocks.append(BlockRule(self.table, name, self.message_for(name), default))
        return Sync(blocks=tuple(blocks))

    def message_for(self, column: str) -> str:
        return self.message or (f"{self.table}.{column} is read-only during a rolling upgrade "
                                "(crossfade block_writes); retry once the upgrade is done")


def block_writes(table: str, columns: str | Sequence[str], *, message: str | None = None) -> BlockWritesOp:
    """Refuse writes to `table.columns` from expand until contract, with `message` (or a default
    one naming the column)."""
    names = (columns,) if isinstance(columns, str) else tuple(columns)
    if not names:
        raise ValidationError(f"block_writes {table}: name at least one column")
    return BlockWritesOp(table, names, message)
