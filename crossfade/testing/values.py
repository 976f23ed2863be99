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
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Recipe:
    """How to make a value of a column's type: one of `choices`, a string of `letters`
    (1 to `longest` of them), or an integer in [`low`, `high`] passed through `convert`. The
    random writers and the Hypothesis strategies (stateful.py) both read it, so both modes
    write the same values."""

    choices: tuple | None = None
    letters: str | None = None
    longest: int = 0
    low: int = 0
    high: int = 0
    convert: Callable[[int], Any] = int


def recipe(column: sa.Column) -> Recipe:
    type_ = column.type
    if isinstance(type_, sa.Enum) and type_.enums:
        return Recipe(choices=tuple(type_.enums))
    if isinstance(type_, sa.Boolean):
        return Recipe(choices=(False, True))
    if isinstance(type_, sa.SmallInteger):
        return Recipe(low=-100, high=100)
    if isinstance(type_, sa.Integer):
        return Recipe(low=-10_000, high=10_000)
    if isinstance(type_, sa.Numeric) and not isinstance(type_, sa.Float):
        scale = type_.scale if type_.scale is not None else 0
        return Recipe(low=-10_000, high=10_000, convert=lambda i: decimal.Decimal(i).scaleb(-scale))
    if isinstance(type_, sa.Float):
        return Recipe(low=-10_000, high=10_000, convert=float)
    if isinstance(type_, sa.DateTime):
        return Recipe(low=0, high=10**8, convert=lambda s: dt.datetime(2020, 1, 1) + dt.timedelta(seconds=s))
    if isinstance(type_, sa.Date):
        return Recipe(low=0, high=5000, convert=lambda d: dt.date(2020, 1, 1) + dt.timedelta(days=d))
    if isinstance(type_, sa.String):  # Text and Unicode included
        return Recipe(letters=_LETTERS, longest=min(type_.length or 12, 12))
    raise CrossfadeError(
        f"the simulator cannot make values for {column.table.name}.{column.name} ({type_!r}); "
        f"pass values={{'{column.table.name}.{column.name}': [...]}}")


def _by_type(column: sa.Column, rng: random.Random) -> Any:
    made = recipe(column)
    if made.choices is not None:
        return rng.choice(made.choices)
    if made.letters is not None:
        return "".join(rng.choice(made.letters) for _ in range(rng.randint(1, made.longest)))
    return made.convert(rng.randint(made.low, made.high))
