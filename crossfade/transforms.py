"""Portable transforms: conversions whose SQL differs per dialect, written once.

Each helper takes SQLAlchemy expressions (the columns crossfade hands to `up` and `down`) and
returns an expression that compiles on PostgreSQL, MySQL/MariaDB and SQLite, in trigger bodies
(values inlined) and in ordinary statements (values bound) alike. Pairs are made for
`ops.replace_column`, `ops.split_column` and `ops.merge_columns`; each docstring says which
values round-trip, and crossfade's round-trip check proves `down(up(a)) = a` in the database
before expand installs anything::

    ops.replace_column("events", "happened_at", sa.Column("happened_us", sa.BigInteger),
                       up=transforms.epoch_micros, down=transforms.from_epoch_micros)
    ops.split_column("users", "full_name", [sa.Column("first", sa.String(40)), sa.Column("rest", sa.String(80))],
                     up=lambda s: (transforms.before(s, " "), transforms.after(s, " ")),
                     down=lambda first, rest: transforms.join(" ", first, rest))

Where no portable form exists, `per_dialect` takes raw SQL per dialect. The helpers whose SQL
differs are built with it too, so the SQL each dialect runs sits side by side below.
"""

from __future__ import annotations

import decimal
import string
from typing import Any, ClassVar

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import coercions, roles, visitors
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.visitors import InternalTraversal

from .expressions import ForTarget, is_distinct

__all__ = [
    "after",
    "before",
    "bool_to_choice",
    "choice_to_bool",
    "epoch_micros",
    "epoch_seconds",
    "from_epoch_micros",
    "from_epoch_seconds",
    "join",
    "lower",
    "per_dialect",
    "scaled",
    "unscaled",
    "upper",
    "zone_aware",
]

# The dialect names per_dialect knows; MariaDB (dialect name "mariadb" with mariadb://) runs MySQL's SQL.
_DIALECTS = {"postgresql": "postgresql", "mysql": "mysql", "mariadb": "mysql", "sqlite": "sqlite"}

# A template as (literal text, argument index or None) pieces, so it hashes into a cache key.
_Template = tuple[tuple[str, "int | None"], ...]


# --- per-dialect SQL ---------------------------------------------------------------------

class _DialectSQL(ColumnElement):
    """Raw SQL for the compiling dialect, its placeholders replaced by the compiled arguments."""

    inherit_cache = True
    _traverse_internals: ClassVar[list] = [
        ("name", InternalTraversal.dp_string),
        ("templates", InternalTraversal.dp_plain_obj),
        ("args", InternalTraversal.dp_clauseelement_tuple),
        ("type", InternalTraversal.dp_type),
    ]

    def __init__(self, name: str, templates: tuple[tuple[str, _Template], ...], args: tuple, type_):
        self.name = name
        self.templates = templates
        self.args = args
        self.type = type_

    @property
    def _from_objects(self) -> list:
        # The tables the arguments read, so a SELECT of the transform alone has its FROM.
        return [source for arg in self.args for source in arg._from_objects]


@compiles(_DialectSQL)
def _render(element: _DialectSQL, compiler, **kw) -> str:
    dialect = _DIALECTS.get(compiler.dialect.name, compiler.dialect.name)
    templates = dict(element.templates)
    template = templates.get(dialect, templates.get("default"))
    if template is None:
        raise sa.exc.CompileError(
            f"{element.name} has no SQL for {dialect}: give {dialect}=... or a default")
    # Each argument compiled once, in parentheses where it is an operation, so `{0} * 2` keeps
    # its meaning; the template's own text gets the escaping SQLAlchemy gives text() ('%').
    args = [compiler.process(arg.self_group(), **kw) for arg in element.args]
    sql = "".join(compiler.post_process_text(text) + ("" if index is None else args[index])
                  for text, index in template)
    return f"({sql})"


class PerDialect:
    """A transform written as raw SQL per dialect; call it with the argument expressions."""

    def __init__(self, templates: dict[str, str], type_, name: str = "per_dialect"):
        if not templates:
            raise ValueError(f"{name}: give SQL for at least one dialect or a default")
        self.name = name
        self.type = sa.types.to_instance(type_)
        self.templates = tuple(sorted((dialect, _parse(sql, name)) for dialect, sql in templates.items()))
        self.arity = 1 + max((i for _, t in self.templates for _, i in t if i is not None), default=-1)

    def __call__(self, *args: Any) -> ColumnElement:
        if len(args) < self.arity:
            raise TypeError(f"{self.name} uses {{{self.arity - 1}}} but was given {len(args)} argument(s)")
        exprs = tuple(coercions.expect(roles.ExpressionElementRole, arg) for arg in args)
        return _DialectSQL(self.name, self.templates, exprs, self.type)

    def __repr__(self) -> str:
        return f"<{self.name}: {', '.join(d for d, _ in self.templates)}>"


