"""The edges of a column type's whole domain: the values the round-trip law must hold for beyond
a few samples (DESIGN section 2: `down(up(a)) = a` for every value `a` release N can store).

A transform that loses information usually loses it at an edge of the old column's declared
type: the smallest step of a DECIMAL's scale (0.001 of a DECIMAL(38,10) scaled by 100 to cents),
its largest value (beyond BIGINT), an exact half (rounding), a string of the full declared length
or of multibyte characters (a narrower or single-byte column), a datetime's fraction of a second
or its extreme years (an epoch in seconds, a TIMESTAMP's range). `edge_values` draws those values
from the type, in the order a counter-example is clearest: the fewest decimals, the shortest
strings and the nearest dates first, so the first failure is the simplest one.

Only values the column can really hold are drawn, per dialect: a MySQL DATETIME starts at year
1000, a TIMESTAMP holds 1970 to 2038, SQLite's NUMERIC holds a double (15 significant digits).
"""

from __future__ import annotations

import datetime as dt
import decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql

# A NUMERIC without a declared precision (PostgreSQL's unbounded numeric) is drawn with this many
# integer digits: the edge a BIGINT of cents meets (2**63 / 100 has 17).
UNBOUNDED_DIGITS = 18
DOUBLE_DIGITS = 15  # significant digits a double keeps exactly (SQLite's NUMERIC is one)
UNBOUNDED_LENGTH = 300  # a string without a declared length is drawn past VARCHAR(255)

_INTEGER_BITS = [  # most specific first: BIGINT and SMALLINT are Integer subclasses
    (sa.BigInteger, 64),
    (sa.SmallInteger, 16),
    (mysql.TINYINT, 8),
    (mysql.MEDIUMINT, 24),
    (sa.Integer, 32),
]

# Quotes, a backslash, spaces at either end, letter case, 2-, 3- and 4-byte UTF-8.
_STRINGS = ["A", " ", "a ", " a", "'", '"', "\\", "ü", "日本", "\U0001f600"]


def edge_values(type_: sa.types.TypeEngine, dialect: str) -> list[Any]:
    """Edge values of `type_`'s domain on `dialect` (postgresql, mysql or sqlite), NULL aside;
    [] for a type crossfade draws no edges from (the sample values still apply)."""
    dialect = "mysql" if dialect == "mariadb" else dialect
    if _is_boolean(type_):
        return [False, True]
    if isinstance(type_, sa.Enum) and type_.enums:
        return list(type_.enums)
    for kind, draw in _DRAWS:
        if isinstance(type_, kind):
            return list(dict.fromkeys(draw(type_, dialect)))
    return []


def _is_boolean(type_: sa.types.TypeEngine) -> bool:
    # MySQL has no boolean type: SQLAlchemy's Boolean is TINYINT(1), and reflects as such.
    return isinstance(type_, sa.Boolean) or (
        isinstance(type_, mysql.TINYINT) and getattr(type_, "display_width", None) == 1
    )


# --- numbers ---------------------------------------------------------------------------------


def _integers(type_: sa.Integer, dialect: str) -> list[int]:
    bits = next(b for kind, b in _INTEGER_BITS if isinstance(type_, kind))
    if getattr(type_, "unsigned", False):
        low, high = 0, 2**bits - 1
    else:
        low, high = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    # 2**53 + 1 is the first integer a double cannot hold: a path through a float loses it.
    values = [0, 1, -1, 2**53 + 1, -(2**53 + 1), low, high]
    return [v for v in values if low <= v <= high]


def _decimals(type_: sa.Numeric, dialect: str) -> list[decimal.Decimal]:
    scale, precision = _scale_and_precision(type_, dialect)
    with decimal.localcontext() as context:
        context.prec = 2 * (precision + scale) + 2  # every value below exactly
        return _decimal_edges(scale, precision)


def _decimal_edges(scale: int, precision: int) -> list[decimal.Decimal]:
    step = decimal.Decimal(1).scaleb(-scale)
    largest = decimal.Decimal(1).scaleb(precision - scale) - step  # 99...9.9...9
    fractions = [decimal.Decimal(1).scaleb(-k) for k in range(1, scale + 1)]  # 0.1, 0.01, ...: fewest decimals first
    halves = [decimal.Decimal(v) for v in ("0.5", "1.5", "2.5", "-0.5", "-2.5")] if scale else []
    values = [*fractions, -step, *halves, largest - largest % 1, largest, -largest]
    return [v.quantize(step) for v in values if abs(v) <= largest]


