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

    @property
    def old_columns(self) -> tuple[str, ...]:
        return (self.old,)

    @property
    def new_columns(self) -> tuple[sa.Column, ...]:
        return (self.column,)

    def describe(self) -> str:
        return f"replace_column {self.table}.{self.old} -> {self.column.name}"


def replace_column(table: str, old: str, column: sa.Column, *, up: Transform, down: Transform) -> ReplaceColumnOp:
    """Replace `table.old` by `column`; `up(old) -> new` and `down(new) -> old` must round-trip."""
    return ReplaceColumnOp(table, old, column, up, down)
