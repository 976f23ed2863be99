"""compute_column: new columns whose values only Python can compute (Keystone's encrypted_blob).

Expand adds the columns (nullable, no default); migrate computes them in the backfill's keyed
batches by calling the user's function with a batch of rows (compute.py: resumable, idempotent);
contract gives them their declared NOT NULL and defaults. No trigger can run the function, so the
change must also block the writes that would leave a row uncomputed: a table's block_writes on
the same table (Keystone refused every INSERT and the UPDATEs that left encrypted_blob NULL).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from ..compute import Compute, PythonBackfill
from ..ddl import AddColumn, DropColumn, Intent
from ..errors import ValidationError
from ..schema import Schema
from .base import Op, final_constraints, require_new_column, transitional


@dataclass(frozen=True)
class ComputeColumnOp(Op):
    table: str
    columns: tuple[sa.Column, ...]
    compute: Compute
    reads: tuple[str, ...]

    def describe(self) -> str:
        return f"compute_column {self.table}.{', '.join(c.name for c in self.columns)}"

    def validate(self, schema: Schema) -> None:
        for column in self.columns:
            require_new_column(schema, self.table, column.name)
        for name in self.reads:
            schema.column(self.table, name)
        if not schema.primary_key(self.table):
            raise ValidationError(f"{self.describe()}: table {self.table!r} needs a primary key (each computed "
                                  "value is written back to its row by key)")

    def validate_in(self, change) -> None:
        from .block_writes import BlockWritesOp

        if not any(isinstance(op, BlockWritesOp) and op.table == self.table and op.whole_table for op in change.ops):
            raise ValidationError(
                f"{self.describe()}: no trigger can compute it for release N's writes; block them in the same "
                f"change, e.g. ops.block_writes({self.table!r}, insert=True, update=lambda new, old: ...)")

    def expand(self, schema: Schema) -> list[Intent]:
        return [AddColumn(self.table, transitional(self.table, c)) for c in self.columns]

    def migrate_work(self, schema: Schema) -> tuple:
        return (PythonBackfill(self.table, tuple(c.name for c in self.columns), self.reads, self.compute),)

    def contract(self, schema: Schema) -> list[Intent]:
        return [intent for c in self.columns for intent in final_constraints(self.table, c)]

    def rollback(self, schema: Schema) -> list[Intent]:
        return [DropColumn(self.table, c.name) for c in reversed(self.columns)]

    def added_columns(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)


def compute_column(table: str, columns: sa.Column | Sequence[sa.Column], compute: Callable[[list], Sequence],
                   *, reads: str | Sequence[str]) -> ComputeColumnOp:
    """Add `columns` to `table` and fill them in migrate with `compute(rows)`.

    `compute` receives a batch of rows (each with the primary key and the `reads` columns as
    attributes, `row.blob`) and returns one value per row, in order: the column's value, or a tuple
    with one value per column when there are several. It must be deterministic: a batch cut short
    (a kill) is computed again. Pair it with a table's `block_writes`: no trigger can compute the
    values for writes made meanwhile."""
    new = (columns,) if isinstance(columns, sa.Column) else tuple(columns)
    names = (reads,) if isinstance(reads, str) else tuple(reads)
    if not new or not all(isinstance(c, sa.Column) for c in new):
        raise ValidationError(f"compute_column {table}: give one sa.Column or a list of them")
    if not callable(compute):
        raise ValidationError(f"compute_column {table}: compute must be a callable (a batch of rows in, "
                              f"one value per row out), got {compute!r}")
    if not names:
        raise ValidationError(f"compute_column {table}: name the columns compute reads (reads=...)")
    return ComputeColumnOp(table, new, compute, names)