def _scale_and_precision(type_: sa.Numeric, dialect: str) -> tuple[int, int]:
    """The digits after the point and in all that a column of `type_` holds on `dialect`."""
    if type_.precision is None and type_.scale is None:
        # MySQL's DECIMAL is DECIMAL(10, 0); PostgreSQL's numeric any number (drawn with 6 decimals)
        scale = 0 if dialect == "mysql" else 6
        precision = 10 if dialect == "mysql" else UNBOUNDED_DIGITS + scale
    else:
        scale = type_.scale or 0
        precision = type_.precision or UNBOUNDED_DIGITS + scale
    if dialect == "sqlite":  # NUMERIC affinity: a double, whatever was declared
        precision = min(precision, DOUBLE_DIGITS)
        scale = min(scale, precision)
    return scale, precision


def _floats(type_: sa.Float, dialect: str) -> list[float]:
    values = [0.5, -0.25, 3.0, 2.0**24, -(2.0**24), 1.0e-30, 1.0e30]  # exact in single precision
    if _is_double(type_, dialect):
        values += [0.1, 1 / 3, 2.0**53, 1.0e-300, 1.7976931348623157e308, -1.7976931348623157e308]
    return values


def _is_double(type_: sa.Float, dialect: str) -> bool:
    if isinstance(type_, (sa.Double, mysql.DOUBLE)):
        return True
    if isinstance(type_, sa.REAL) or (type_.precision is not None and type_.precision <= 24):
        return dialect == "sqlite"  # SQLite's REAL is a double
    return dialect != "mysql"  # MySQL's FLOAT is single precision; PostgreSQL's float a double


# --- strings ---------------------------------------------------------------------------------


def _strings(type_: sa.String, dialect: str) -> list[str]:
    length = type_.length or UNBOUNDED_LENGTH
    full = ["x" * length, "ü" * length, "\U0001f600" * min(length, 100)]
    return [s for s in ["", *_STRINGS, *full] if len(s) <= length]


# --- dates and times -------------------------------------------------------------------------


def _dates(type_: sa.Date, dialect: str) -> list[dt.date]:
    first = dt.date(1000, 1, 1) if dialect == "mysql" else dt.date(1, 1, 1)
    return [dt.date(1970, 1, 1), dt.date(1969, 12, 31), dt.date(2000, 2, 29), dt.date(9999, 12, 31), first]


def _datetimes(type_: sa.DateTime, dialect: str) -> list[dt.datetime]:
    fraction = _keeps_fractions(type_, dialect)
    tick = dt.timedelta(microseconds=1 if fraction else 0)
    if dialect == "mysql" and isinstance(type_, sa.TIMESTAMP):
        # 1970-01-01 00:00:01 to 2038-01-19 03:14:07 UTC, a day inside either end for the
        # session's time zone
        first, last = dt.datetime(1970, 1, 2), dt.datetime(2038, 1, 18, 3, 14, 7)
    else:
        first = dt.datetime(1000 if dialect == "mysql" else 1, 1, 1)
        last = dt.datetime(9999, 12, 31, 23, 59, 59, 999999 if fraction else 0)
    values = [
        dt.datetime(1970, 1, 1),
        dt.datetime(2024, 6, 1, 12, 0, 0, 500000) if fraction else dt.datetime(2024, 6, 1, 12, 0, 1),
        dt.datetime(2024, 6, 1, 12, 0, 0) + tick,
        dt.datetime(1970, 1, 1) - (tick or dt.timedelta(seconds=1)),
        dt.datetime(2038, 1, 19, 3, 14, 8),  # 2**31 seconds
        last,
        first,
    ]
    return [v for v in values if first <= v <= last]


def _keeps_fractions(type_: sa.DateTime, dialect: str) -> bool:
    if dialect == "sqlite":
        return True  # SQLAlchemy writes microseconds into SQLite's text
    digits = getattr(type_, "fsp", None) if dialect == "mysql" else getattr(type_, "precision", None)
    if dialect == "mysql":
        return bool(digits)  # DATETIME and TIMESTAMP drop fractions unless given fsp
    return digits is None or digits > 0  # PostgreSQL keeps microseconds by default


_DRAWS = [
    (sa.Integer, _integers),
    (sa.Float, _floats),  # before Numeric: Float is a Numeric subclass
    (sa.Numeric, _decimals),
    (sa.String, _strings),
    (sa.DateTime, _datetimes),
    (sa.Date, _dates),
]
