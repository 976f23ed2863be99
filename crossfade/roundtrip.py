"""The round-trip law, checked in the target database before any trigger is installed.

For every value `a` release N can store, `down(up(a))` must equal `a`, or release N would read
back something it never wrote. The database evaluates the compiled transforms, storing `up(a)` in
the new column's type on the way exactly as the trigger would, on three sets of values:
- sample values of the old columns' types;
- every row already in the table, with one set-based query per batch of keys (`check_rows`):
  the sync law must hold for each of them once the backfill derives its new columns;
- the edges of the old columns' declared types (crossfade.domain: a DECIMAL's smallest step and
  largest value, a string of the full length, a datetime's fraction of a second...), unless the
  group is marked lossy on purpose.
The transforms' literals are compiled into these queries as they are into the trigger bodies (the
values tried alone are parameters), and each string literal is first read back: a literal the
database reads otherwise (a backslash under other escaping rules) would hold the law on a value
nobody wrote. The first counter-example is named before any DDL.
"""

from __future__ import annotations

import datetime as dt
import decimal
import itertools
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql import visitors
from sqlalchemy.sql.elements import BindParameter

from .dialects.base import TriggerDialect
from .domain import edge_values
from .errors import AmbiguousNullError, ExistingRowsError, RoundTripError, TransformError
from .expressions import bound, for_column, is_distinct
from .schema import Schema
from .sync import SyncGroup
from .transforms import blind_conversions, zone_aware

MAX_COMBINATIONS = 200
ROWS_PER_BATCH = 50_000  # existing rows checked per query, so no read runs for long on a big table
ROWS_SHOWN = 3  # keys of broken rows named in the refusal
LOSSY_HINT = ("a value the old column's declared type can hold; widen the new column or change the "
              "transforms, or pass lossy=True to the op if losing it is on purpose")

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
    """Raise RoundTripError on the first counter-example (ExistingRowsError for rows in the
    table); return how many values and rows were checked."""
    table = schema.table(group.table)
    check_literals(conn, dialect, group, table)
    if group.down is None:
        return 0
    _refuse_blind_conversions(conn, dialect, table, group)
    per_column = [sample_values(table.c[name]) for name in group.old]
    checked = 0
    for values in itertools.islice(itertools.product(*per_column), MAX_COMBINATIONS):
        _check_one(conn, dialect, schema, group, dict(zip(group.old, values)))
        checked += 1
    checked += check_rows(conn, dialect, schema, group)
    if not group.lossy:
        checked += _check_domain(conn, dialect, schema, group, per_column)
    return checked


def _refuse_blind_conversions(conn, dialect: TriggerDialect, table: sa.Table, group: SyncGroup) -> None:
    """A from_epoch_* nested in another expression cannot see that the column it fills holds an
    instant; it would store the writer's wall time, which no check in crossfade's own session shows."""
    exprs = zip((*group.new, *group.old), (*group.up_exprs(table), *group.down_exprs(table)))
    for name, expr in exprs:
        blind = blind_conversions(expr)
        if blind and zone_aware(table.c[name].type, conn.dialect):
            raise TransformError(group.table, name, dialect.name,
                                 f"{blind[0]} is nested in another expression, so it cannot see that {name} "
                                 f"is zone-aware ({table.c[name].type}); return it as the transform's whole "
                                 "value, or write the zone-aware SQL with per_dialect")


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



def _check_domain(conn, dialect: TriggerDialect, schema: Schema, group: SyncGroup, samples: list) -> int:
    """The edges of each old column's type, one column at a time (the others at a sample value)."""
    table = schema.table(group.table)
    fixed = {name: next((v for v in values if v is not None), None) for name, values in zip(group.old, samples)}
    checked = 0
    for name in group.old:
        for edge in edge_values(table.c[name].type, dialect.name):
            _check_one(conn, dialect, schema, group, {**fixed, name: edge}, note=LOSSY_HINT)
            checked += 1
    return checked


def _round_trip(dialect: TriggerDialect, table: sa.Table, group: SyncGroup, a) -> sa.Subquery:
    """`a` (a FROM holding the old columns) with `up(a)` stored in the new columns' types."""
    ups = group.up_exprs(a)
    stored = [dialect.store_as(for_column(e, table.c[n].type), table.c[n].type) for n, e in zip(group.new, ups)]
    return sa.select(*a.c, *[e.label(n) for n, e in zip(group.new, stored)]).subquery("b")


