"""replace_column: a type or representation change, with `up` and `down` between the two forms."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from ..sync import Transform
from .base import ReplacesColumns


@dataclass(frozen=True)
class ReplaceColumnOp(ReplacesColumns):
    table: str
    old: str
    column: sa.Column
    up: Transform
    down: Transform
    lossy: bool = False

    @property
    def old_columns(self) -> tuple[str, ...]:
        return (self.old,)

    @property
    def new_columns(self) -> tuple[sa.Column, ...]:
        return (self.column,)

    def describe(self) -> str:
        return f"replace_column {self.table}.{self.old} -> {self.column.name}"


def replace_column(table: str, old: str, column: sa.Column, *, up: Transform, down: Transform,
                   lossy: bool = False) -> ReplaceColumnOp:
    """Replace `table.old` by `column`; `up(old) -> new` and `down(new) -> old` must round-trip
    for every value of the old column's type.
    `lossy=True` accepts, on purpose, that down(up(a)) differs from a for some values the old
    column's type can hold (crossfade then checks sample values and the existing rows only)."""
    return ReplaceColumnOp(table, old, column, up, down, lossy)