def per_dialect(default: str | None = None, *, type_, postgresql: str | None = None,
                mysql: str | None = None, sqlite: str | None = None) -> PerDialect:
    """A transform as raw SQL per dialect, for a conversion with no portable form.

    `{0}`, `{1}`, ... stand for the arguments the transform is called with (the columns `up` or
    `down` receive), compiled by SQLAlchemy for the dialect, so values are never formatted into
    the SQL; write literal braces as `{{` and `}}`. `mysql` serves MariaDB too; `default` any
    dialect without its own SQL. `type_` is the result's type. Compiling for a dialect with
    neither fails, which expand reports as a TransformError before any DDL; the SQL is then
    checked by the round-trip law like any other transform::

        to_days = per_dialect(postgresql="{0} - DATE '1970-01-01'",
                              mysql="TO_DAYS({0}) - 719528",
                              sqlite="CAST(julianday({0}) - 2440587.5 AS INTEGER)", type_=sa.Integer)
        ops.replace_column("t", "day", sa.Column("day_number", sa.Integer), up=to_days, down=...)
    """
    given = {"default": default, "postgresql": postgresql, "mysql": mysql, "sqlite": sqlite}
    return PerDialect({d: sql for d, sql in given.items() if sql is not None}, type_)


def _parse(sql: str, name: str) -> _Template:
    try:
        parsed = list(string.Formatter().parse(sql))
    except ValueError as exc:
        raise ValueError(f"{name} SQL {sql!r}: {exc} (write literal braces as {{{{ and }}}})") from None
    pieces = []
    for text, field, spec, conversion in parsed:
        if field is not None and (not field.isdigit() or spec or conversion):
            raise ValueError(f"{name} SQL {sql!r}: placeholders are {{0}}, {{1}}, ..., not {{{field}}}")
        pieces.append((text, None if field is None else int(field)))
    return tuple(pieces)


def _sql(name: str, type_, **templates: str) -> PerDialect:
    return PerDialect(templates, type_, name)


# --- datetime <-> integer epoch ----------------------------------------------------------
# Every form below is exact whatever the writing session's time zone (DESIGN section 2: a trigger
# body must not depend on the writer's settings). Two kinds of column:
# - Naive (PostgreSQL `timestamp`, MySQL DATETIME, SQLite's text): a UTC wall time, read
#   nominally. PostgreSQL's EXTRACT(EPOCH) reads `timestamp` nominally; MySQL counts with
#   TIMESTAMPDIFF/TIMESTAMPADD (UNIX_TIMESTAMP / FROM_UNIXTIME would convert through the session's
#   zone); SQLite's date functions work in UTC unless told 'localtime'. On SQLite a datetime is
#   the text SQLAlchemy stores ('YYYY-MM-DD HH:MM:SS.ffffff'); the conversions back produce
#   exactly that, and read and write the fraction as text (SQLite rounds to milliseconds).
# - Zone-aware (PostgreSQL `timestamptz`, MySQL TIMESTAMP): an instant. EXTRACT(EPOCH) of a
#   timestamptz is the instant's; the way back starts from TIMESTAMPTZ '1970-01-01 00:00:00+00',
#   so the session's TimeZone never takes part. A MySQL TIMESTAMP is shown to every session in its
#   own time_zone: UNIX_TIMESTAMP reads it back to the instant and FROM_UNIXTIME gives the
#   session's wall time that the column converts back, so both directions undo the session's zone.
# The helpers read the column's type (the datetime argument's, or for the conversions to a
# datetime the target column's, which the sync group hands over) to pick the form.

_MICROS_SQLITE_FRACTION = "((({0} % 1000000) + 1000000) % 1000000)"  # the non-negative remainder

_epoch_seconds = _sql(
    "epoch_seconds", sa.BigInteger,
    postgresql="CAST(floor(EXTRACT(EPOCH FROM {0})) AS BIGINT)",
    # Without its fraction first: TIMESTAMPDIFF truncates towards zero, the epoch floors.
    mysql="TIMESTAMPDIFF(SECOND, TIMESTAMP '1970-01-01 00:00:00', {0} - INTERVAL MICROSECOND({0}) MICROSECOND)",
    sqlite="CAST(strftime('%s', substr({0}, 1, 19)) AS INTEGER)",
)

