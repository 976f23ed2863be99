"""data_step: a migrate step that runs the user's Python (or SQL) to create or fix rows.

For a change whose data migration is not a column transform: rows to insert, references to
repair, a value to gather. The step runs once, after the change's backfills, in one transaction
that also records it done (compute.py): a kill during it undoes it and a rerun runs it again; a
finished step never runs twice. It writes past the change's table blocks (block_writes).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from ..compute import DataStep
from ..errors import ValidationError
from ..schema import Schema
from .base import Op


@dataclass(frozen=True)
class DataStepOp(Op):
    name: str
    run: Callable[[sa.Connection], Any] | str | sa.Executable
    written: tuple[str, ...]

    @property
    def table(self) -> str:  # type: ignore[override]
        return self.written[0]

    def tables(self) -> tuple[str, ...]:
        return self.written

    def describe(self) -> str:
        return f"data_step {self.name}"

    def validate(self, schema: Schema) -> None:
        for table in self.written:
            schema.table(table)

    def migrate_work(self, schema: Schema) -> tuple:
        return (DataStep(self.name, self.run, self.written),)


def data_step(name: str, run: Callable[[sa.Connection], Any] | str | sa.Executable, *,
              tables: str | Sequence[str]) -> DataStepOp:
    """A migrate step named `name` that calls `run(connection)` (or executes `run` when it is SQL:
    a string or a SQLAlchemy statement) once, in one transaction, after the change's backfills.
    `tables`: the tables it writes (their blocks let it through, and no other change may hold them)."""
    written = (tables,) if isinstance(tables, str) else tuple(tables)
    if not isinstance(name, str) or not name.strip() or len(name) > 100:
        raise ValidationError(f"data_step: name must be 1-100 characters (got {name!r})")
    if not (callable(run) or isinstance(run, (str, sa.Executable))):
        raise ValidationError(f"data_step {name}: run must be a callable taking a connection, or SQL (got {run!r})")
    if isinstance(run, str) and not run.strip():
        raise ValidationError(f"data_step {name}: its SQL is empty")
    if not written:
        raise ValidationError(f"data_step {name}: name the tables it writes (tables=...)")
    return DataStepOp(name, run, written)
