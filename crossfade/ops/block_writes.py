"""block_writes: the escape hatch for a change that truly cannot be synced (Keystone's choice).

While the change is in flight, writes fail with a clear error from the database, and nothing is
lost silently: the writer sees the error and can retry after the upgrade. Reads keep working.
Contract drops the triggers, and the block with them.

Two shapes:
- a column's block, `block_writes("docs", "legacy_format")`: an INSERT giving the column a value
  other than its default, an UPDATE changing it;
- a table's block, `block_writes("credential", insert=True, update=lambda new, old: ...)`: every
  write of the named kinds, or those a condition over the rows picks (Keystone's credential rule).
  crossfade's own writes (a Python backfill, a data step) pass it.

With `old_release_only=True` and writer identification (`Change(..., new_release_identified=True)`),
only release N's writes are refused on PostgreSQL and MySQL/MariaDB; SQLite cannot tell who
writes, so there the block refuses both releases' writes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import ValidationError
from ..schema import Schema
from ..sync import BlockRule, row
from .base import Op, Sync, check_not_primary_key, default_expr

EVENTS = ("insert", "update", "delete")
Condition = bool | Callable[..., Any] | None


@dataclass(frozen=True)
class BlockWritesOp(Op):
    table: str
    columns: tuple[str, ...]
    message: str | None = None
    insert: Condition = None
    update: Condition = None
    delete: Condition = None
    old_release_only: bool = False

    @property
    def whole_table(self) -> bool:
        return not self.columns

    def describe(self) -> str:
        if self.whole_table:
            events = [e.upper() for e in EVENTS if getattr(self, e) not in (None, False)]
            return f"block_writes {self.table} ({', '.join(events)})"
        return f"block_writes {self.table}.{', '.join(self.columns)}"

    def validate(self, schema: Schema) -> None:
        schema.table(self.table)
        for name in self.columns:
            schema.column(self.table, name)
            check_not_primary_key(schema, self.table, name)
        # Every condition is built once over the table's rows: a column it names that the table
        # lacks, or a condition that raises, is refused here, before any DDL.
        new, old = row(schema.table(self.table), "NEW"), row(schema.table(self.table), "OLD")
        for rule in self.sync(schema).blocks:
            rule.insert_violation(new), rule.update_violation(new, old), rule.delete_violation(old)

    def validate_in(self, change) -> None:
        if self.old_release_only and not change.new_release_identified:
            raise ValidationError(f"{self.describe()}: old_release_only=True needs release N+1 identified "
                                  "(Change(..., new_release_identified=True) and crossfade.identify_new_release)")

    def sync(self, schema: Schema) -> Sync:
        if self.whole_table:
            return Sync(blocks=(BlockRule(self.table, None, self.message_for(None), None, self.insert, self.update,
                                          self.delete, self.old_release_only),))
        blocks = []
        for name in self.columns:
            column = schema.column(self.table, name)
            default = default_expr(column) if column.server_default is not None else None
            blocks.append(BlockRule(self.table, name, self.message_for(name), default,
                                    old_release_only=self.old_release_only))
        return Sync(blocks=tuple(blocks))

    def message_for(self, column: str | None) -> str:
        if self.message:
            return self.message
        if column is None:
            return (f"writes to {self.table} are refused during a rolling upgrade (crossfade block_writes); "
                    "retry once the upgrade is done")
        return (f"{self.table}.{column} is read-only during a rolling upgrade "
                "(crossfade block_writes); retry once the upgrade is done")


def block_writes(table: str, columns: str | Sequence[str] | None = None, *, insert: Condition = None,
                 update: Condition = None, delete: Condition = None, message: str | None = None,
                 old_release_only: bool = False) -> BlockWritesOp:
    """Refuse writes from expand until contract, with `message` (or a default one).

    `columns`: refuse writes that give these columns a value (INSERT other than the default,
    UPDATE that changes one). Or, for the whole table, `insert` / `update` / `delete`: True refuses
    every such write; a callable returning a SQLAlchemy condition refuses the writes it is true for
    (`insert=lambda new: ...`, `update=lambda new, old: ...`, `delete=lambda old: ...`; the rows'
    columns are attributes). `old_release_only`: refuse only release N's writes where writer
    identification tells them apart (PostgreSQL, MySQL/MariaDB; SQLite refuses both releases')."""
    names = () if columns is None else (columns,) if isinstance(columns, str) else tuple(columns)
    events = {"insert": insert, "update": update, "delete": delete}
    for event, rule in events.items():
        if not (rule is None or isinstance(rule, bool) or callable(rule)):
            raise ValidationError(f"block_writes {table}: {event}= takes True, False or a callable returning a "
                                  f"condition (got {rule!r})")
    blocked = [e for e, rule in events.items() if rule not in (None, False)]
    if names and blocked:
        raise ValidationError(f"block_writes {table}: give columns or {'/'.join(blocked)}=..., not both "
                              "(a column's block, or the table's)")
    if columns is not None and not names:
        raise ValidationError(f"block_writes {table}: name at least one column")
    if not names and not blocked:
        raise ValidationError(f"block_writes {table}: name at least one column, or the writes to refuse "
                              "(insert=, update=, delete=)")
    if message is not None and (not isinstance(message, str) or not message.strip()):
        raise ValidationError(f"block_writes {table}: message must be a non-empty string")
    return BlockWritesOp(table, names, message, insert, update, delete, bool(old_release_only))
