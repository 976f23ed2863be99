"""The phases for Alembic revisions: crossfade's Runner for the change, plus the plain operations.

    expand    plain additive operations, then the change's expand (Runner.expand)
    migrate   the change's backfill (Runner.migrate)
    contract  the change's contract (Runner.contract), the plain destructive operations, then
              alembic_version is stamped to the revision: only a contracted revision is "applied"
    rollback  the change's rollback, then the plain additive operations reversed

A revision without a change goes through the same phases (recorded in crossfade_state), so
`check` and `contract` treat every pending revision alike. Before expand's first statement every
revision of the upgrade is classified and its change validated (on the tables the revisions
before it leave), so those refusals leave the database untouched; the checks Runner.expand makes
itself (preflight, the round-trip law) come after the revision's plain additive operations.
Each plain operation is a crossfade step: run under the lock timeout, retried, and skipped on a
rerun when its probe says it is done. After one, the triggers of any change syncing that table
are checked and reinstalled if a table rebuild took them.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa

from .. import state
from ..ddl import apply_to_schema
from ..errors import PhaseError
from ..locking import run_step
from ..oplock import OperatorLock, one_operator
from ..runner import ChangeStatus, Runner
from ..schema import Schema, inspect
from ..state import SYNCING, ChangeState, Phase
from . import render, snapshot
from .classify import Classified, classify, describe, table_of, undo
from .project import Project, Revision, Upgrade

NOT_STARTED = (Phase.PENDING, Phase.ROLLED_BACK)


def open_upgrade(project: Project, runner: Runner) -> tuple[RevisionRunner, Upgrade]:
    """The database's pending revisions for this rolling upgrade, and a runner for them."""
    with runner.engine.connect() as conn:
        upgrade = project.upgrade(conn)
    return RevisionRunner(project, runner, upgrade), upgrade


