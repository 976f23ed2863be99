"""Random column values for the simulator's writers, chosen by column type.

A value must come back from the database equal to what was written, on every dialect, or the
journal check would report lost writes that were only rounding: datetimes have whole seconds
(MySQL DATETIME), floats are whole numbers, strings avoid trailing spaces (MariaDB PAD SPACE).
"""

from __future__ import annotations

import datetime as dt
import decimal
import random
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from ..errors import CrossfadeError

# Either a list of values to choose from or a function of a random.Random.
ValueSpec = Sequence[Any] | Callable[[random.Random], Any]
NULL_SHARE = 0.15  # how often a nullable column is written as an explicit NULL

_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-"


class ValueSource:
    """Values for `table.column`, from `overrides` (keyed "table.column") or the column's type."""

    def __init__(self, overrides: Mapping[str, ValueSpec] | None = None):
        self.overrides = dict(overrides or {})

    def check(self, table: sa.Table, column: sa.Column) -> None:
        """Fail early, naming the column, when no value can be made for it."""
        if f"{table.name}.{column.name}" not in self.overrides:
            _by_type(column, random.Random(0))

    def value(self, rng: random.Random, table: sa.Table, column: sa.Column, *, allow_null: bool = True) -> Any:
        if allow_null and column.nullable and rng.random() < NULL_SHARE:
            return None
        spec = self.overrides.get(f"{table.name}.{column.name}")
        if spec is None:
            return _by_type(column, rng)
        return spec(rng) if callable(spec) else rng.choice(list(spec))


def _by_type(column: sa.Column, rng: random.Random) -> Any:
    type_ = column.type
    if isinstance(type_, sa.Enum) and type_.enums:
        return rng.choice(type_.enums)
    if isinstance(type_, sa.Boolean):
        return rng.random() < 0.5
    if isinstance(type_, sa.SmallInteger):
        return rng.randint(-100, 100)
    if isinstance(type_, sa.Integer):
        return rng.randint(-10_000, 10_000)
    if isinstance(type_, sa.Numeric) and not isinstance(type_, sa.Float):
        scale = type_.scale if type_.scale is not None else 0
        return decimal.Decimal(rng.randint(-10_000, 10_000)).scaleb(-scale)
    if isinstance(type_, sa.Float):
        return float(rng.randint(-10_000, 10_000))
    if isinstance(type_, sa.DateTime):
        return dt.datetime(2020, 1, 1) + dt.timedelta(seconds=rng.randint(0, 10**8))
    if isinstance(type_, sa.Date):
        return dt.date(2020, 1, 1) + dt.timedelta(days=rng.randint(0, 5000))
    if isinstance(type_, sa.String):  # Text and Unicode included
        length = min(type_.length or 12, 12)
        return "".join(rng.choice(_LETTERS) for _ in range(rng.randint(1, length)))
    raise CrossfadeError(
        f"the simulator cannot make values for {column.table.name}.{column.name} ({type_!r}); "
        f"pass values={{'{column.table.name}.{column.name}': [...]}}")