def _check_one(conn, dialect: TriggerDialect, schema: Schema, group: SyncGroup, value: dict, note: str = "") -> None:
    table = schema.table(group.table)
    a = sa.select(*[_typed(dialect, v, table.c[n].type).label(n) for n, v in value.items()]).subquery("a")
    b = _round_trip(dialect, table, group, a)
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
        detail = f"evaluating a={_show(value)}: {str(exc.orig).splitlines()[0]}" + (f" ({note})" if note else "")
        raise TransformError(group.table, ", ".join(group.new), dialect.name, detail) from None
    if result[-1]:
        up_values = tuple(result[: len(group.new)])
        back_values = tuple(result[len(group.new): len(group.new) + len(group.old)])
        raise RoundTripError(group.table, group.old, _show(value), _one(up_values), _one(back_values), note)


# --- the rows already in the table -------------------------------------------------------------

def check_rows(conn: sa.Connection, dialect: TriggerDialect, schema: Schema, group: SyncGroup,
               batch: int = ROWS_PER_BATCH) -> int:
    """Raise ExistingRowsError when rows of the table break the round-trip law, counting them
    and naming a few; return how many rows were read. One query per `batch` keys (two with a
    key of several columns: the batch's end is found first)."""
    if group.down is None:
        return 0
    table = schema.table(group.table)
    key = dialect.batch_key(table)
    broken, first, read, last = 0, [], 0, None
    while True:
        if len(key) == 1:  # the batch is the next `batch` keys; its end comes back as max(key)
            where, limit, bound = _after(key, last), batch, None
        else:
            bound = _batch_end(conn, table, key, last, batch)
            where, limit = sa.and_(_after(key, last), _up_to(key, bound)), None
        total, count, end, rows = _broken_rows(conn, dialect, table, group, key, where, limit,
                                               want=ROWS_SHOWN - len(first))
        read, broken, first = read + total, broken + count, first + rows
        done = bound is None if len(key) > 1 else total < batch
        if done:
            break
        last = bound if len(key) > 1 else (end,)
    if broken:
        keys = [row[: len(key)] for row in first]
        old, up, back = _split(first[0][len(key):], group)
        raise ExistingRowsError(group.table, group.old, broken, [_one(tuple(k)) for k in keys], old, up, back)
    return read


def _batch_end(conn, table: sa.Table, key: list, last, batch: int):
    """The key of the `batch`-th row after `last`; None when fewer rows remain."""
    query = (sa.select(*key).select_from(table).where(_after(key, last))
             .order_by(*key).offset(batch - 1).limit(1))
    row = conn.execute(query).first()
    return None if row is None else tuple(row)


def _after(key: list, last) -> sa.ColumnElement:
    return sa.true() if last is None else sa.tuple_(*key) > sa.tuple_(*last)


def _up_to(key: list, bound) -> sa.ColumnElement:
    return sa.true() if bound is None else sa.tuple_(*key) <= sa.tuple_(*bound)


def _broken_rows(conn, dialect: TriggerDialect, table: sa.Table, group: SyncGroup, key: list,
                 where: sa.ColumnElement, limit: int | None, want: int) -> tuple[int, int, Any, list]:
    """Of the rows `where` picks (the first `limit` by key): how many, how many break the law,
    the largest first key column, and the first `want` broken ones as (key..., old..., up..., back...)."""
    keys = [k.label(f"crossfade_key_{i}") for i, k in enumerate(key)]
    rows = sa.select(*keys, *[table.c[n] for n in group.old]).select_from(table).where(where)
    a = (rows if limit is None else rows.order_by(*key).limit(limit)).subquery("a")
    b = _round_trip(dialect, table, group, a)
    back = group.down_exprs(b)
    broken = sa.or_(*[is_distinct(b.c[n], e) for n, e in zip(group.old, back)])
    key_columns = [b.c[k.name] for k in keys]
    total, count, end = conn.execute(sa.select(sa.func.count(), sa.func.count(sa.case((broken, 1))),
                                               sa.func.max(key_columns[0])).select_from(b)).one()
    if not count or not want:
        return total, count, end, []
    shown = (sa.select(*key_columns, *[b.c[n] for n in group.old], *[b.c[n] for n in group.new],
                       *[e.label(f"back_{i}") for i, e in enumerate(back)])
             .where(broken).order_by(*key_columns).limit(want))
    return total, count, end, [tuple(r) for r in conn.execute(shown)]


def _split(values: Sequence, group: SyncGroup) -> tuple:
    n_old, n_new = len(group.old), len(group.new)
    old = dict(zip(group.old, values[:n_old]))
    return _show(old), _one(tuple(values[n_old:n_old + n_new])), _one(tuple(values[n_old + n_new:]))


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