_from_epoch_seconds = _sql(
    "from_epoch_seconds", sa.DateTime,
    postgresql="TIMESTAMP '1970-01-01 00:00:00' + {0} * INTERVAL '1 second'",
    mysql="TIMESTAMPADD(SECOND, {0}, TIMESTAMP '1970-01-01 00:00:00')",
    sqlite="strftime('%Y-%m-%d %H:%M:%S', {0}, 'unixepoch') || '.000000'",
)

_epoch_micros = _sql(
    "epoch_micros", sa.BigInteger,
    postgresql="CAST(EXTRACT(EPOCH FROM {0}) * 1000000 AS BIGINT)",  # numeric, exact (PostgreSQL 14+)
    mysql="TIMESTAMPDIFF(MICROSECOND, TIMESTAMP '1970-01-01 00:00:00', {0})",
    sqlite="CAST(strftime('%s', substr({0}, 1, 19)) AS INTEGER) * 1000000"
           " + CAST(substr(substr({0}, 21) || '000000', 1, 6) AS INTEGER)",
)

_from_epoch_micros = _sql(
    "from_epoch_micros", sa.DateTime,
    # n * INTERVAL goes through a double, which cannot count every microsecond up to 9999;
    # the whole seconds and the remaining microseconds each fit one exactly.
    postgresql="TIMESTAMP '1970-01-01 00:00:00' + div({0}, 1000000) * INTERVAL '1 second'"
               " + mod({0}, 1000000) * INTERVAL '1 microsecond'",
    mysql="TIMESTAMPADD(MICROSECOND, {0}, TIMESTAMP '1970-01-01 00:00:00.000000')",
    sqlite=f"strftime('%Y-%m-%d %H:%M:%S', ({{0}} - {_MICROS_SQLITE_FRACTION}) / 1000000, 'unixepoch')"
           f" || '.' || substr('00000' || {_MICROS_SQLITE_FRACTION}, -6)",
)

# The zone-aware forms; SQLite has no zone-aware column, so it never compiles these.
_instant_epoch_seconds = _sql(
    "epoch_seconds", sa.BigInteger,
    postgresql="CAST(floor(EXTRACT(EPOCH FROM {0})) AS BIGINT)",
    mysql="CAST(FLOOR(UNIX_TIMESTAMP({0})) AS SIGNED)",
)

_instant_from_epoch_seconds = _sql(
    "from_epoch_seconds", sa.DateTime(timezone=True),
    postgresql="TIMESTAMPTZ '1970-01-01 00:00:00+00' + {0} * INTERVAL '1 second'",
    mysql="FROM_UNIXTIME({0})",
)

_instant_epoch_micros = _sql(
    "epoch_micros", sa.BigInteger,
    postgresql="CAST(EXTRACT(EPOCH FROM {0}) * 1000000 AS BIGINT)",
    mysql="CAST(UNIX_TIMESTAMP({0}) * 1000000 AS SIGNED)",  # a DECIMAL with the column's fraction
)

_instant_from_epoch_micros = _sql(
    "from_epoch_micros", sa.DateTime(timezone=True),
    postgresql="TIMESTAMPTZ '1970-01-01 00:00:00+00' + div({0}, 1000000) * INTERVAL '1 second'"
               " + mod({0}, 1000000) * INTERVAL '1 microsecond'",
    # A TIMESTAMP holds no instant before 1970, where FROM_UNIXTIME gives NULL anyway, so
    # DIV and MOD (which truncate) only meet non-negative numbers that matter.
    mysql="FROM_UNIXTIME({0} DIV 1000000) + INTERVAL ({0} MOD 1000000) MICROSECOND",
)


def zone_aware(type_: sa.types.TypeEngine, dialect) -> bool:
    """True when a column of `type_` holds an instant in `dialect` (PostgreSQL timestamptz, MySQL
    TIMESTAMP), which every session reads and writes in its own time zone."""
    impl = type_.dialect_impl(dialect)
    if dialect.name == "postgresql":
        return isinstance(impl, sa.DateTime) and bool(impl.timezone)
    if dialect.name in ("mysql", "mariadb"):
        return isinstance(impl, sa.TIMESTAMP)
    return False


