"""The round-trip law, checked in the target database before any trigger is installed.

For every value `a` release N can store, `down(up(a))` must equal `a`, or release N would read
back something it never wrote. The database evaluates the compiled transforms on sample values of
the old columns' types (and on values already in the table), storing `up(a)` in the new column's
type on the way, exactly as the trigger would.
"""

from __future__ import annotations

import datetime as dt
import decimal
import itertools
from typing import Any

import sqlalchemy as sa

from .dialects.base import TriggerDialect
from .errors import AmbiguousNullError, RoundTripError, TransformError
from .expressions import is_distinct
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
    if group.down is None:
        return 0
    table = schema.table(group.table)
    per_column = [_values_for(conn, table, name) for name in group.old]
    checked = 0
    for values in itertools.islice(itertools.product(*per_column), MAX_COMBINATIONS):
        _check_one(conn, dialect, schema, group, dict(zip(group.old, values)))
        checked += 1
    return checked


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
        result = conn.execute(query).one()
    except sa.exc.DBAPIError as exc:
        conn.rollback()
        detail = f"evaluating a={_show(value)}: {str(exc.orig).splitlines()[0]}"
        raise TransformError(group.table, ", ".join(group.new), dialect.name, detail) from None
    if result.broken:
        up_values = tuple(result[: len(group.new)])
        back_values = tuple(result[len(group.new): len(group.new) + len(group.old)])
        raise RoundTripError(group.table, group.old, _show(value), _one(up_values), _one(back_values))


def _typed(dialect: TriggerDialect, value: Any, type_: sa.types.TypeEngine):
    """A sample value as a column of `type_` holds it; a NULL keeps the type too (PostgreSQL
    would read an untyped NULL as text)."""
    if value is None:
        return dialect.store_as(sa.null(), type_)
    return sa.type_coerce(sa.literal(value, type_), type_)


def _show(value: dict) -> Any:
    return next(iter(value.values())) if len(value) == 1 else value


def _one(values: tuple) -> Any:
    return values[0] if len(values) == 1 else values


# --- the NULL ambiguity (DESIGN 2) ------------------------------------------------------------

IDENTIFY_FIX = ("identify release N+1 (crossfade.identify_new_release(engine) and Change(..., "
                "new_release_identified=True), PostgreSQL and MySQL/MariaDB)")


def check_nulls(conn: sa.Connection, dialect: TriggerDialect, release_n: Schema, planned: Schema,
                group: SyncGroup, final: dict[tuple[str, str], sa.Column], identified: bool) -> None:
    """Raise AmbiguousNullError where release N+1's NULL in the group's new columns would be
    refused or lost. Checked only where release N+1 may write NULL in every new column.

    - down(NULL) must fill each old column release N declares NOT NULL;
    - up(down(NULL)) must be NULL, or the backfill takes the row for one not derived yet;
    - without identification, a row release N+1 inserts with NULL must stay NULL: up() of what
      the old columns then hold (their server defaults) must be NULL.
    """
    columns = [final.get((group.table, name)) for name in group.new]
    if group.down is None or not all(c is not None and c.nullable for c in columns):
        return
    table = planned.table(group.table)
    nulls = sa.select(*[_typed(dialect, None, table.c[n].type).label(n) for n in group.new]).subquery("b")
    down = [dialect.store_as(e, table.c[n].type) for n, e in zip(group.old, group.down_exprs(nulls))]
    old_values = _evaluate(conn, dialect, group, down)
    _refuse_null_down(group, release_n, old_values)
    a = sa.select(*[e.label(n) for n, e in zip(group.old, down)]).subquery("a")
    back = _evaluate(conn, dialect, group, _stored_up(dialect, table, group, a))
    if any(v is not None for v in back):
        fix = f"make up() give NULL for down(NULL) = {_one(old_values)!r}, or declare {_names(group)} NOT NULL"
        raise AmbiguousNullError(group.table, group.new, f"up(down(NULL)) = {_one(back)!r}, so the backfill "
                                 "would write over it", fix)
    if not identified:
        _refuse_defaulted_insert(conn, dialect, release_n, table, group)


def _refuse_null_down(group: SyncGroup, release_n: Schema, old_values: tuple) -> None:
    source = release_n.table(group.table)
    for name, value in zip(group.old, old_values):
        if value is None and not source.c[name].nullable:
            raise AmbiguousNullError(
                group.table, group.new, f"down(NULL) gives NULL for {group.table}.{name}, which release N "
                "declares NOT NULL, so release N+1's NULL would be refused",
                f"make down() give a value for NULL (e.g. sa.func.coalesce), or declare {_names(group)} NOT NULL")


def _refuse_defaulted_insert(conn, dialect: TriggerDialect, release_n: Schema, table: sa.Table,
                             group: SyncGroup) -> None:
    """Release N+1 inserts a row with NULL new columns: the old ones take their server defaults
    (or NULL), and a trigger that cannot tell the writer derives B := up(A)."""
    source = release_n.table(group.table)
    defaults = [_server_default(source.c[n]) for n in group.old]
    a = sa.select(*[(sa.cast(d, source.c[n].type) if d is not None else _typed(dialect, None, source.c[n].type))
                    .label(n) for n, d in zip(group.old, defaults)]).subquery("a")
    derived = _evaluate(conn, dialect, group, _stored_up(dialect, table, group, a))
    if any(v is not None for v in derived):
        shown = {n: d.name for n, d in zip(group.old, defaults) if d is not None}
        raise AmbiguousNullError(
            group.table, group.new, f"a row it inserts gets {_one(tuple(shown.values())) if shown else 'NULL'} in "
            f"{', '.join(group.old)} and up() gives {_one(derived)!r}, which no trigger can tell from a row "
            "not derived yet", f"{IDENTIFY_FIX}, or declare {_names(group)} NOT NULL")


def _server_default(column: sa.Column):
    default = column.server_default
    if default is None or not hasattr(default, "arg"):
        return None
    arg = default.arg
    return sa.literal_column(arg.text if hasattr(arg, "text") else str(arg))


def _stored_up(dialect: TriggerDialect, table: sa.Table, group: SyncGroup, a) -> list:
    return [dialect.store_as(e, table.c[n].type) for n, e in zip(group.new, group.up_exprs(a))]


def _evaluate(conn, dialect: TriggerDialect, group: SyncGroup, exprs: list) -> tuple:
    try:
        return tuple(conn.execute(sa.select(*[e.label(f"v{i}") for i, e in enumerate(exprs)])).one())
    except sa.exc.DBAPIError as exc:
        conn.rollback()
        detail = f"evaluating NULL: {str(exc.orig).splitlines()[0]}"
        raise TransformError(group.table, ", ".join(group.new), dialect.name, detail) from None


def _names(group: SyncGroup) -> str:
    return ", ".join(f"{group.table}.{c}" for c in group.new)