class RevisionRunner:
    """Runner's phases, taking a Revision where Runner takes a Change (the CLI passes either)."""

    def __init__(self, project: Project, runner: Runner, upgrade: Upgrade):
        self.project, self.runner, self.upgrade = project, runner, upgrade
        self._checked = False

    @property
    def warnings(self) -> list[str]:
        return self.runner.warnings

    @property
    def operator(self) -> OperatorLock:
        return self.runner.operator

    @property
    def on_progress(self) -> Callable | None:
        return self.runner.on_progress

    @on_progress.setter
    def on_progress(self, value: Callable | None) -> None:
        self.runner.on_progress = value

    # --- phases ------------------------------------------------------------------------------
    @one_operator("expand", refuse_first="_refuse_unlocked")
    def expand(self, revision: Revision) -> None:
        phase = self.load(revision).phase
        if phase in (Phase.CONTRACTING, Phase.CONTRACTED):
            raise PhaseError(f"revision {revision.id} is {phase.value}; there is nothing to expand")
        if phase is Phase.ROLLING_BACK:
            raise PhaseError(f"revision {revision.id} is rolling back; run rollback again to finish it first")
        if phase in NOT_STARTED:
            self._check_upgrade()
            if revision.change is not None and self._tables_exist(revision.change.tables()):
                self.runner.check_expand(revision.change)  # refuse before the plain ops' DDL
        for operation in self._classified(revision).expand:
            self._run_plain("expand", operation)
        if revision.change is not None:
            self.runner.expand(revision.change)
        elif phase not in SYNCING:
            self._save(revision, Phase.EXPANDED)

    @one_operator("migrate")
    def migrate(self, revision: Revision) -> None:
        """The change's backfill; a revision without a change has nothing to backfill."""
        if revision.change is not None:
            self.runner.migrate(revision.change)
            return
        phase = self.load(revision).phase
        if phase not in (Phase.EXPANDED, Phase.MIGRATING, Phase.MIGRATED):
            raise PhaseError(f"revision {revision.id} is {phase.value}; migrate needs it expanded")
        if phase is not Phase.MIGRATED:
            self._save(revision, Phase.MIGRATED)

    @one_operator("contract")
    def contract(self, revision: Revision) -> None:
        if revision.change is not None:
            self.runner.contract(revision.change)
        else:
            phase = self.load(revision).phase
            if phase not in (Phase.MIGRATED, Phase.CONTRACTING, Phase.CONTRACTED):
                raise PhaseError(f"revision {revision.id} is {phase.value}; contract needs it migrated "
                                 "(and no node of release N left)")
        # strict=False: expand refused what no phase can run; the schema has moved on since.
        for operation in self._classified(revision, strict=False).contract:
            self._run_plain("contract", operation)
        if revision.change is None:
            self._save(revision, Phase.CONTRACTED)
        with self.runner.engine.begin() as conn:
            self.project.stamp(conn, revision.id)
        self.runner.log(f"contract: stamp {self.project.version_table} {revision.id}")

    @one_operator("rollback")
    def rollback(self, revision: Revision) -> None:
        phase = self.load(revision).phase
        if revision.change is not None:
            self.runner.rollback(revision.change)
        elif phase in (Phase.CONTRACTING, Phase.CONTRACTED):
            raise PhaseError(f"revision {revision.id} is {phase.value}; it can no longer be rolled back")
        elif phase in NOT_STARTED:
            return
        for operation in reversed(self._classified(revision, strict=False).expand):
            reverse = undo(operation, revision.id)
            if reverse is not None:
                self._run_plain("rollback", reverse)
        if revision.change is None:
            self._save(revision, Phase.ROLLED_BACK)

    def _refuse_unlocked(self, revision: Revision) -> None:
        """The refusals of a revision not started, before the operator lock: a refused upgrade
        leaves no trace, the lock's table included (Runner._refuse_unlocked)."""
        if self.load(revision).phase not in NOT_STARTED:
            return
        self._check_upgrade()
        if revision.change is not None and self._tables_exist(revision.change.tables()):
            self.runner.check_expand(revision.change)

    # --- inspection --------------------------------------------------------------------------
    def load(self, revision: Revision) -> ChangeState:
        with self.runner.engine.connect() as conn:
            return state.load(conn, revision.id)

    def new_release(self, revision: Revision, phase: Phase) -> str:
        """When release N+1 may start; plain operations alone leave nothing ambiguous."""
        if revision.change is not None:
            return self.runner.new_release(revision.change, phase)
        return "may start after expand" if phase in NOT_STARTED else "may start now"

    def status(self, revision: Revision, deep: bool = False) -> ChangeStatus:
        if revision.change is None:
            current = self.load(revision)
            return ChangeStatus(revision.id, current.phase, problems=self.problems(revision, current),
                                new_release=self.new_release(revision, current.phase))
        result = self.runner.status(revision.change, deep=deep)
        result.problems += self._plain_problems(revision, result.phase)
        return result

    def problems(self, revision: Revision, current: ChangeState | None = None, deep: bool = False) -> list[str]:
        current = current or self.load(revision)
        found = []
        if revision.change is not None:
            found = self.runner.problems(revision.change, current, deep=deep)
        elif current.phase is Phase.CONTRACTING:
            found = [f"revision {revision.id} stopped while contracting; run contract again to finish it"]
        return found + self._plain_problems(revision, current.phase)

    def replication_warnings(self, revision: Revision, current: ChangeState | None = None) -> list[str]:
        if revision.change is None:
            return []
        return self.runner.replication_warnings(revision.change, current)

    # --- helpers -----------------------------------------------------------------------------
    def _check_upgrade(self) -> None:
        """Classify and validate every revision not yet expanded, each against the tables the
        ones before it leave, before expand's first statement."""
        if self._checked:
            return
        tables = set().union(*(r.tables() for r in self.upgrade.revisions))
        with self.runner.engine.connect() as conn:
            schema = Schema.reflect(conn, tables)
            phases = {r.id: state.load(conn, r.id).phase for r in self.upgrade.revisions}
        for revision in self.upgrade.revisions:
            if phases[revision.id] not in NOT_STARTED:
                continue  # its expand is in the live tables already
            for operation in classify(revision.plain, schema, revision.id).expand:
                snapshot.apply(schema, operation)
            if revision.change is not None:
                revision.change.validate(schema)
                for intent in revision.change.expand_intents(schema):
                    apply_to_schema(schema, intent)
        self._checked = True

    def _tables_exist(self, tables: set[str]) -> bool:
        """Whether the change can be checked yet: not when it works on a table this very
        revision creates with a plain op."""
        with self.runner.engine.connect() as conn:
            return tables <= set(sa.inspect(conn).get_table_names())

    def _classified(self, revision: Revision, strict: bool = True) -> Classified:
        with self.runner.engine.connect() as conn:
            schema = Schema.reflect(conn, revision.tables())
        return classify(revision.plain, schema, revision.id, strict=strict)

    def _run_plain(self, phase: str, operation) -> None:
        runner = self.runner
        with runner.engine.connect() as conn, runner.dialect.ddl_session(conn) as ddl:
            def release_n_table(name: str) -> sa.Table | None:
                return sa.Table(name, sa.MetaData(), autoload_with=ddl) if inspect(ddl).has_table(name) else None

            for step in render.steps(operation, runner.dialect, release_n_table):
                ran = run_step(ddl, runner.dialect, step, runner.policy)
                runner.log(f"{phase}: {step.name}" + ("" if ran else " (already done)"))
                if runner.on_step is not None:  # the simulator checks the sync law after every step
                    runner.on_step(phase, step.name)
        self._repair_triggers(table_of(operation))

    def _repair_triggers(self, table: str | None) -> None:
        """A table rebuild the step did not announce (SQLite batch mode) drops the table's
        triggers; Runner.expand on an expanded change reinstalls them."""
        for revision in self.upgrade.revisions:
            change = revision.change
            if table is None or change is None or table not in change.tables():
                continue
            current = self.runner.load(change)
            if current.phase not in SYNCING:
                continue
            problems = self.runner.problems(change, current)
            if problems:
                self.runner.log(f"{revision.id}: {problems[0]}; reinstalling its triggers")
                self.runner.expand(change)

    def _plain_problems(self, revision: Revision, phase: Phase) -> list[str]:
        if phase not in SYNCING:
            return []
        found = []
        with self.runner.engine.connect() as conn:
            for operation in self._classified(revision, strict=False).expand:
                done = render.probe(operation)
                if done is not None and not done(conn):
                    found.append(f"{describe(operation)} of revision {revision.id} has not run (run expand)")
        return found

    def _save(self, revision: Revision, phase: Phase) -> None:
        current = self.load(revision)
        current.phase, current.tables = phase, sorted(revision.tables())
        with self.runner.engine.begin() as conn:
            state.ensure_table(conn)
            state.save(conn, current)

