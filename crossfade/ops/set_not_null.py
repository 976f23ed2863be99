"""set_not_null: NULLs are filled while release N may still write them; NOT NULL lands in contract."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..ddl import Intent, SetNullable
from ..errors import ColumnNotNullableError
from ..schema import Schema
from ..sync import FillRule
from .base import Op, Sync


@dataclass(frozen=True)
class SetNotNullOp(Op):
    table: str
    column: str
    fill: Callable[..., Any] | Any = None

    def describe(self) -> str:
        return f"set_not_null {self.table}.{self.column}"

    def validate(self, schema: Schema) -> None:
        if not schema.column(self.table, self.column).nullable:
            raise ColumnNotNullableError(self.table, self.column)

    def sync(self, schema: Schema) -> Sync:
        if self.fill is None:
            return Sync()
        fill = self.fill if callable(self.fill) else (lambda _row, value=self.fill: value)
        return Sync(fills=(FillRule(self.table, self.column, fill),))

    def contract(self, schema: Schema) -> list[Intent]:
        return [SetNullable(self.table, self.column, False)]



def set_not_null(table: str, column: str, *, fill: Callable | Any = None) -> SetNotNullOp:
    """Make `table.column` NOT NULL. Without `fill`, contract refuses while NULL rows remain."""
    return SetNotNullOp(table, column, fill)
