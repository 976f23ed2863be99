"""merge_columns: several old columns become one new one (an amount and a currency into a price)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from ..errors import ValidationError
from ..sync import Transform
from .base import ReplacesColumns


@dataclass(frozen=True)
class MergeColumnsOp(ReplacesColumns):
    table: str
    old: tuple[str, ...]
    column: sa.Column
    up: Transform  # the old columns, positionally -> new
    down: Transform  # new -> a tuple with one value per old column
    lossy: bool = False

    @property
    def old_columns(self) -> tuple[str, ...]:
        return self.old

    @property
    def new_columns(self) -> tuple[sa.Column, ...]:
        return (self.column,)

    def describe(self) -> str:
        return f"merge_columns {self.table}.{', '.join(self.old)} -> {self.column.name}"


def merge_columns(table: str, old: Sequence[str], column: sa.Column, *, up: Transform,
                  down: Transform, lossy: bool = False) -> MergeColumnsOp:
    """Merge the columns `old` of `table` into `column`: `up(*old)` combines them and `down(new)`
    returns one expression per old column; down(up(a)) must equal a.
    `lossy=True` accepts, on purpose, that down(up(a)) differs from a for some values the old
    columns' types can hold (crossfade then checks sample values and the existing rows only)."""
    if len(old) < 2:
        raise ValidationError(f"merge_columns {table}: give at least two old columns")
    return MergeColumnsOp(table, tuple(old), column, up, down, lossy)
