"""move_column: a column moves to a related table, across a foreign key.

Two shapes, told apart by where `via` lives:
- many-to-one (or one-to-one): `table.via` references `to`'s primary key; users.org_name moves to
  orgs.name through users.org_id, and every user of an org shares the org's value.
- one-to-one the other way: `to.via` references `table`'s primary key and is unique; users.password
  moves to local_users.password through local_users.user_id.

Release N keeps reading and writing the old column; release N+1 reads and writes the new one.
Triggers on both tables keep each source row equal to the target row it matches (a MoveRule), for
INSERT, UPDATE and DELETE on either side. Expand refuses data the move would lose or merge
(values with no target row; rows of one target that disagree) before its first DDL, and contract
refuses values that found no target row meanwhile.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from ..ddl import AddColumn, DropColumn, Intent
from ..errors import ValidationError
from ..schema import Schema, plain_default
from ..sync import MoveRule
from .base import (
    Op,
    Sync,
    check_not_primary_key,
    final_constraints,
    require_lookup_index,
    require_new_column,
    single_key,
    transitional,
)


@dataclass(frozen=True)
class MoveColumnOp(Op):
    table: str
    column: str
    to: str
    via: str
    new: str | sa.Column | None = None  # the column in `to`: a name, a full Column, or the same name
    follows_identification = False  # release N+1 starts after migrate even when identified

    @property
    def new_name(self) -> str:
        if isinstance(self.new, sa.Column):
            return self.new.name
        return self.new or self.column

    def describe(self) -> str:
        return f"move_column {self.table}.{self.column} -> {self.to}.{self.new_name} via {self.via}"

    def tables(self) -> tuple[str, ...]:
        return (self.table, self.to)

    def validate(self, schema: Schema) -> None:
        schema.column(self.table, self.column)
        check_not_primary_key(schema, self.table, self.column)
        if self.to == self.table:
            raise ValidationError(f"{self.describe()}: a column moves to another table (rename_column renames "
                                  "it within its table)")
        schema.table(self.to)
        require_new_column(schema, self.to, self.new_name)
        rule = self.rule(schema)
        if self.column in (rule.source_key, rule.source_pk):
            raise ValidationError(f"{self.describe()}: {self.table}.{self.column} is the key the move matches "
                                  "rows by; it cannot move itself")
        require_lookup_index(schema, self.describe(), rule.source, rule.source_key, "before the move in this change")

    def expand(self, schema: Schema) -> list[Intent]:
        return [AddColumn(self.to, transitional(self.to, self._target_column(schema)))]

    def sync(self, schema: Schema) -> Sync:
        return Sync(moves=self.moves(schema))

    def moves(self, schema: Schema) -> tuple[MoveRule, ...]:
        return (self.rule(schema),)

    def contract(self, schema: Schema) -> list[Intent]:
        return [DropColumn(self.table, self.column), *final_constraints(self.to, self._target_column(schema))]

    def rollback(self, schema: Schema) -> list[Intent]:
        return [DropColumn(self.to, self.new_name)]

    def added(self) -> list[tuple[str, str]]:
        return [(self.to, self.new_name)]

    def dropped(self) -> list[tuple[str, str]]:
        return [(self.table, self.column)]

    def rule(self, schema: Schema) -> MoveRule:
        """The relation the move follows, read from the foreign key `via` belongs to."""
        source_pk = single_key(schema, self.table, self.describe())
        target_pk = single_key(schema, self.to, self.describe())
        columns = ((self.column, self.new_name),)
        if schema.has_column(self.table, self.via) and _references(schema, self.table, self.via, self.to, target_pk):
            many = not schema.is_unique(self.table, self.via)
            return MoveRule(self.table, self.to, self.via, target_pk, source_pk, target_pk, columns, many)
        if schema.has_column(self.to, self.via) and _references(schema, self.to, self.via, self.table, source_pk):
            if not schema.is_unique(self.to, self.via):
                raise ValidationError(
                    f"{self.describe()}: {self.to}.{self.via} is not unique, so one {self.table} row may match "
                    f"several {self.to} rows; move_column needs one-to-one or many-to-one (make {self.to}.{self.via} "
                    "unique first, e.g. with add_unique)")
            return MoveRule(self.table, self.to, source_pk, self.via, source_pk, target_pk, columns, many=False)
        raise ValidationError(
            f"{self.describe()}: neither {self.table}.{self.via} references {self.to}.{target_pk} nor "
            f"{self.to}.{self.via} references {self.table}.{source_pk} with a foreign key; move_column follows "
            "a declared foreign key (add_foreign_key adds one)")

    def _target_column(self, schema: Schema) -> sa.Column:
        if isinstance(self.new, sa.Column):
            default = plain_default(self.new)
            return sa.Column(self.new.name, self.new.type, nullable=self.new.nullable, server_default=default)
        # Its type is the old column's (the new column's, once contract dropped the old one), and
        # not the old NOT NULL: target rows no source row matches (an org without users) hold NULL.
        model = (schema.column(self.table, self.column) if schema.has_column(self.table, self.column)
                 else schema.column(self.to, self.new_name))
        return sa.Column(self.new_name, model.type, nullable=True)


def _references(schema: Schema, table: str, column: str, ref_table: str, ref_column: str) -> bool:
    return any(len(key.elements) == 1 and key.elements[0].parent.name == column
               and key.elements[0].target_fullname == f"{schema.fullname(ref_table)}.{ref_column}"
               for key in schema.table(table).foreign_key_constraints)


def move_column(table: str, column: str, *, to: str, via: str, new: str | sa.Column | None = None) -> MoveColumnOp:
    """Move `table.column` to table `to`, matching rows through the foreign key column `via` (in
    `table`, referencing `to`; or in `to`, unique, referencing `table`). `new` names the column in
    `to` or declares it in full (type, NOT NULL and server default arrive at contract); by default
    it keeps the name and type, and accepts NULL."""
    if isinstance(new, sa.Column) and new.type._type_affinity is sa.types.NullType:
        raise ValidationError(f"move_column {table}.{column}: the new column {new.name!r} needs a type")
    return MoveColumnOp(table, column, to, via, new)
