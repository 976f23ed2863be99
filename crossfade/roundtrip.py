"""The round-trip law, checked in the target database before any trigger is installed.

For every value `a` release N can store, `down(up(a))` must equal `a`, or release N would read
back something it never wrote. The database evaluates the compiled transforms on sample values of
the old columns' types (and on values already in the table), storing `up(a)` in the new column's
type on the way, exactly as the trigger would: the transforms' literals are compiled into the
query as they are into the trigger bodies (the sample values alone are parameters), and each
string literal is first read back, since a literal the database reads otherwise (a backslash under
other escaping rules) holds the law on a value nobody wrote.
"""

from __future__ import annotations

import datetime as dt
import decimal
import itertools
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql import visitors
from sqlalchemy.sql.elements import BindParameter

from .dialects.base import TriggerDialect
from .errors import RoundTripError, TransformError
from .expressions import bound, is_distinct
from .schema import Schema
from .sync import SyncGroup

MAX_COMBINATIONS = 200
EXISTING_VALUES = 50

_STRINGS = ["", "a", "public", "private", "shared", "community", "Hello, World", "it's", "üñî", "0", " x "]


def sample_values(column: sa.Column) -> list[Any]:
    """Representative values of a column's type, NULL included when the column allows it."""
    values = _type_samples(column.type)
    return values + [None] if column.nullable else values


def _type_samples(type_: sa.types.TypeEngine) -> list[Any]:
    if _is_mysql_boolean(type_):
        return [False, True]
    if isinstance(type_, sa.Enum) and type_.enums:
        return list(type_.enums)
    try:
        python_type = type_.python_type
    except NotImplementedError:
        return []
    if python_type is bool:
        return [False, True]
    if python_type is int:
        small = isinstance(type_, sa.SmallInteger)
        return [0, 1, -1, 42] + ([] if small else [2**31 - 1, -(2**31)])
    if python_type is decimal.Decimal:
        scale = getattr(type_, "scale", None) or 0
        return [decimal.Decimal(v).quantize(decimal.Decimal(1).scaleb(-scale)) for v in ("0", "1.5", "-2.25", "1000")]
    if python_type is float:
        return [0.0, 1.5, -2.25, 1e6]
    if python_type is str:
        length = getattr(type_, "length", None)
        return list(dict.fromkeys(s[:length] if length else s for s in _STRINGS))
    if python_type is dt.datetime:
        return [dt.datetime(2000, 1, 1), dt.datetime(2026, 11, 25, 13, 45, 30)]
    if python_type is dt.date:
        return [dt.date(2000, 1, 1), dt.date(2026, 11, 25)]
    return []


def _is_mysql_boolean(type_: sa.types.TypeEngine) -> bool:
    # MySQL has no boolean type: SQLAlchemy's Boolean is TINYINT(1), and reflects as such.
    return type(type_).__name__ == "TINYINT" and getattr(type_, "display_width", None) == 1


def check_group(conn: sa.Connection, dialect: TriggerDialect, schema: Schema, group: SyncGroup) -> int:
    """Raise RoundTripError on the first counter-example; return how many values were checked."""
    table = schema.table(group.table)
    check_literals(conn, dialect, group, table)
    if group.down is None:
        return 0
    per_column = [_values_for(conn, table, name) for name in group.old]
    checked = 0
    for values in itertools.islice(itertools.product(*per_column), MAX_COMBINATIONS):
        _check_one(conn, dialect, schema, group, dict(zip(group.old, values)))
        checked += 1
    return checked


def check_literals(conn: sa.Connection, dialect: TriggerDialect, group: SyncGroup, table: sa.Table) -> None:
    """Every string the transforms hold reads back from the database as Python holds it, rendered
    exactly as the trigger bodies hold it: a literal the database reads otherwise (a backslash
    under other escaping rules) would make the round-trip law hold on the wrong value."""
    exprs = list(group.up_exprs(table)) + (list(group.down_exprs(table)) if group.down is not None else [])
    literals = list({id(b): b for e in exprs for b in visitors.iterate(e)
                     if isinstance(b, BindParameter) and isinstance(b.effective_value, str)
                     and isinstance(b.type, sa.String)}.values())
    if not literals:
        return
    try:
        [found] = dialect.rows(conn, sa.select(*[b.label(f"l{i}") for i, b in enumerate(literals)]))
    except sa.exc.DBAPIError as exc:
        conn.rollback()
        detail = f"reading its literals back: {str(exc.orig).splitlines()[0]}"
        raise TransformError(group.table, ", ".join(group.new), dialect.name, detail) from None
    for bind, read in zip(literals, found):
        if read != bind.effective_value:
            detail = f"the literal {bind.effective_value!r} reads back as {read!r}"
            raise TransformError(group.table, ", ".join(group.new), dialect.name, detail)


def _values_for(conn: sa.Connection, table: sa.Table, name: str) -> list[Any]:
    column = table.c[name]
    # A reflected MySQL DOUBLE reads as a Decimal of 10 places, a value the column never held.
    read = sa.type_coerce(column, sa.Float()) if isinstance(column.type, sa.Float) else column
    existing = conn.execute(sa.select(read).distinct().where(column.is_not(None))
                            .limit(EXISTING_VALUES)).scalars().all()
    return list(dict.fromkeys([*sample_values(column), *existing]))


def _check_one(conn, dialect: TriggerDialect, schema: Schema, group: SyncGroup, value: dict) -> None:
    table = schema.table(group.table)
    a = sa.select(*[_typed(dialect, v, table.c[n].type).label(n) for n, v in value.items()]).subquery("a")
    stored = [dialect.store_as(e, table.c[n].type) for n, e in zip(group.new, group.up_exprs(a))]
    b = sa.select(*[a.c[n] for n in group.old], *[e.label(n) for n, e in zip(group.new, stored)]).subquery("b")
    back = group.down_exprs(b)
    query = sa.select(
        *[b.c[n] for n in group.new],
        *[e.label(f"back_{i}") for i, e in enumerate(back)],
        sa.or_(*[is_distinct(b.c[n], e) for n, e in zip(group.old, back)]).label("broken"),
    )
    try:
        # Compiled as the trigger bodies are: a literal rendered wrongly for some session fails here too.
        [result] = dialect.rows(conn, query)
    except sa.exc.DBAPIError as exc:
        conn.rollback()
        detail = f"evaluating a={_show(value)}: {str(exc.orig).splitlines()[0]}"
        raise TransformError(group.table, ", ".join(group.new), dialect.name, detail) from None
    if result[-1]:
        up_values = tuple(result[: len(group.new)])
        back_values = tuple(result[len(group.new): len(group.new) + len(group.old)])
        raise RoundTripError(group.table, group.old, _show(value), _one(up_values), _one(back_values))


def _typed(dialect: TriggerDialect, value: Any, type_: sa.types.TypeEngine):
    """A sample value as a column of `type_` holds it; a NULL keeps the type too (PostgreSQL
    would read an untyped NULL as text)."""
    if value is None:
        return dialect.store_as(sa.null(), type_)
    return sa.type_coerce(bound(value, type_), type_)


def _show(value: dict) -> Any:
    return next(iter(value.values())) if len(value) == 1 else value


def _one(values: tuple) -> Any:
    return values[0] if len(values) == 1 else values