class _ByZone(ForTarget):
    """The naive or the zone-aware form of a conversion, picked when compiling by the datetime
    column's type (`column_type`): the argument's for a datetime in, the target's for one out."""

    inherit_cache = True
    _traverse_internals: ClassVar[list] = [
        ("naive", InternalTraversal.dp_clauseelement),
        ("aware", InternalTraversal.dp_clauseelement),
        ("column_type", InternalTraversal.dp_type),
        ("type", InternalTraversal.dp_type),
    ]

    def __init__(self, naive: ColumnElement, aware: ColumnElement, column_type, type_, targeted: bool,
                 resolved: bool = True, coarser: tuple | None = None):
        self.naive, self.aware, self.column_type, self.type = naive, aware, column_type, type_
        self.targeted = targeted  # True for a datetime out: the target column decides
        self.resolved = resolved  # False until a datetime out has seen its target column
        # For microseconds out: (naive maker, aware maker, n), to floor n to what a column with
        # fewer fractional digits holds (see _render_by_zone).
        self.coarser = coarser

    @property
    def _from_objects(self) -> list:
        return self.naive._from_objects

    def for_target(self, type_: sa.types.TypeEngine) -> ColumnElement:
        if not self.targeted:
            return self
        return _ByZone(self.naive, self.aware, type_, type_, targeted=True, coarser=self.coarser)

    @property
    def name(self) -> str:
        return self.naive.name


@compiles(_ByZone)
def _render_by_zone(element: _ByZone, compiler, **kw) -> str:
    aware = zone_aware(element.column_type, compiler.dialect)
    # Only once it has seen its target column: alone (a SELECT of it) it gives every microsecond.
    digits = _fraction_digits(element.column_type, compiler.dialect) if element.coarser and element.resolved else 6
    if digits < 6:
        # A column with fewer fractional digits (MySQL's plain DATETIME, PostgreSQL's
        # timestamp(0)) truncates or rounds what it stores, per database and version; floored here
        # to what it holds, the value read back is the one the sync law compares (DESIGN 2).
        naive, instant, n = element.coarser
        floored = _floored(n, sa.literal(10 ** (6 - digits), sa.BigInteger))
        return compiler.process((instant if aware else naive)(floored), **kw)
    return compiler.process(element.aware if aware else element.naive, **kw)


# n rounded down to a multiple of {1}, before 1970 too (every database's remainder takes n's sign).
_floored = _sql(
    "floored", sa.BigInteger,
    postgresql="{0} - mod(mod({0}, {1}) + {1}, {1})",
    mysql="{0} - MOD(MOD({0}, {1}) + {1}, {1})",
    sqlite="{0} - ((({0} % {1}) + {1}) % {1})",
)


def _fraction_digits(type_: sa.types.TypeEngine, dialect) -> int:
    """The fractional-second digits a datetime column of `type_` keeps in `dialect`: MySQL's
    DATETIME / TIMESTAMP its fsp (none when not given), PostgreSQL's timestamp its precision
    (6 when not given), SQLite's text all six."""
    # The declared type first: a driver's implementation type (psycopg's) may not carry it.
    impl = type_.dialect_impl(dialect)
    if dialect.name in ("mysql", "mariadb"):
        return getattr(type_, "fsp", None) or getattr(impl, "fsp", None) or 0
    if dialect.name == "postgresql":
        precision = getattr(type_, "precision", None)
        precision = getattr(impl, "precision", None) if precision is None else precision
        return 6 if precision is None else precision
    return 6


def _to_number(naive: PerDialect, aware: PerDialect, dt: ColumnElement) -> ColumnElement:
    dt = coercions.expect(roles.ExpressionElementRole, dt)
    return _ByZone(naive(dt), aware(dt), dt.type, naive.type, targeted=False)


def _to_datetime(naive: PerDialect, aware: PerDialect, n: ColumnElement, micros: bool = False) -> ColumnElement:
    n = coercions.expect(roles.ExpressionElementRole, n)
    return _ByZone(naive(n), aware(n), naive.type, naive.type, targeted=True, resolved=False,
                   coarser=(naive, aware, n) if micros else None)


def blind_conversions(expr: ColumnElement) -> list[str]:
    """The conversions to a datetime inside `expr` that never saw the column they are stored in
    (from_epoch_seconds nested in another expression): they take the naive form."""
    return [e.name for e in visitors.iterate(expr) if isinstance(e, _ByZone) and not e.resolved]


