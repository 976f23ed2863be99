"""split_column: one old column becomes several new ones (a full name into first and last)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from ..errors import ValidationError
from ..sync import Transform
from .base import ReplacesColumns


@dataclass(frozen=True)
class SplitColumnOp(ReplacesColumns):
    table: str
    old: str
    columns: tuple[sa.Column, ...]
    up: Transform  # old -> a tuple with one value per new column
    down: Transform  # the new columns, positionally -> old
    lossy: bool = False

    @property
    def old_columns(self) -> tuple[str, ...]:
        return (self.old,)

    @property
    def new_columns(self) -> tuple[sa.Column, ...]:
        return self.columns

    def describe(self) -> str:
        return f"split_column {self.table}.{self.old} -> {', '.join(c.name for c in self.columns)}"


def split_column(table: str, old: str, columns: Sequence[sa.Column], *, up: Transform,
                 down: Transform, lossy: bool = False) -> SplitColumnOp:
    """Split `table.old` into `columns`: `up(old)` returns one expression per new column and
    `down(*new)` joins them back; down(up(a)) must equal a.
    `lossy=True` accepts, on purpose, that down(up(a)) differs from a for some values the old
    column's type can hold (crossfade then checks sample values and the existing rows only)."""
    if len(columns) < 2:
        raise ValidationError(f"split_column {table}.{old}: give at least two new columns")
    return SplitColumnOp(table, old, tuple(columns), up, down, lossy)
