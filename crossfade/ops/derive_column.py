"""derive_column: a new column whose value is computed from related rows in other tables.

Keystone's change 014: `user.domain_id` is gathered from `local_user.domain_id` and
`nonlocal_user.domain_id`, each row reaching its user through `user_id` -> `user.id`. The rule
(crossfade/derived.py): the first source in declared order that has a non-NULL value for the row
wins; within one source, the least value; NULL when no source has one.

Triggers on every source table (INSERT, UPDATE, DELETE: a row's value changing, a row moving to
another parent, a row going) and on the target (INSERT, an UPDATE of its key or of the column)
keep the law after every statement; the backfill walks the target in batches. Expand refuses,
before its first DDL, data where one target row's sources disagree. Release N+1 reads the column
and writes its sources (as Keystone's code does); a direct write of the column is replaced by
the derived value until contract drops the triggers.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import sqlalchemy as sa

from ..ddl import AddColumn, DropColumn, Intent
from ..derived import DeriveRule, DeriveSource
from ..errors import ValidationError
from ..schema import Schema, plain_default
from .base import Op, Sync, final_constraints, require_lookup_index, require_new_column, single_key, transitional
from .move_column import _references


@dataclass(frozen=True)
class DeriveColumnOp(Op):
    table: str
    column: sa.Column
    sources: tuple[DeriveSource, ...]
    conflicts: str = "refuse"
    follows_identification = False  # release N+1 reads the column: it starts once migrate filled it

    def describe(self) -> str:
        return f"derive_column {self.table}.{self.column.name} from {', '.join(s.describe() for s in self.sources)}"

    def tables(self) -> tuple[str, ...]:
        return (self.table, *dict.fromkeys(s.table for s in self.sources))

    def validate(self, schema: Schema) -> None:
        key = single_key(schema, self.table, self.describe())
        require_new_column(schema, self.table, self.column.name)
        seen: set[tuple[str, str]] = set()
        for source in self.sources:
            self._validate_source(schema, source, key)
            if (source.table, source.column) in seen:
                raise ValidationError(f"{self.describe()}: {source.table}.{source.column} is named twice")
            seen.add((source.table, source.column))

    def _validate_source(self, schema: Schema, source: DeriveSource, key: str) -> None:
        if source.table == self.table:
            raise ValidationError(f"{self.describe()}: a source is another table ({self.table} is the target)")
        schema.column(source.table, source.column)
        schema.column(source.table, source.via)
        if not schema.primary_key(source.table):
            raise ValidationError(f"{self.describe()}: {source.table} needs a primary key (its triggers tell the "
                                  "row they fire for from the others by it)")
        if not _references(schema, source.table, source.via, self.table, key):
            raise ValidationError(
                f"{self.describe()}: {source.table}.{source.via} does not reference {self.table}.{key} with a "
                "foreign key; derive_column follows a declared foreign key (add_foreign_key adds one)")
        require_lookup_index(schema, self.describe(), source.table, source.via, "in an earlier change")
        target_type = self.column.type._type_affinity
        source_type = schema.column(source.table, source.column).type._type_affinity
        if target_type is not sa.types.NullType and source_type is not target_type:
            raise ValidationError(f"{self.describe()}: {source.table}.{source.column} is a "
                                  f"{source_type.__name__}, {self.table}.{self.column.name} a {target_type.__name__}")

    def expand(self, schema: Schema) -> list[Intent]:
        return [AddColumn(self.table, transitional(self.table, self._column()))]

    def sync(self, schema: Schema) -> Sync:
        return Sync(derives=(self.rule(schema),))

    def rule(self, schema: Schema) -> DeriveRule:
        key = single_key(schema, self.table, self.describe())
        keys = tuple(schema.primary_key(t) for t in dict.fromkeys(s.table for s in self.sources))
        return DeriveRule(self.table, self.column.name, key, self.sources, keys, self.conflicts == "refuse")

    def contract(self, schema: Schema) -> list[Intent]:
        return final_constraints(self.table, self._column())

    def rollback(self, schema: Schema) -> list[Intent]:
        return [DropColumn(self.table, self.column.name)]

    def added_columns(self) -> tuple[str, ...]:
        return (self.column.name,)

    def _column(self) -> sa.Column:
        return sa.Column(self.column.name, self.column.type, nullable=self.column.nullable,
                         server_default=plain_default(self.column))


def derive_column(table: str, column: sa.Column, *, sources: Iterable, conflicts: str = "refuse") -> DeriveColumnOp:
    """Add `column` to `table`, its value derived from `sources`: each a (table, column, via)
    triple (or a DeriveSource), `via` being that table's foreign key to `table`'s primary key.
    The first source in order with a non-NULL value wins; within one source, the least value.
    `conflicts`: "refuse" (expand refuses rows whose sources hold different values, naming a
    few) or "resolve" (the rule picks, as it does for disagreements written during the upgrade).
    The column is nullable with no server default until contract, which applies the declared
    NOT NULL and default (a foreign key or unique constraint: compose add_foreign_key / add_unique)."""
    if not isinstance(column, sa.Column):
        raise ValidationError(f"derive_column {table}: the new column must be a sqlalchemy Column, not {column!r}")
    if column.type._type_affinity is sa.types.NullType:
        raise ValidationError(f"derive_column {table}.{column.name}: the new column needs a type")
    if conflicts not in ("refuse", "resolve"):
        raise ValidationError(f"derive_column {table}.{column.name}: conflicts is 'refuse' or 'resolve', "
                              f"not {conflicts!r}")
    parsed = tuple(_source(table, column.name, s) for s in sources)
    if not parsed:
        raise ValidationError(f"derive_column {table}.{column.name}: name at least one source (table, column, via)")
    return DeriveColumnOp(table, column, parsed, conflicts)


def _source(table: str, column: str, spec) -> DeriveSource:
    if isinstance(spec, DeriveSource):
        return spec
    if isinstance(spec, (tuple, list)) and len(spec) == 3 and all(isinstance(p, str) and p for p in spec):
        return DeriveSource(*spec)
    raise ValidationError(f"derive_column {table}.{column}: a source is (table, column, via), not {spec!r}")
