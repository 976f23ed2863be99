"""The phase runner: expand, migrate, contract and rollback, each resumable and verified.

Every phase is a list of steps. A step either probes the catalog and skips itself when already
done, or is idempotent by construction, and the phase's progress is recorded in
`crossfade_state`. So a crash, a kill or a lock timeout at any point leaves a state that simply
running the same phase again finishes (MariaDB's DDL is not transactional; this is why).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone

import sqlalchemy as sa

from . import backfill, checks, compute, datacheck, names, ops, roundtrip, state
from .change import Change
from .ddl import SetNullable, Step, new_names
from .dependents import dependents_warnings, refuse_dependents
from .dialects import for_dialect
from .errors import (
    CrossfadeError,
    DriftedRowsError,
    NullsRemainError,
    PhaseError,
    SchemaError,
    TableBusyError,
    VerificationError,
)
from .locking import LockPolicy, retry_when_busy, run_step, run_with_lock_timeout
from .oplock import OperatorLock, one_operator
from .preflight import Preflight, run_preflight
from .progress import backfill_rows
from .rerun import rerun_after_deadlock
from .schema import Schema
from .state import IN_FLIGHT, SYNCING, ChangeState, Phase
from .sync import TableSync
from .throttle import Throttle, ThrottleOptions

StepHook = Callable[[str, str], None]


@dataclass
class ChangeStatus:
    change_id: str
    phase: Phase
    backfill: dict[str, float] = field(default_factory=dict)  # table -> fraction done
    # table -> rows done/total, rows/s, ETA, waiting (progress.backfill_rows)
    backfill_rows: dict[str, dict] = field(default_factory=dict)
    triggers: list[dict] = field(default_factory=list)  # name, table, kind, installed, matches
    problems: list[str] = field(default_factory=list)
    repairs: list[str] = field(default_factory=list)  # "triggers repaired at <time>, N row(s) reconciled"
    schema: str | None = None  # the database schema the change's tables are in, where resolved
    new_release: str = ""  # when release N+1 may start: "may start now" / "may start after migrate"
    warnings: list[str] = field(default_factory=list)  # what replication will not do (replication_warnings)
    data_steps: dict[str, str] = field(default_factory=dict)  # name -> "done" / "runs in migrate"

    def to_json(self) -> dict:
        found = {"change": self.change_id, "phase": self.phase.value, "backfill": self.backfill,
                 "triggers": self.triggers, "problems": self.problems, "repairs": self.repairs,
                 "new_release": self.new_release}
        if self.backfill_rows:  # a backfill started and not yet contracted away
            found["backfill_rows"] = self.backfill_rows
        found |= {"warnings": self.warnings} if self.warnings else {}
        found |= {"data_steps": self.data_steps} if self.data_steps else {}
        return found if self.schema is None else {**found, "schema": self.schema}


_DONE_AFTER = {  # the phases after which release N+1 may start, per schedule
    "expand": {Phase.EXPANDED, Phase.MIGRATING, Phase.MIGRATED, Phase.CONTRACTING, Phase.CONTRACTED},
    "migrate": {Phase.MIGRATED, Phase.CONTRACTING, Phase.CONTRACTED},
}


def new_release_start(change: Change, dialect: str, phase: Phase) -> str:
    """When release N+1 may start, for `check` and `status` (DESIGN 2: without writer
    identification, only once every row is derived)."""
    after = change.new_release_starts_after(dialect)
    return "may start now" if phase in _DONE_AFTER[after] else f"may start after {after}"


INDEX_AND_CONSTRAINT_OPS = (ops.CreateIndexOp, ops.AddUniqueOp, ops.AddForeignKeyOp, ops.AddCheckOp)


class Runner:
    """Runs a Change's phases against one database."""

    def __init__(self, engine: sa.Engine, *, lock_timeout: float = 0.05, max_lock_wait: float = 120.0,
                 batch_size: int | None = None, batch_seconds: float | None = None, pause: float | None = None,
                 allow_foreign_triggers: bool = False, on_step: StepHook | None = None,
                 on_progress: Callable | None = None, log: Callable[[str], None] | None = None,
                 operator_wait: float = 0.0, jobs: int = 1, throttle: ThrottleOptions | None = None):
        """`batch_size` fixes the rows per backfill batch; otherwise each batch aims at
        `batch_seconds` (default `backfill.DEFAULT_BATCH_SECONDS`). `pause` sleeps that many
        seconds after each batch; None rests as the database needs (SQLite: until a writer waiting
        for the lock has tried again, ~22 ms after a 40 ms batch; others: not at all).
        `operator_wait`: seconds a phase waits for another crossfade's operator lock (oplock.py)
        before it stops with OperatorBusyError. `jobs`: workers backfilling disjoint key ranges of
        a table at once (SQLite, one writer at a time, runs one). `throttle`: when the backfill
        waits for replicas and server load (throttle.py; default: while a replica lags over 1 s)."""
        backfill.check_options(batch_size, batch_seconds, pause, jobs)
        self.engine = engine
        self.dialect = for_dialect(engine.dialect)  # bound to the change's schema by each phase (`_bind`)
        self.policy = LockPolicy(lock_timeout, max_lock_wait)
        self.batch_size = batch_size
        self.batch_seconds = batch_seconds
        self.pause = pause
        self.jobs = jobs
        self.throttle = throttle if throttle is not None else ThrottleOptions()
        self.allow_foreign_triggers = allow_foreign_triggers
        self.on_step = on_step
        self.on_progress = on_progress
        self.log = log or (lambda message: None)
        self.warnings: list[str] = []
        self.operator = OperatorLock(engine, self.dialect, self.policy, wait=operator_wait,
                                     log=lambda message: self.log(message))

    # --- phases ------------------------------------------------------------------------------
    @one_operator("expand", refuse_first="_refuse_unlocked")
    def expand(self, change: Change) -> None:
        """Additive DDL, then the sync triggers. Release N keeps working throughout."""
        current = self.load(change)
        if current.phase in SYNCING:
            return self._repair_triggers(change, current)
        if current.phase in (Phase.CONTRACTING, Phase.CONTRACTED):
            raise PhaseError(f"change {change.id} is {current.phase.value}; there is nothing to expand")
        if current.phase is Phase.ROLLING_BACK:
            raise PhaseError(f"change {change.id} is rolling back; run rollback again to finish it first")
        if current.phase in (Phase.PENDING, Phase.ROLLED_BACK):
            current = self._prepare_expand(change)
        with self._ddl_connection() as conn:
            schema = self._reflect(conn, change)
            for step in self.dialect.steps(change.expand_intents(schema), schema):
                self._run(conn, "expand", step)
            relax = [SetNullable(t, c, True) for t, c in current.relaxed]
            for step in self.dialect.steps(relax, self._reflect(conn, change)):
                self._run(conn, "expand", step)
            # Not migrated yet (migrate needs EXPANDED): a placeholder may forget a value.
            expected = self._install_triggers(conn, change, current, placeholders=True)
            current.triggers = checks.catalog_checksums(self.dialect, conn, expected)
        current.phase = Phase.EXPANDED
        self._save(current, "expand", "record expanded")
        self._verify(change, current)

    @one_operator("migrate", refuse_first="_refuse_bad_throttle")
    def migrate(self, change: Change) -> None:
        """Backfill existing rows in keyed batches; resumes from the last checkpoint."""
        current = self.load(change)
        if current.phase is Phase.MIGRATED:
            return
        if current.phase not in (Phase.EXPANDED, Phase.MIGRATING):
            raise PhaseError(f"change {change.id} is {current.phase.value}; migrate needs it expanded")
        with self._throttled() as throttle:
            self._migrate(change, current, throttle)

    def _migrate(self, change: Change, current: ChangeState, throttle: Throttle) -> None:
        self._verify(change, current)
        current.phase = Phase.MIGRATING
        self._save(current, "migrate", "record migrating")
        with self.engine.connect() as conn:
            schema = self._reflect(conn, change)
            syncs = change.table_syncs(schema)
            links = self.dialect.active_links(change.links(schema))
        # A table whose triggers only block has nothing to backfill.
        jobs = [backfill.sync_job(ts) for _, ts in sorted(syncs.items()) if ts.groups or ts.fills]
        jobs += [backfill.link_job(self.dialect, link, schema.table(link.source), schema.table(link.target))
                 for link in links]
        workers = self._backfill_jobs()
        for job in jobs:
            self._backfill(change, current, job, throttle, workers)
        self._python_work(change, current, throttle, workers)
        current.phase = Phase.MIGRATED
        self._save(current, "migrate", "record migrated")

    @one_operator("contract")
    def contract(self, change: Change) -> None:
        """Drop triggers and old columns, then apply final NOT NULL and defaults online."""
        current = self.load(change)
        if current.phase is Phase.CONTRACTED:
            return
        if current.phase not in (Phase.MIGRATED, Phase.CONTRACTING):
            raise PhaseError(f"change {change.id} is {current.phase.value}; contract needs it migrated "
                             "(and no node of release N left)")
        self._refuse_cluster_problems(current)
        with self._ddl_connection() as conn:
            schema = self._release_n_schema(conn, change, current)
            self._refuse_remaining_nulls(conn, change, schema)
            checks.refuse_unmovable(conn, schema, change.moves_to_finish(schema), "contract")
            intents = change.contract_intents(schema)
            checks.refuse_violations(conn, schema, intents)
            checks.refuse_other_actions(conn, self.dialect, intents)
            refuse_dependents(conn, self.dialect, schema, change)
            # A contract stopped after dropping triggers is past this (and would see false drift).
            if current.phase is Phase.MIGRATED or self._triggers_intact(conn, current):
                self._refuse_drifted_rows(change, current, "contract")
            if current.phase is Phase.MIGRATED:
                current.phase = Phase.CONTRACTING
                self._save(current, "contract", "record contracting")
            self._ready_for_no_triggers(conn, change, current)
            self._drop_triggers(conn, change, current)
            schema = self._release_n_schema(conn, change, current)
            for step in self.dialect.steps(change.after_dropping_triggers(schema), schema):
                self._run(conn, "contract", step)
        # The row stays as the record that the change is done; nothing of the transition remains.
        current.phase, current.triggers, current.checkpoint, current.relaxed = Phase.CONTRACTED, {}, {}, []
        self._save(current, "contract", "record contracted")
        self._verify(change, current)

    @one_operator("rollback")
    def rollback(self, change: Change) -> None:
        """Undo expand: triggers and new columns go; release N's columns are intact."""
        current = self.load(change)
        if current.phase in (Phase.PENDING, Phase.ROLLED_BACK):
            return
        if current.phase in (Phase.CONTRACTING, Phase.CONTRACTED):
            raise PhaseError(self._why_no_rollback(change, current))
        self._refuse_cluster_problems(current)
        current.phase = Phase.ROLLING_BACK
        self._save(current, "rollback", "record rolling back")
        with self._ddl_connection() as conn:
            self._drop_triggers(conn, change, current)
            schema = self._reflect(conn, change)
            intents = change.rollback_intents(schema)
            intents += [SetNullable(t, c, False) for t, c in current.relaxed]
            for step in self.dialect.steps(intents, schema):
                self._run(conn, "rollback", step)
        current.phase, current.triggers, current.checkpoint = Phase.ROLLED_BACK, {}, {}
        self._save(current, "rollback", "record rolled back")
        self._verify(change, current)

    def _why_no_rollback(self, change: Change, current: ChangeState) -> str:
        """What the database shows: contract may have stopped before dropping anything."""
        with self.engine.connect() as conn:
            schema = self._reflect(conn, change)
        gone = [f"{t}.{c}" for t, c in change.dropped_columns() if not schema.has_column(t, c)]
        kept = [f"{t}.{c}" for t, c in change.dropped_columns() if schema.has_column(t, c)]
        if gone or current.phase is Phase.CONTRACTED:
            dropped = f"; contract has dropped release N's columns ({', '.join(gone)})" if gone else ""
            finish = "; run contract again to finish it" if kept else ""
            return f"change {change.id} is {current.phase.value}{dropped}, so it can no longer be rolled back{finish}"
        still = f"release N's columns ({', '.join(kept)}) are still there, but " if kept else ""
        return (f"change {change.id} is contracting: {still}contract has dropped the sync triggers, so release "
                "N's data is no longer kept in step and the change can no longer be rolled back; "
                "run contract again to finish it")

    # --- inspection --------------------------------------------------------------------------
    def load(self, change: Change) -> ChangeState:
        """The change's recorded state; the runner then works in the schema it records."""
        with self.engine.connect() as conn:
            found = state.load(conn, change.id)
        if None not in (change.schema, found.schema) and change.schema != found.schema:
            raise SchemaError(change.schema, f"change {change.id} was run on the tables of schema {found.schema!r}, "
                                             f"not {change.schema!r}: give the change another id")
        self._bind(found.schema)
        return found

    def _bind(self, schema: str | None) -> None:
        self.dialect = self.dialect.in_schema(schema)

    def new_release(self, change: Change, phase: Phase) -> str:
        """When release N+1 may start, for `check` and `status`."""
        return new_release_start(change, self.dialect.name, phase)

    @rerun_after_deadlock
    def status(self, change: Change, deep: bool = False) -> ChangeStatus:
        """`deep`: also check every row against the sync and link laws (a full read, in batches)."""
        current = self.load(change)
        result = ChangeStatus(change.id, current.phase, repairs=[_repair_text(r) for r in current.repairs],
                              schema=current.schema, new_release=self.new_release(change, current.phase))
        steps = [op for op in change.ops if isinstance(op, ops.DataStepOp)]
        step_keys = {compute.DataStep(op.name, op.run).checkpoint_key for op in steps}
        tables = {t: c for t, c in current.checkpoint.items() if t not in step_keys}
        result.backfill = {t: (c["done"] / c["total"] if c.get("total") else 1.0) for t, c in tables.items()}
        result.backfill_rows = {t: backfill_rows(c) for t, c in tables.items()}
        ran = current.phase in (Phase.MIGRATED, Phase.CONTRACTING, Phase.CONTRACTED)
        result.data_steps = {op.name: "done" if ran or current.checkpoint.get(
            compute.DataStep(op.name, op.run).checkpoint_key, {}).get("complete") else "runs in migrate" for op in steps}
        with self.engine.connect() as conn:
            catalog = self.dialect.catalog_objects(conn, set(current.tables) or change.tables())
            for name, recorded in sorted(current.triggers.items()):
                found = catalog.get(name)
                result.triggers.append({
                    "name": name, "table": recorded["table"], "kind": recorded["kind"],
                    "installed": found is not None,
                    "matches": found is not None and checks.sha(found[2]) == recorded["catalog"],
                })
        result.problems = self.problems(change, current, deep=deep)
        result.warnings = self.replication_warnings(change, current)
        return result

    def replication_warnings(self, change: Change, current: ChangeState | None = None) -> list[str]:
        """What replication will not do for the change's tables (PostgreSQL: the publications that
        carry them, crossfade/dialects/postgresql_publications.py), until the change is done."""
        current = current or self.load(change)
        if current.phase in (Phase.CONTRACTED, Phase.ROLLED_BACK):
            return []
        self._bind(current.schema)
        with self.engine.connect() as conn:
            return self.dialect.replication_warnings(conn, sorted(set(current.tables) or change.tables()))

    @rerun_after_deadlock
    def problems(self, change: Change, current: ChangeState | None = None, deep: bool = False) -> list[str]:
        """What is wrong with the database for the change's recorded phase (empty: all good).
        `deep`: also every row that breaks the sync or a link law (`data_findings`)."""
        current = current or self.load(change)
        self._bind(current.schema)  # the schema the state records, whoever loaded it
        found = self._catalog_problems(change, current)
        if current.phase in SYNCING and current.repairs and not current.repairs[-1].get("done", True):
            found.append(f"{_repair_text(current.repairs[-1])}: fix those rows, then run expand again")
        if deep and current.phase in SYNCING:
            found += [finding.describe() for finding in self.data_findings(change, current)]
        return found

    def data_findings(self, change: Change, current: ChangeState | None = None) -> list[datacheck.Finding]:
        """The rows that break the sync law or a link law, read in online batches (empty: every row
        holds). Only while the triggers keep the laws (expanded to contracting); before migrate
        is done a row whose new columns are all NULL is not derived yet and passes."""
        current = current or self.load(change)
        self._bind(current.schema)
        if current.phase not in SYNCING | {Phase.CONTRACTING}:
            return []
        with self.engine.connect() as conn:
            schema = self._reflect(conn, change)
        syncs = change.table_syncs(schema, current.relaxed)
        tables = {name: schema.table(name) for name in change.tables() if schema.has_table(name)}
        laws = datacheck.laws(self.dialect, syncs, change.links(schema), tables,
                              derived_only=current.phase not in (Phase.MIGRATED, Phase.CONTRACTING))
        batches = datacheck.check_batches(self.dialect, self.batch_size, self.batch_seconds)
        return datacheck.check_rows(self.engine, self.dialect, laws, batches=batches)

    def _catalog_problems(self, change: Change, current: ChangeState) -> list[str]:
        with self.engine.connect() as conn:
            schema = self._reflect(conn, change)
            if current.phase in SYNCING:
                syncs = change.table_syncs(schema, current.relaxed)
                expected = checks.expected_objects(self.dialect, syncs, change.links(schema), schema)
                return (checks.syncing_problems(self.dialect, conn, current, expected, change.added_columns())
                        + self._unfinished(conn, schema, change, "expand"))
            if current.phase is Phase.CONTRACTED:
                return (checks.clean_problems(self.dialect, conn, change.tables(), change.dropped_columns())
                        + self._unfinished(conn, schema, change, "contract"))
            if current.phase is Phase.ROLLED_BACK:
                return (checks.clean_problems(self.dialect, conn, change.tables(), change.added_columns())
                        + self._unfinished(conn, schema, change, "rollback"))
            if current.phase in (Phase.EXPANDING, Phase.CONTRACTING, Phase.ROLLING_BACK):
                return [f"change {change.id} stopped while {current.phase.value}; run that phase again to finish it"]
            return []

    def _unfinished(self, conn: sa.Connection, schema: Schema, change: Change, phase: str) -> list[str]:
        """Indexes and constraints the phase made that the catalog no longer shows (the column
        ops are covered by the column checks)."""
        intents = [i for op in change.ops if isinstance(op, INDEX_AND_CONSTRAINT_OPS)
                   for i in getattr(op, phase)(schema.copy())]
        return checks.unfinished_steps(self.dialect, conn, schema, intents) if intents else []

    # --- expand helpers ----------------------------------------------------------------------
    def check_expand(self, change: Change) -> None:
        """Raise what expand would refuse (validation, preflight, the round-trip law) without
        changing anything; e.g. before other DDL that must not run for a refused change. Quiet:
        the expand that follows reports the round-trip law and the preflight's warnings once."""
        self._resolve_schema(change)
        self._refusals(change, report=False)

    def _resolve_schema(self, change: Change) -> None:
        """Which schema the change's tables are really in (a search_path may reach another one
        than current_schema()), resolved once; every phase then names it and expand records it."""
        with self.engine.connect() as conn:
            self._bind(self.dialect.resolve_schema(conn, change.tables(), change.schema))

    def _refuse_unlocked(self, change: Change) -> None:
        """expand's refusals of a change not started, before the operator lock (oplock.py): a
        refused change leaves no trace, the lock's table included. Expand checks again under it."""
        if self.load(change).phase not in (Phase.PENDING, Phase.ROLLED_BACK):
            return
        try:
            self.check_expand(change)
        except CrossfadeError:
            if self.load(change).phase in (Phase.PENDING, Phase.ROLLED_BACK):
                raise  # otherwise another crossfade expanded it meanwhile: the phase decides under the lock

    def _prepare_expand(self, change: Change) -> ChangeState:
        """Everything that can refuse the change, before the first DDL statement."""
        self._resolve_schema(change)
        schema, syncs = self._refusals(change)
        relaxed = [list(pair) for pair in self.dialect.columns_to_relax(schema, syncs)]
        current = ChangeState(change.id, Phase.EXPANDING, tables=sorted(change.tables()), relaxed=relaxed,
                              schema=self.dialect.schema)
        with self.engine.begin() as conn:
            state.ensure_table(conn)
        self._save(current, "expand", "record expanding")
        return current

    def _refusals(self, change: Change, report: bool = True) -> tuple[Schema, dict[str, TableSync]]:
        # Pinned: the round-trip law is checked under the settings the triggers are created with.
        with self.engine.connect() as conn, self.dialect.pinned_session(conn):
            schema = self._reflect(conn, change)
            change.validate(schema)
            planned = schema.copy()
            expand = change.expand_intents(planned)
            self.dialect.steps(expand, planned)  # simulates expand on `planned`
            created = new_names(expand + change.contract_intents(planned.copy()))
            names.refuse_illegal(self.dialect.identifiers, created)
            syncs = change.table_syncs(planned)
            links = self.dialect.active_links(change.links(planned))
            triggered = set(syncs) | {t for link in links for t in link.tables()}
            names.refuse_illegal(self.dialect.identifiers, names.triggered_tables(sorted(triggered)))
            self.dialect.compile_triggers(syncs)
            checks.expected_objects(self.dialect, {}, change.links(planned), planned)  # every trigger compiles
            self._refuse_busy_tables(conn, change)
            # Unique indexes expand builds over columns that hold data already (new ones are NULL).
            checks.refuse_violations(conn, schema, [
                i for i in change.expand_intents(schema.copy())
                if all(schema.has_column(i.table, c) for c in getattr(i, "columns", ()))])
            links = change.links(planned)
            checks.refuse_unmovable(conn, schema, links, "expand")
            preflight = run_preflight(conn, self.dialect, schema, syncs, self.dialect.active_links(links),
                                      allow_foreign_triggers=self.allow_foreign_triggers)
            preflight.raise_for_errors()
            preflight.warnings += dependents_warnings(conn, self.dialect, planned, change)
            for warning in preflight.warnings if report else ():
                self.warnings.append(warning)
                self.log(f"warning: {warning}")
            final = change.final_new_columns(schema)
            identified = change.identified_on(self.dialect.name)
            for table_sync in syncs.values():
                for group in table_sync.groups:
                    checked = roundtrip.check_group(conn, self.dialect, planned, group)
                    roundtrip.check_nulls(conn, self.dialect, schema, planned, group, final, identified)
                    if checked and report:
                        self.log(f"round-trip law holds for {group.table}.{', '.join(group.old)} "
                                 f"on {checked} value(s)")
        return schema, syncs

    def _refuse_busy_tables(self, conn: sa.Connection, change: Change) -> None:
        for other in state.load_all(conn):
            elsewhere = None not in (other.schema, self.dialect.schema) and other.schema != self.dialect.schema
            if other.change_id != change.id and other.phase in IN_FLIGHT and not elsewhere:
                for table in sorted(change.tables() & set(other.tables)):
                    raise TableBusyError(table, other.change_id)

    def _install_triggers(self, conn: sa.Connection, change: Change, current: ChangeState, *,
                          placeholders: bool = False) -> dict:
        """Transactional DDL: a table's triggers at once, atomically. Otherwise (MariaDB) each
        CREATE TRIGGER commits on its own anyway and needs the table free for an instant: one step
        each, so one caught moment is never lost to a later statement's busy one (the step would
        restart from its first statement). checks.install_steps orders them."""
        schema = self._reflect(conn, change)
        syncs = change.table_syncs(schema, current.relaxed)
        links = change.links(schema)
        expected = checks.expected_objects(self.dialect, syncs, links, schema)
        for title, statements in checks.install_steps(self.dialect, expected, links, schema,
                                                      placeholders=placeholders):
            self._run(conn, "expand", Step(title, statements))
        return expected

    def _repair_triggers(self, change: Change, current: ChangeState) -> None:
        """expand on an expanded change reinstalls missing or drifted triggers (e.g. after a
        SQLite table rebuild), then reconciles the rows written meanwhile; otherwise it does
        nothing. The repair is recorded before the first trigger goes in, so a rerun after a
        crash still reconciles (the reinstalled triggers alone would look like nothing happened)."""
        unfinished = bool(current.repairs) and not current.repairs[-1].get("done", True)
        if not self._catalog_problems(change, current):
            if unfinished:
                self._reconcile(change, current)
            return
        self.log("triggers are missing or out of date; reinstalling them")
        if not unfinished:
            current.repairs.append({"at": _now(), "reconciled": 0, "ambiguous": None, "done": False})
            self._save(current, "expand", "record repairing triggers")
        with self._ddl_connection() as conn:
            expected = self._install_triggers(conn, change, current)
            current.triggers = checks.catalog_checksums(self.dialect, conn, expected)
        self._save(current, "expand", "record repaired triggers")
        self._verify(change, current)
        self._reconcile(change, current)

    def _reconcile(self, change: Change, current: ChangeState) -> None:
        """The rows written while the triggers were missing break the sync law: those whose row
        shows which release wrote them are repaired (datacheck.reconcile); the others are named
        in a DriftedRowsError, and the repair stays unfinished until they are fixed."""
        with self.engine.connect() as conn:
            schema = self._reflect(conn, change)
        syncs = change.table_syncs(schema, current.relaxed)
        required = {tuple(pair) for pair in current.relaxed}
        required |= {(g.table, c) for ts in syncs.values() for g in ts.groups for c in g.old
                     if not schema.column(g.table, c).nullable}
        entry = current.repairs[-1]
        entry["reconciled"] += datacheck.reconcile(self.engine, self.dialect, syncs, required, batches=self._batches())
        findings = self.data_findings(change, current)
        entry["ambiguous"] = sum(f.count for f in findings)
        entry["done"] = not findings
        self._save(current, "expand", "record reconciled rows")
        self.log(_repair_text(entry))
        if findings:
            raise DriftedRowsError(findings, "expand", done=f"the triggers are reinstalled and {entry['reconciled']} "
                                   "row(s) reconciled, but the rest cannot tell which release wrote them")

    def _refuse_drifted_rows(self, change: Change, current: ChangeState, phase: str) -> None:
        findings = self.data_findings(change, current)
        if findings:
            raise DriftedRowsError(findings, phase)

    def _triggers_intact(self, conn: sa.Connection, current: ChangeState) -> bool:
        catalog = self.dialect.catalog_objects(conn, set(current.tables))
        return bool(current.triggers) and set(current.triggers) <= set(catalog)

    def _batches(self) -> backfill.BatchSizer:
        return backfill.batch_sizer(self.batch_size, self.batch_seconds)

    # --- shared helpers ----------------------------------------------------------------------
    def _drop_triggers(self, conn: sa.Connection, change: Change, current: ChangeState) -> None:
        tables = set(current.tables) or change.tables()
        for name in change.trigger_drop_order(tables):
            def none_left(c, table=name):
                return not self.dialect.catalog_objects(c, {table})
            present = self.dialect.catalog_objects(conn, {name})
            statements = self.dialect.drop_statements([(kind, obj_name, table)
                                                       for obj_name, (kind, table, _) in present.items()])
            self._run(conn, current.phase.value, Step(f"drop triggers on {name}", statements, is_done=none_left))

    def _ready_for_no_triggers(self, conn: sa.Connection, change: Change, current: ChangeState) -> None:
        """Change.before_dropping_triggers: defaults first, dropped NOT NULL columns relaxed."""
        schema = self._reflect(conn, change)
        intents = change.before_dropping_triggers(schema)
        relax = [[i.table, i.column] for i in intents if isinstance(i, SetNullable)]
        unrecorded = [pair for pair in relax if pair not in current.relaxed]
        if unrecorded:
            # Recorded before relaxing: ops read release N's NOT NULL back from the state
            # (_release_n_schema), e.g. rename_column's new column keeps it.
            current.relaxed += unrecorded
            self._save(current, "contract", "record columns to relax")
        for step in self.dialect.steps(intents, schema):
            self._run(conn, "contract", step)

    def _refuse_remaining_nulls(self, conn: sa.Connection, change: Change, schema: Schema) -> None:
        for table, column in change.not_null_at_contract(schema):
            if not schema.has_column(table, column) or not schema.column(table, column).nullable:
                continue
            t = schema.table(table)
            count = conn.execute(sa.select(sa.func.count()).select_from(t).where(t.c[column].is_(None))).scalar()
            if count:
                raise NullsRemainError(table, column, count)

    def _refuse_bad_throttle(self, change: Change) -> None:
        """A replica that cannot be read or an unknown load variable, before migrate takes anything."""
        with self._throttled():
            pass

    @contextmanager
    def _throttled(self) -> Iterator[Throttle]:
        throttle = Throttle(self.engine, self.throttle)
        try:
            yield throttle.check_ready()
        finally:
            throttle.close()


    def _backfill_jobs(self) -> int:
        """The workers per table: `jobs`, or as many as the database lets write at once and the
        engine's pool can connect (two connections stay for the heartbeat and the throttle)."""
        most = self.dialect.max_backfill_jobs
        if most is not None and self.jobs > most:
            return self._fewer_jobs(most, f"{self.dialect.name} lets one writer in at a time")
        connections = backfill.pool_capacity(self.engine)
        # Besides the workers: the operator lock's heartbeat, and the throttle's look at the primary.
        spare = 2
        if connections is not None and self.jobs > max(1, connections - spare):
            return self._fewer_jobs(max(1, connections - spare), f"the engine's pool holds {connections} connections")
        return self.jobs

    def _fewer_jobs(self, jobs: int, why: str) -> int:
        note = f"{why}: the backfill runs {jobs} job{'s' if jobs > 1 else ''}, not {self.jobs}"
        self.log(note)
        self.warnings.append(note)
        return jobs

    def _backfill(self, change: Change, current: ChangeState, job: backfill.Job, throttle: Throttle,
                  jobs: int = 1) -> None:
        def save(conn: sa.Connection, checkpoint: dict) -> None:
            current.checkpoint[job.name] = checkpoint
            state.save(conn, current)

        def on_batch(progress: backfill.Progress) -> None:
            if self.on_progress is not None:
                self.on_progress(progress)
            if progress.waiting is not None:
                return  # a wait between batches, not a step
            self._after_step("migrate", f"batch of {progress.table} up to {progress.done}")

        backfill.backfill_table(self.engine, self.dialect, job,
                                current.checkpoint.get(job.name, {}), save,
                                batches=backfill.batch_sizer(self.batch_size, self.batch_seconds),
                                pause=self.pause, on_batch=on_batch, jobs=jobs, throttle=throttle)

    def _python_work(self, change: Change, current: ChangeState, throttle: Throttle, workers: int) -> None:
        """The ops' Python backfills and data steps (compute.py), in the order declared, after
        the triggers' backfills (a step may read what they derived)."""
        with self.engine.connect() as conn:
            schema = self._reflect(conn, change)
        syncs = change.table_syncs(schema, current.relaxed)
        for work in change.migrate_work(schema):
            if isinstance(work, compute.PythonBackfill):
                unblocked = compute.blocking_objects(self.dialect, syncs, [work.table], events=("update",))
                self._backfill(change, current, compute_job(self.dialect, schema, work, unblocked), throttle, workers)
            else:
                self._data_step(current, work, compute.blocking_objects(self.dialect, syncs, work.tables))

    def _data_step(self, current: ChangeState, step: compute.DataStep, unblocked: list) -> None:
        """One transaction: the step's writes and the record that it ran (a kill undoes both)."""
        if current.checkpoint.get(step.checkpoint_key, {}).get("complete"):
            self.log(f"migrate: data step {step.name} (already done)")
            return
        _, off = self.dialect.writing_guard()
        done = {"done": 1, "total": 1, "complete": True, "last": None}

        def run() -> None:
            with self.engine.connect() as conn:
                try:
                    with conn.begin():
                        compute.run_data_step(conn, self.dialect, step, unblocked)
                        current.checkpoint[step.checkpoint_key] = done
                        state.save(conn, current)
                except BaseException:
                    current.checkpoint.pop(step.checkpoint_key, None)
                    raise
                finally:
                    for statement in off:  # the session goes back to the pool unmarked
                        conn.exec_driver_sql(statement)
                    if off:
                        conn.commit()
        retry_when_busy(self.dialect, self.policy, run)
        self.log(f"migrate: data step {step.name}")
        self._after_step("migrate", f"data step {step.name}")

    def _run(self, conn: sa.Connection, phase: str, step: Step) -> None:
        ran = run_step(conn, self.dialect, step, self.policy)
        self.log(f"{phase}: {step.name}" + ("" if ran else " (already done)"))
        self._after_step(phase, step.name)

    def _save(self, current: ChangeState, phase: str, step_name: str) -> None:
        def save() -> None:
            with self.engine.begin() as conn:
                state.save(conn, current)
        retry_when_busy(self.dialect, self.policy, save)
        self._after_step(phase, step_name)

    def _after_step(self, phase: str, step_name: str) -> None:
        self.operator.check()  # stop before the next step if another crossfade took the lock over
        if self.on_step is not None:
            self.on_step(phase, step_name)

    def _verify(self, change: Change, current: ChangeState) -> None:
        problems = self._catalog_problems(change, current)
        if problems:
            raise VerificationError(problems)

    def _reflect(self, conn: sa.Connection, change: Change) -> Schema:
        return Schema.reflect(conn, change.tables(), self.dialect.schema)

    def _release_n_schema(self, conn: sa.Connection, change: Change, current: ChangeState) -> Schema:
        """The live schema with the NOT NULLs crossfade relaxed (expand on SQLite, contract before
        dropping triggers) put back: ops derive final constraints from release N's columns
        (rename_column keeps the old NOT NULL), not from the transition's relaxed ones."""
        schema = self._reflect(conn, change)
        for table, column in current.relaxed:
            if schema.has_column(table, column):
                schema.set_nullable(table, column, False)
        return schema

    def _refuse_cluster_problems(self, current: ChangeState) -> None:
        """Before contract's or rollback's DDL, what expand's preflight refuses on a cluster
        (Galera under RSU would run the DDL on this node only)."""
        with self.engine.connect() as conn:
            Preflight(errors=self.dialect.cluster_problems(conn, sorted(current.tables))).raise_for_errors()

    @contextmanager
    def _ddl_connection(self):
        with self.engine.connect() as conn, self.dialect.ddl_session(conn) as ddl:
            yield ddl


def compute_job(dialect, schema: Schema, work: compute.PythonBackfill, unblocked: list) -> backfill.Job:
    """A Python backfill as a backfill Job: the keyed batches, the checkpoint and the resume are
    backfill.py's; each batch reads, computes and writes (compute.batch_writer)."""
    table = schema.table(work.table)
    key = dialect.batch_key(table)
    return backfill.Job(work.name, table, compute.batch_writer(table, work, key, unblocked, dialect), writes=True)


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _repair_text(repair: dict) -> str:
    if repair.get("ambiguous") is None:
        return f"trigger repair begun at {repair['at']} did not finish (run expand again)"
    text = f"triggers repaired at {repair['at']}, {repair['reconciled']} row(s) reconciled"
    if repair.get("ambiguous"):
        text += (f", {repair['ambiguous']} row(s) ambiguous (written while the triggers were missing; "
                 "crossfade check --deep names them)")
    return text


__all__ = ["ChangeStatus", "Runner", "run_with_lock_timeout"]
