"""What the simulator runs at each phase: a phase driver for one change.

The simulator builds release N's tables, calls the driver's `prepare()`, then its `expand()`,
`migrate()` and `contract()` while release N and release N+1 write. The default driver runs
crossfade's Runner on the change alone; an Alembic revision's driver
(`crossfade.alembic.phases.revision_phases`) runs the whole revision, its plain Alembic operations
at their phase, as `crossfade expand | migrate | contract alembic.ini` does.

A driver is made from the simulator's Runner (`Phases`), so its steps run on the simulator's DDL
engine and report to the simulator's step hook, which checks the sync law after each of them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

import sqlalchemy as sa

from ..change import Change
from ..runner import Runner
from .model import RELEASE_N, RELEASE_N1, TablePlan, release_names
from .oracle import live_tables, schema_differences


class PhaseDriver(Protocol):
    """The phase actions of one change, each run once, in order, on the simulator's database."""

    def tables(self, release_n: sa.MetaData, release_n1: sa.MetaData) -> set[str]:
        """The tables the phases take from release N's definition to release N+1's: built as
        release N has them (not at all where it has none), compared with release N+1's after
        contract (gone where it has none)."""

    def prepare(self) -> None:
        """Once release N's tables are built, before expand: what else the phases expect."""

    def expand(self) -> None: ...

    def migrate(self) -> None: ...

    def contract(self) -> None: ...

    def rollback(self) -> None: ...


Phases = Callable[[Runner], PhaseDriver]  # a driver, given the Runner the simulator made


@dataclass
class ChangePhases:
    """The default driver: crossfade's Runner on the change, nothing else."""

    change: Change
    runner: Runner

    def tables(self, release_n: sa.MetaData, release_n1: sa.MetaData) -> set[str]:
        # Not the tables the two metadata define differently: a change module's release may
        # hold other changes, whose tables this one leaves alone.
        return self.change.tables()

    def prepare(self) -> None:
        pass  # build_release_n has made everything Runner needs

    def expand(self) -> None:
        self.runner.expand(self.change)

    def migrate(self) -> None:
        self.runner.migrate(self.change)

    def contract(self) -> None:
        self.runner.contract(self.change)

    def rollback(self) -> None:
        self.runner.rollback(self.change)


def change_phases(change: Change) -> Phases:
    return lambda runner: ChangePhases(change, runner)


def tables_beyond_plans(driver: PhaseDriver, plans: Mapping[str, TablePlan], release_n: sa.MetaData,
                        release_n1: sa.MetaData) -> set[str]:
    """The driver's tables that no worker writes: no table of the change's plans in either release
    (those an Alembic revision's plain operations create, alter and drop)."""
    tables = driver.tables(release_n, release_n1)
    return tables - release_names(plans, RELEASE_N) - release_names(plans, RELEASE_N1)


def beyond_plans_problems(conn: sa.Connection, release_n1: sa.MetaData, tables: set[str]) -> list[str]:
    """After contract, each of `tables` is as release N+1's metadata defines it, or gone where
    release N+1 has no such table (the clean contract of what the change's own check misses)."""
    known = {name for name in tables if name in release_n1.tables}
    found = schema_differences(conn, release_n1, known) if known else []
    unknown = sorted(live_tables(conn, tables - known))
    return found + [f"table {name} is still there, and release N+1's metadata has no such table" for name in unknown]