def epoch_seconds(dt: ColumnElement) -> ColumnElement:
    """Seconds since 1970-01-01 00:00:00 UTC, floored (1969-12-31 23:59:59.5 gives -1): of the
    instant for a zone-aware column (PostgreSQL timestamptz, MySQL TIMESTAMP), of the UTC wall time
    for a naive one; the writer's session time zone never counts. Round-trips through
    `from_epoch_seconds` for datetimes without fractional seconds; the round-trip check refuses a
    column holding any (use `epoch_micros`)."""
    return _to_number(_epoch_seconds, _instant_epoch_seconds, dt)


def from_epoch_seconds(n: ColumnElement) -> ColumnElement:
    """The datetime `n` seconds after 1970-01-01 00:00:00 UTC, as the column it is stored in holds
    it: that instant in a zone-aware column, its UTC wall time in a naive one. Round-trips through
    `epoch_seconds` for every integer in the column's range (a MySQL TIMESTAMP's starts at 1970).
    Used inside another expression, it cannot see the column and gives the naive form."""
    return _to_datetime(_from_epoch_seconds, _instant_from_epoch_seconds, n)


def epoch_micros(dt: ColumnElement) -> ColumnElement:
    """Microseconds since 1970-01-01 00:00:00 UTC, zone-aware or naive as `epoch_seconds`.
    Round-trips through `from_epoch_micros` for every datetime the column stores (MySQL:
    DATETIME(6) / TIMESTAMP(6) to keep microseconds; a plain one has none to lose)."""
    return _to_number(_epoch_micros, _instant_epoch_micros, dt)


def from_epoch_micros(n: ColumnElement) -> ColumnElement:
    """The datetime `n` microseconds after 1970-01-01 00:00:00 UTC, as `from_epoch_seconds`.
    Round-trips through `epoch_micros` for every integer in the column's range, when the column
    keeps microseconds. Into a column that keeps fewer fractional digits (MySQL's plain DATETIME
    keeps none) it gives the latest time the column holds at or before `n`: release N reads
    Keystone's whole second while release N+1 keeps its microseconds."""
    return _to_datetime(_from_epoch_micros, _instant_from_epoch_micros, n, micros=True)


# --- boolean <-> enumerated string -------------------------------------------------------

def bool_to_choice(b: ColumnElement, true_value: str, false_value: str) -> ColumnElement:
    """`true_value` for true, `false_value` for false, NULL for NULL (is_public -> 'public' /
    'shared'). Round-trips through `choice_to_bool(s, true_value)` for every boolean and NULL."""
    if true_value == false_value:
        raise ValueError("bool_to_choice: true_value and false_value must differ")
    return sa.case((b, sa.literal(true_value, sa.String)), (sa.not_(b), sa.literal(false_value, sa.String)))


def choice_to_bool(s: ColumnElement, true_value: str) -> ColumnElement:
    """True for exactly `true_value` (case and trailing spaces count, on MySQL too), false for
    any other string, NULL for NULL. Inverse of `bool_to_choice`, not the other way round:
    'community' and 'shared' both become false, so only true_value, false_value and NULL survive
    choice_to_bool then bool_to_choice (the round-trip check refuses that direction)."""
    return sa.type_coerce(
        sa.case((s.is_(None), sa.null()), (is_distinct(s, sa.literal(true_value, sa.String)), sa.false()),
                else_=sa.true()),
        sa.Boolean)


# --- strings: join and split on a separator ----------------------------------------------

def join(sep: str, *parts: ColumnElement | str) -> ColumnElement:
    """The parts joined with `sep`, skipping NULL parts (not empty ones); NULL when every part
    is NULL. With `before` and `after` it round-trips every string and NULL:
    join(sep, before(s, sep), after(s, sep)) = s."""
    _check_separator(sep)
    if not parts:
        raise TypeError("join needs at least one part")
    exprs = [coercions.expect(roles.ExpressionElementRole, p, type_=sa.String) for p in parts]
    # Each present part prefixed with sep, then the first sep cut off: NULLs drop out.
    prefixed = [sa.func.coalesce(sa.literal(sep, sa.String).concat(e), sa.literal("", sa.String)) for e in exprs]
    joined = prefixed[0]
    for p in prefixed[1:]:
        joined = joined.concat(p)
    return sa.case((sa.and_(*[e.is_(None) for e in exprs]), sa.null()),
                   else_=sa.func.substr(joined, len(sep) + 1, type_=sa.String))


def before(s: ColumnElement, sep: str) -> ColumnElement:
    """The part of `s` before the first `sep`; all of `s` when it has none; NULL for NULL."""
    position = _find(s, sep)
    return sa.case((position > 0, sa.func.substr(s, 1, position - 1, type_=sa.String)), else_=s)


