"""SQL constructs crossfade needs that SQLAlchemy does not render correctly with literal values.

`is_distinct`: SQLAlchemy's MySQL and SQLite `is_distinct_from` drop `literal_binds` for their
operands (they render `%s` / `?` inside trigger bodies), so crossfade compiles its own null-safe
comparison, once per dialect, always parenthesised so NOT / AND / OR never regroup it.

`bound`: a value that stays a parameter in a statement whose other values are inlined, as the
round-trip check needs.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import operators
from sqlalchemy.sql.elements import ColumnElement


class IsDistinct(ColumnElement):
    inherit_cache = True
    type = sa.Boolean()
    _is_implicitly_boolean = True  # no '= 1' appended on dialects without a boolean type

    def __init__(self, left: ColumnElement, right: ColumnElement):
        self.left = sa.sql.coercions.expect(sa.sql.roles.ExpressionElementRole, left)
        self.right = sa.sql.coercions.expect(sa.sql.roles.ExpressionElementRole, right)

    def compares_strings(self) -> bool:
        return any(isinstance(side.type, sa.String) for side in (self.left, self.right))

    def _operands(self, compiler, kw) -> tuple[str, str]:
        return tuple(compiler.process(side.self_group(against=operators.eq), **kw)
                     for side in (self.left, self.right))


def is_distinct(left: ColumnElement, right: ColumnElement) -> IsDistinct:
    """Null-safe inequality: true when exactly one side is NULL or both differ."""
    return IsDistinct(left, right)


@compiles(IsDistinct)
def _standard(element: IsDistinct, compiler, **kw) -> str:
    left, right = element._operands(compiler, kw)
    return f"({left} IS DISTINCT FROM {right})"


@compiles(IsDistinct, "mysql")
@compiles(IsDistinct, "mariadb")
def _mysql(element: IsDistinct, compiler, **kw) -> str:
    left, right = element._operands(compiler, kw)
    if element.compares_strings():
        # `<=>` uses the column's collation: case-insensitive and PAD SPACE by default, so
        # 'abc' -> 'ABC' or 'abc ' would look unchanged. The sync law needs exact bytes.
        left, right = f"BINARY {left}", f"BINARY {right}"
    return f"(NOT ({left} <=> {right}))"


@compiles(IsDistinct, "sqlite")
def _sqlite(element: IsDistinct, compiler, **kw) -> str:
    left, right = element._operands(compiler, kw)
    return f"({left} IS NOT {right})"


class Exact(ColumnElement):
    """A value compared byte for byte: MySQL compares strings by collation (case and trailing
    spaces ignored), which would let 'a' and 'A' count as one value."""

    inherit_cache = True

    def __init__(self, value: ColumnElement):
        self.value = value
        self.type = value.type


def exact(value: ColumnElement) -> Exact:
    return Exact(value)


@compiles(Exact)
def _exact(element: Exact, compiler, **kw) -> str:
    return compiler.process(element.value, **kw)


@compiles(Exact, "mysql")
@compiles(Exact, "mariadb")
def _exact_mysql(element: Exact, compiler, **kw) -> str:
    inner = compiler.process(element.value.self_group(), **kw)
    return f"BINARY {inner}" if isinstance(element.value.type, sa.String) else inner


class RowField(ColumnElement):
    """`NEW.col` / `OLD.col` inside a statement a trigger runs: a column of the trigger's row that
    is not a table, so a SELECT or UPDATE using it never lists it in FROM."""

    inherit_cache = True

    def __init__(self, row: str, name: str, type_):
        self.row, self.name, self.type = row, name, type_


@compiles(RowField)
def _row_field(element: RowField, compiler, **kw) -> str:
    return f"{element.row}.{compiler.preparer.quote(element.name)}"


class TriggerRow:
    """A trigger's NEW or OLD row of `table`, for statements: `row.c[name]` is a RowField."""

    def __init__(self, table: sa.Table, which: str):
        self.c = {c.name: RowField(which, c.name, c.type) for c in table.columns}


class ForTarget(ColumnElement):
    """An expression whose SQL depends on the column it is stored in (`from_epoch_seconds` into a
    PostgreSQL timestamptz or a naive timestamp). The sync group hands it the target column's
    type through `for_target` before compiling; without one it takes its default form."""

    def for_target(self, type_: sa.types.TypeEngine) -> ColumnElement:
        raise NotImplementedError


def for_column(expr: ColumnElement, type_: sa.types.TypeEngine | None) -> ColumnElement:
    """`expr` as it is written into a column of `type_` (a ForTarget picks its form)."""
    return expr.for_target(type_) if isinstance(expr, ForTarget) and type_ is not None else expr


class Bound(ColumnElement):
    """A value sent as a bound parameter even in a statement compiled with its literals inlined:
    the round-trip check runs the transforms' literals exactly as a trigger body holds them, and
    the values it tries as data."""

    inherit_cache = False

    def __init__(self, value, type_):
        self.bind = sa.bindparam(None, value, type_=type_)
        self.type = self.bind.type


def bound(value, type_) -> Bound:
    return Bound(value, type_)


@compiles(Bound)
def _bound(element: Bound, compiler, **kw) -> str:
    return compiler.process(element.bind, **{**kw, "literal_binds": False})