def after(s: ColumnElement, sep: str) -> ColumnElement:
    """The part of `s` after the first `sep` (maybe ''); NULL when `s` has no `sep` or is NULL,
    which is what lets `join` give back a string without the separator unchanged."""
    position = _find(s, sep)
    return sa.case((position > 0, sa.func.substr(s, position + len(sep), type_=sa.String)))


_position = _sql(
    "position", sa.Integer,  # 1-based position of the first {1} in {0}, case-sensitive; 0 if none
    postgresql="strpos({0}, {1})",
    # LOCATE and INSTR follow the collation (case-insensitive by default); SUBSTRING_INDEX does not.
    mysql="IF(CHAR_LENGTH(SUBSTRING_INDEX({0}, {1}, 1)) < CHAR_LENGTH({0}),"
          " CHAR_LENGTH(SUBSTRING_INDEX({0}, {1}, 1)) + 1, 0)",
    sqlite="instr({0}, {1})",
)


def _find(s: ColumnElement, sep: str) -> ColumnElement:
    _check_separator(sep)
    return _position(s, sa.literal(sep, sa.String))


def _check_separator(sep: str) -> None:
    if not isinstance(sep, str) or not sep:
        raise ValueError(f"the separator must be a non-empty string, not {sep!r}")


# --- case folding ------------------------------------------------------------------------

def lower(s: ColumnElement) -> ColumnElement:
    """`s` in lower case. One-way: 'Hello' and 'hello' both give 'hello', so it never round-trips
    (use it for a derived column, e.g. add_column's backfill). ASCII letters fold alike everywhere;
    others depend on the dialect (SQLite folds ASCII only; PostgreSQL follows the database's
    LC_CTYPE; MySQL the column's collation)."""
    return sa.func.lower(s, type_=sa.String)


def upper(s: ColumnElement) -> ColumnElement:
    """`s` in upper case; one-way, with the same dialect caveats as `lower`."""
    return sa.func.upper(s, type_=sa.String)


# --- numeric scaling ---------------------------------------------------------------------

_unscaled = _sql(
    "unscaled", sa.Numeric,
    default="{0} * {1}",  # times the exact decimal 1/factor: exact on PostgreSQL and MySQL
    sqlite="CAST({0} AS REAL) / {2}",  # no decimals here; a division rounds correctly, a product may not
)


def scaled(x: ColumnElement, factor: int) -> ColumnElement:
    """`x * factor` rounded to an integer (an amount 12.34 to 1234 cents with factor 100).

    Round-trips through `unscaled(n, factor)` for every value with at most as many decimals as
    the factor keeps (two for 100): exactly for DECIMAL columns, and for FLOAT/DOUBLE columns for
    the binary value nearest such a decimal, up to 2**53 / factor. A value with more decimals is
    rounded and does not round-trip (the round-trip check names it). Exact halves round away from
    zero for DECIMAL; a float's exact half rounds to even on PostgreSQL and MySQL, away from zero
    on SQLite. `factor`: a positive integer whose inverse is an exact decimal (10, 100, 1000,
    1024, ...)."""
    _inverse(factor)
    return sa.cast(sa.func.round(x * sa.literal(factor, sa.Integer)), sa.BigInteger)


def unscaled(n: ColumnElement, factor: int) -> ColumnElement:
    """`n / factor` as a decimal (1234 cents to 12.34 with factor 100), exact on PostgreSQL and
    MySQL and the nearest double on SQLite. Round-trips through `scaled(x, factor)` for every
    integer when the target column keeps the factor's decimals (NUMERIC(p, 2) for 100)."""
    inverse = _inverse(factor)
    return _unscaled(n, sa.literal(inverse, sa.Numeric(scale=-inverse.as_tuple().exponent)),
                     sa.literal(factor, sa.Integer))


def _inverse(factor: int) -> decimal.Decimal:
    if isinstance(factor, bool) or not isinstance(factor, int) or factor <= 0:
        raise ValueError(f"the factor must be a positive integer, not {factor!r}")
    rest = factor
    for prime in (2, 5):
        while rest % prime == 0:
            rest //= prime
    if rest != 1:
        raise ValueError(f"1/{factor} is not an exact decimal, so unscaled could not be exact; "
                         "use a factor made of 2s and 5s (10, 100, 1000, 1024, ...)")
    with decimal.localcontext() as context:
        context.prec = 100
        return (decimal.Decimal(1) / factor).normalize()

