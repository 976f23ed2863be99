"""The rolling-upgrade simulator: release N and release N+1 write at once through every phase.

    release N      expand         migrate        roll           contract       release N+1
    [N writes] -> [N writes] -> [N, N+1]  ->  [N, N+1]  -> drain N -> [N+1] -> [N+1 writes]

Each phase lasts until its own action (expand, migrate, contract) is done and the workers have
made `writes_per_phase` writes in it. The sync law is checked after every runner step while the
triggers are installed, the journals at the end of the roll and after contract.
"""

from __future__ import annotations

import os
import random
import statistics
import time
from collections.abc import Callable, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

import sqlalchemy as sa

from .. import state
from ..change import Change
from ..dialects import for_dialect
from ..engines import check_url
from ..identification import identify_new_release
from ..runner import Runner
from . import computed, deadlocks
from .databases import ensure_database
from .deadlocks import StepClock
from .journal import LiveRows, Stage, Write
from .model import RELEASE_N, RELEASE_N1, TablePlan, plan_tables, release_names
from .nodes import Database, as_nodes
from .oracle import Finding, contract_problems, derived_rows, law_violations, lost_writes, row_history
from .phases import Phases, beyond_plans_problems, change_phases, tables_beyond_plans
from .report import CheckResult, DialectReport, Report, Span, Timeline
from .rowvalues import Namer, NoParent, RowMaker
from .values import ValueSource, ValueSpec
from .workers import Worker, start_workers
from .writes import write_row

DEFAULT_MAX_STALL = 1.0  # seconds: a write that waits longer fails the latency check
MAX_STALL_VARIABLE = "CROSSFADE_MAX_STALL"  # sets that default for the CLI, Settings and the pytest plugin
_STALLS_NAMED = 20  # the latency check's details name this many stalled writes, the earliest first
PHASES = ("release N", "expand", "migrate", "roll", "contract", "release N+1")


@dataclass
class Settings:
    """How a simulation runs: rows of release N before expand, writes per phase (by all workers),
    writer threads per release, the random seed, values for columns (`{"table.column": [...]}`),
    and `max_stall`, the seconds any one write may take before the latency check fails (default
    1 s, or the CROSSFADE_MAX_STALL variable; None reports the longest stall without failing)."""

    seed_rows: int = 200
    writes_per_phase: int = 300
    workers: int = 2  # per release
    seed: int = 0
    values: Mapping[str, ValueSpec] = field(default_factory=dict)
    max_phase_seconds: float = 60.0  # a phase ends by then even if its writes are short
    drain: bool = True  # False runs contract while release N still writes (it must then fail)
    runner_options: dict = field(default_factory=dict)  # passed to Runner(...)
    max_stall: float | None = field(default_factory=lambda: default_max_stall())  # None: report, never fail

    def __post_init__(self):
        for name in ("seed_rows", "writes_per_phase", "workers"):
            if getattr(self, name) < (0 if name == "seed_rows" else 1):
                raise ValueError(f"{name} must be at least {0 if name == 'seed_rows' else 1}")
        if self.max_stall is not None and not self.max_stall > 0:
            raise ValueError("max_stall must be more than 0 seconds (or None: no bound)")


def default_max_stall() -> float:
    """The latency bound when none is given: CROSSFADE_MAX_STALL (seconds) when set, else 1 s. A
    machine shared by many test suites can set a looser one for all of them at once."""
    text = os.environ.get(MAX_STALL_VARIABLE, "").strip()
    if not text:
        return DEFAULT_MAX_STALL
    try:
        seconds = float(text)
    except ValueError:
        seconds = 0.0
    if not seconds > 0:
        raise ValueError(f"{MAX_STALL_VARIABLE}={text!r}: give the seconds a write may take, more than 0")
    return seconds


def verify(change: Change, release_n: sa.MetaData, release_n1: sa.MetaData, urls: list[Database],
           settings: Settings | None = None, *, on_phase: Callable[[str, str], None] | None = None,
           phases: Phases | None = None) -> Report:
    """Simulate the rolling upgrade on every database in `urls` (each a scratch database): a
    URL, or `Nodes(url1, url2, url3)` for one database reached through a cluster's nodes
    (crossfade.testing.nodes: DDL on the first, release N on the second, N+1 on the third).
    `phases` makes what each phase runs (crossfade.testing.phases); by default Runner on `change`.
    A URL crossfade cannot use (no driver, another database) is refused before any simulation runs."""
    for database in urls:
        for url in as_nodes(database).urls:
            check_url(url)
    report = Report(change.id)
    for url in urls:
        report.results.append(simulate(change, release_n, release_n1, url, settings, on_phase=on_phase,
                                       phases=phases))
    return report


def simulate(change: Change, release_n: sa.MetaData, release_n1: sa.MetaData, url: Database,
             settings: Settings | None = None, *, on_phase=None, phases: Phases | None = None) -> DialectReport:
    return Simulation(change, release_n, release_n1, url, settings or Settings(), on_phase, phases).run()


class Simulation:
    def __init__(self, change: Change, release_n: sa.MetaData, release_n1: sa.MetaData, url: Database,
                 settings: Settings, on_phase=None, phases: Phases | None = None):
        self.step_runs: dict[str, int] = {}  # data step -> times it ran (computed.counting_data_steps)
        self.counting_steps = phases is None  # an Alembic revision's driver runs its own change objects
        if phases is None:
            change = computed.counting_data_steps(change, self.step_runs)
        self.change, self.release_n, self.release_n1 = change, release_n, release_n1
        self.settings = settings
        self.on_phase = on_phase or (lambda dialect, phase: None)
        self.plans: dict[str, TablePlan] = plan_tables(change, release_n, release_n1)
        self.values = value_source(self.plans, settings.values)
        self.nodes = as_nodes(url)
        self.url = sa.make_url(self.nodes.ddl)
        for node in self.nodes.urls:  # on Galera the first creates it; the others wait until they have it
            ensure_database(node)
        workers = settings.workers * 2 + 4
        self.engine = application_engine(sa.make_url(self.nodes.release_n), workers)
        # crossfade's own connections: its DDL session settings must not reach the workers' pool.
        self.ddl_engine = sa.create_engine(self.url, poolclass=sa.pool.NullPool, **patient_on_sqlite(self.url))
        # Release N+1's application: its own engine, identified where the change says it is.
        self.n1_engine = new_release_engine(change, application_engine(sa.make_url(self.nodes.release_n1), workers))
        self.read_settings = consistent_read_settings(self.ddl_engine)
        self.n1_starts_after = change.new_release_starts_after(self.engine.dialect.name)
        self.dialect = for_dialect(self.engine.dialect)
        runner = Runner(self.ddl_engine, on_step=self._after_runner_step, **settings.runner_options)
        self.driver = (phases or change_phases(change))(runner)
        self.beyond_plans = tables_beyond_plans(self.driver, self.plans, release_n, release_n1)  # no worker writes them
        self.report = DialectReport(self.engine.dialect.name, self.nodes.describe())
        self.steps = StepClock()  # when crossfade's steps ran: the deadlocks they caused
        self.stage = Stage("seed")
        self.rows = LiveRows()
        self.maker = RowMaker(self.plans, self.values, self.rows)
        self.seed_writes: list[Write] = []
        self.workers: dict[str, list[Worker]] = {RELEASE_N: [], RELEASE_N1: []}
        self.law_active = self.backfilled = False
        self.triggers_since: float | None = None  # when the first trigger was installed
        self.law_findings: dict[tuple, Finding] = {}
        self.phase_errors: list[str] = []
        self.phase_starts: list[tuple[str, float]] = []  # (phase, perf_counter when it began)
        # From expand's start to the last trigger's drop: when a block may refuse a write.
        self.block_window: list[float | None] = [None, None]
        self.computed: list[Finding] = []  # Python backfills' rows (computed.computed_findings)

    # --- the run -----------------------------------------------------------------------------
    def run(self) -> DialectReport:
        started = time.perf_counter()
        try:
            self._build_release_n()
            self._phases()
        finally:
            self._stop(RELEASE_N)
            self._stop(RELEASE_N1)
            self.report.seconds = time.perf_counter() - started
            self._final_checks()
            self.report.timeline = self._timeline(time.perf_counter())
            self.engine.dispose()
            self.n1_engine.dispose()
            self.ddl_engine.dispose()
        return self.report

    def _phases(self) -> None:
        driver = self.driver
        self._enter("release N")  # before its writers start: their first statements are its own
        self._start(RELEASE_N)
        steps = [
            ("release N", None),
            # Release N+1 starts when crossfade says it may: after expand with writer
            # identification, else once every row is derived (DESIGN 2).
            ("expand", lambda: (driver.expand(), self._start_new_release_after("expand"))),
            ("migrate", lambda: (driver.migrate(), self._backfill_done(), self._start_new_release_after("migrate"))),
            ("roll", None),
            ("contract", driver.contract),
            ("release N+1", None),
        ]
        for phase, action in steps:
            if phase == "contract":
                self.roll_findings = self._lost_writes()
                self._check_computed(values=False)  # release N's writes of the roll left none uncomputed
                if self.settings.drain:
                    self._stop(RELEASE_N)
            if not self._phase(phase, action):
                return

    def _enter(self, name: str) -> None:
        self.phase_starts.append((name, time.perf_counter()))
        self.stage.move_to(name)
        self.on_phase(self.report.dialect, name)

    def _phase(self, name: str, action) -> bool:
        if self.stage.name != name:
            self._enter(name)
        started = time.perf_counter()
        if name == "expand":
            self.block_window[0] = started
        if action is not None:
            self.steps.begin()
            try:
                action()
            except Exception as exc:  # noqa: BLE001 - the report names it; later phases are skipped
                self.phase_errors.append(f"{name}: {type(exc).__name__}: {exc}")
                return False
            finally:
                self.steps.end()
        while (not self._enough_writes(name)
               and time.perf_counter() - started < self.settings.max_phase_seconds
               and self._running()):
            time.sleep(0.01)
        self._check_law(f"end of {name}")
        return True

    # --- set-up and workers ------------------------------------------------------------------
    def _build_release_n(self) -> None:
        self.seed_writes = build_release_n(self.engine, self.change, self.plans, self.release_n, self.release_n1,
                                           self.values, seed_rows=self.settings.seed_rows, seed=self.settings.seed,
                                           beyond_plans=self.beyond_plans, maker=self.maker)
        self.driver.prepare()

    def _start_new_release_after(self, phase: str) -> None:
        if self.n1_starts_after == phase:
            self._start(RELEASE_N1)

    def _start(self, release: str) -> None:
        offset = 0 if release == RELEASE_N else 1000
        engine = self.engine if release == RELEASE_N else self.n1_engine

        def make(name: str, i: int) -> Worker:
            return Worker(name, release, engine, list(self.plans.values()), self.values, self.rows,
                          self.stage, seed=self.settings.seed * 7919 + offset + i, maker=self.maker,
                          namer=Namer(name, 2 + len(self._all_workers()) + i),
                          busy_budget=busy_budget(engine.url))

        self.workers[release] += start_workers(self.settings.workers, release, make)

    def _stop(self, release: str) -> None:
        for worker in self.workers[release]:
            worker.stop()
        for worker in self.workers[release]:
            worker.join()

    def _enough_writes(self, phase: str) -> bool:
        """Each release still writing has made its share of the phase's writes."""
        writing = [r for r, ws in self.workers.items() if any(w.is_alive() and not w.stopping.is_set() for w in ws)]
        share = -(-self.settings.writes_per_phase // max(1, len(writing)))
        return all(self.stage.writes_in(phase, release) >= share for release in writing)

    def _running(self) -> bool:
        return any(w.is_alive() for ws in self.workers.values() for w in ws)

    def _all_workers(self) -> list[Worker]:
        return [w for ws in self.workers.values() for w in ws]

    def _writes(self) -> list[Write]:
        return self.seed_writes + [w for worker in self._all_workers() for w in list(worker.journal.writes)]

    # --- the sync law, after every step ------------------------------------------------------
    def _after_runner_step(self, phase: str, step: str) -> None:
        if step.startswith("drop triggers"):
            self.law_active = False
            self.block_window[1] = time.perf_counter()
        self._check_law(f"{phase}: {step}")
        if law_starts(step):
            self.law_active = True
        if step == "record expanded":  # every trigger is in: each row inserted from now is derived
            self.triggers_since = time.perf_counter()
        self.steps.step_done(phase, step)

    def _backfill_done(self) -> None:
        self.backfilled = True
        self._check_law("migrate: done")
        self._check_computed(values=True)

    def _check_computed(self, values: bool) -> None:
        if not computed.python_backfills(self.change):
            return
        with self._paused(), self._reading() as conn:  # each committed write journaled before the read
            found = computed.computed_findings(conn, self.change, self._writes(), values=values)
        seen = {(f.table, f.key) for f in self.computed}
        self.computed += [f for f in found if (f.table, f.key) not in seen]

    def _check_law(self, where: str) -> None:
        if not self.law_active:
            return
        writes = self._writes()
        derived = derived_rows(writes, self.triggers_since)
        with self._reading() as conn:
            found = law_violations(conn, self.plans, backfilled=self.backfilled, derived=derived)
        if not found:
            return
        for table, key, rule in found:
            if (table, key, rule.split(" (reads")[0]) not in self.law_findings:
                history = row_history(writes, self.plans, table, key)
                self.law_findings[table, key, rule.split(" (reads")[0]] = Finding(table, key, f"{rule} after {where}", history)

    def _timeline(self, ended: float) -> Timeline:
        """The run as the HTML report draws it, in seconds since the first phase began."""
        if not self.phase_starts:
            return Timeline()
        origin = self.phase_starts[0][1]
        ends = [start for _, start in self.phase_starts[1:]] + [ended]
        phases = [Span(name, start - origin, end - origin) for (name, start), end in zip(self.phase_starts, ends)]
        steps = [Span(f"{w.phase}: {w.step}", w.start - origin, w.end - origin, w.kind) for w in self.steps.windows]
        writes = {release: sorted((s.start - origin, s.seconds, s.refused)
                                  for w in workers for s in w.journal.samples)
                  for release, workers in self.workers.items() if workers}
        return Timeline(phases, steps, writes, self.settings.max_stall)

    # --- the checks --------------------------------------------------------------------------
    @contextmanager
    def _reading(self):
        """A connection for the oracle, on crossfade's node, that sees every committed write
        (on Galera, another node's write may not be applied here yet)."""
        with self.ddl_engine.connect() as conn:
            for statement in self.read_settings:
                conn.exec_driver_sql(statement)
            yield conn

    def _lost_writes(self) -> list[Finding]:
        """Journals against the table, with every worker paused: a write committed between
        reading the journals and reading the table would otherwise look lost."""
        with self._paused(), self._reading() as conn:
            return lost_writes(conn, self.plans, self._writes())

    @contextmanager
    def _paused(self):
        alive = [w for w in self._all_workers() if w.is_alive()]
        for worker in alive:
            worker.pause_writing()
        try:
            for worker in alive:
                while not worker.held.wait(0.05) and worker.is_alive():
                    pass
            yield
        finally:
            for worker in alive:
                worker.resume_writing()

    def _final_checks(self) -> None:
        checks = self.report.checks
        crashed = [f"{w.name}: {type(w.crash).__name__}: {w.crash}" for w in self._all_workers() if w.crash]
        errors = self.phase_errors + crashed
        checks["phases"] = CheckResult("phases", not errors, "ok" if not errors else errors[0], errors)
        refusals = [r for w in self._all_workers() for r in w.journal.refusals]
        window = (self.block_window[0], self.block_window[1])
        blocked = [r for r in refusals
                   if computed.declared_refusal(r, self.plans, self.change, self.report.dialect, window)]
        failed = [r.describe() for r in refusals if r not in blocked]
        checks["no refused writes"] = _result("no refused writes", failed, f"{len(failed)} refused")
        notes = [f"{len(blocked)} writes to blocked columns refused, as declared"] if blocked else []
        self.report.deadlocks = deadlocks.count([r for w in self._all_workers() for r in w.journal.retried], self.steps)
        retried = deadlocks.total(self.report.deadlocks)
        if retried:  # reported, never hidden: crossfade's DDL (Galera) or the releases' writes caused them
            notes.append(f"{retried} deadlock(s) retried as an application must, "
                         f"{deadlocks.caused_by_ddl(self.report.deadlocks)} while crossfade's DDL ran")
        if notes and not failed:
            checks["no refused writes"].summary = f"ok ({'; '.join(notes)})"
        law = [f.describe() for f in self.law_findings.values()]
        checks["sync law"] = _result("sync law", law, f"{len(law)} row(s) broke it")
        if computed.python_backfills(self.change) and (self.backfilled or self.computed):  # else: not judged
            wrong = [f.describe() for f in self.computed]
            checks["python backfill"] = _result("python backfill", wrong, f"{len(wrong)} row(s) not as computed")
        if computed.data_step_names(self.change) and self.backfilled and self.counting_steps:
            steps = computed.data_step_findings(self.change, self.step_runs)
            checks["data steps"] = _result("data steps", steps, f"{len(steps)} step(s) not run exactly once")
        if self.stage.name not in ("contract", "release N+1"):
            return  # an earlier phase failed: there is no contract to judge
        roll = getattr(self, "roll_findings", [])
        final = self._lost_writes()
        lost = [f"at the end of the roll: {f.describe()}" for f in roll] + [
            f"after contract: {f.describe()}" for f in final]
        checks["no lost writes"] = _result("no lost writes", lost, f"{len(lost)} row(s) disagree")
        with self._reading() as conn:
            dirty = contract_problems(conn, self.dialect, self.change, self.plans, self.release_n1)
            dirty += beyond_plans_problems(conn, self.release_n1, self.beyond_plans)
        checks["clean contract"] = _result("clean contract", dirty, f"{len(dirty)} difference(s)")
        checks["latency"] = self._latency()

    def _latency(self) -> CheckResult:
        worst = (0.0, "", "")
        for phase in PHASES:
            for release in (RELEASE_N, RELEASE_N1):
                samples = [s for w in self.workers[release] for s in w.journal.latencies(phase)]
                if not samples:
                    continue
                samples.sort()
                self.report.latency.setdefault(phase, {})[release] = {
                    "writes": len(samples), "p50_ms": statistics.median(samples) * 1000,
                    "p99_ms": samples[min(len(samples) - 1, int(len(samples) * 0.99))] * 1000,
                    "max_ms": samples[-1] * 1000}
                self.report.writes += len(samples)
                if samples[-1] > worst[0]:
                    worst = (samples[-1], phase, release)
        summary = f"longest stall {worst[0] * 1000:.0f} ms: a release {worst[2]} write during {worst[1]}"
        limit = self.settings.max_stall
        if limit is None or worst[0] <= limit:
            return CheckResult("latency", True, summary)
        return CheckResult("latency", False, f"{summary}, above {limit * 1000:.0f} ms", self._stalls(limit))

    def _stalls(self, limit: float) -> list[str]:
        """Every write that waited longer than `limit`, with crossfade's steps that ran meanwhile."""
        stalls = sorted((s, w.release) for w in self._all_workers() for s in w.journal.samples if s.seconds > limit)
        origin = self.phase_starts[0][1] if self.phase_starts else 0.0
        lines = []
        for sample, release in stalls[:_STALLS_NAMED]:
            end = sample.start + sample.seconds
            steps = [f"{w.phase}: {w.step}" for w in self.steps.windows if w.start < end and w.end > sample.start]
            lines.append(f"a release {release} write during {self._phases_spanned(sample.phase, sample.start, end)} "
                         f"took {sample.seconds * 1000:.0f} ms "
                         f"(from {sample.start - origin:.2f} s); crossfade's steps meanwhile: "
                         + ("; ".join(steps) if steps else "none"))
        if len(stalls) > _STALLS_NAMED:
            lines.append(f"... and {len(stalls) - _STALLS_NAMED} more writes above {limit * 1000:.0f} ms")
        return lines

    def _phases_spanned(self, began_in: str, start: float, end: float) -> str:
        """The phase a write began in and each one entered before it ended: a write that began
        as expand ended and waited out migrate's first step is named with both."""
        later = [name for name, entered in self.phase_starts if start < entered < end and name != began_in]
        return " and ".join([began_in, *dict.fromkeys(later)])


# --- set-up, shared with the Hypothesis mode (stateful.py) -------------------------------------

# SQLite queues no writer: one that finds the database locked sleeps and tries again. Its busy
# handler (sqlite3_busy_timeout, Python's `timeout`) sleeps 1, 2, 5, 10 ... then 100 ms between
# tries, and back-to-back writers always hold the lock when a 100 ms sleeper wakes: release N's
# writers stalled each other for 1-4 s before crossfade did anything. So the simulated
# applications write as a well-set-up SQLite application does: WAL (readers never block a
# writer, a commit needs no fsync with synchronous=NORMAL), BEGIN IMMEDIATE (the write lock is
# taken at BEGIN, where the busy handler applies, never half-way through a transaction), a busy
# handler that gives up after SQLITE_BUSY_SECONDS of short sleeps, and a writer that then tries
# again at once (workers.py), for up to SQLITE_BUSY_BUDGET in all before the write counts as
# refused. A long lock crossfade holds still shows, as the stall it is, in the latency check.
SQLITE_BUSY_SECONDS = 0.01
SQLITE_BUSY_BUDGET = 60.0
# The simulated applications' commits need not wait for the disk (a scratch database: what a crash
# may lose is never read): PostgreSQL lets a session say so, and 12,000 commits take half as long.
# MariaDB's innodb_flush_log_at_trx_commit is the server's alone.
_NO_DISK_WAIT = {"postgresql": "SET synchronous_commit = off"}
# crossfade's own catalog reads between steps wait as long as a server's would.
_SQLITE_DDL_BUSY_SECONDS = 60


def application_engine(url: sa.URL, workers: int, **options) -> sa.Engine:
    """An engine of a simulated application, with a pool of `workers` connections (on SQLite:
    WAL, BEGIN IMMEDIATE, a short busy wait; the workers retry it)."""
    if url.get_backend_name() != "sqlite":
        engine = sa.create_engine(url, pool_size=workers, max_overflow=workers, **options)
        statement = _NO_DISK_WAIT.get(url.get_backend_name())
        if statement is not None:
            sa.event.listen(engine, "connect", lambda dbapi_connection, _: _run_once(dbapi_connection, statement))
        return engine
    use_wal(url)
    engine = sa.create_engine(url, pool_size=workers, max_overflow=workers,
                              connect_args={"timeout": SQLITE_BUSY_SECONDS}, **options)
    sa.event.listen(engine, "connect", _sqlite_application_connection)
    sa.event.listen(engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
    return engine


def _run_once(dbapi_connection, statement: str) -> None:
    """A session setting, sent when the pool opens the connection."""
    cursor = dbapi_connection.cursor()
    cursor.execute(statement)
    cursor.close()
    dbapi_connection.commit()


def _sqlite_application_connection(dbapi_connection, _record) -> None:
    dbapi_connection.isolation_level = None  # pysqlite's own BEGIN off: the "begin" event's BEGIN IMMEDIATE
    dbapi_connection.execute("PRAGMA synchronous = NORMAL")


def use_wal(url: sa.URL) -> None:
    """Put the SQLite database in WAL mode (it stays so: the mode is stored in the file)."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA journal_mode = WAL")
    finally:
        engine.dispose()


def busy_budget(url: sa.URL) -> float:
    """Seconds a simulated application's write tries again while SQLite is locked (servers queue it)."""
    return SQLITE_BUSY_BUDGET if url.get_backend_name() == "sqlite" else 0.0


def patient_on_sqlite(url: sa.URL) -> dict:
    """On SQLite, crossfade's connections wait for the lock as long as a server's would. Its DDL
    still tries under its own short timeout; its catalog reads between steps keep this one."""
    if url.get_backend_name() != "sqlite":
        return {}
    return {"connect_args": {"timeout": _SQLITE_DDL_BUSY_SECONDS}}


def consistent_read_settings(engine: sa.Engine) -> tuple[str, ...]:
    """What a session runs so its reads see every committed write (TriggerDialect's)."""
    with engine.connect() as conn:
        return for_dialect(engine.dialect).consistent_read_settings(conn)


def new_release_engine(change: Change, engine: sa.Engine) -> sa.Engine:
    """Release N+1's engine: marked with `identify_new_release` when the change declares it."""
    if change.new_release_identified:
        identify_new_release(engine)
    return engine


def law_starts(step: str) -> bool:
    """The runner step after which the sync law holds: the first trigger's install, or the end
    of an expand that installs none (a rename_table stand-in that is a view)."""
    return step.startswith("install triggers") or step == "record expanded"


def value_source(plans: Mapping[str, TablePlan], overrides: Mapping[str, ValueSpec]) -> ValueSource:
    """Values for every column the writers write; fails at once, naming a column it cannot fill."""
    values = ValueSource(overrides)
    for plan in plans.values():
        for release, shape in plan.shapes.items():
            for name in shape.column_names():
                if name not in plan.keys or plan.supplies_keys():
                    column = plan.column(release, name)
                    values.check(column.table, column)
    return values


def build_release_n(engine: sa.Engine, change: Change, plans: Mapping[str, TablePlan], release_n: sa.MetaData,
                    release_n1: sa.MetaData, values: ValueSource, *, seed_rows: int, seed: int,
                    beyond_plans: set[str] = frozenset(), maker: RowMaker | None = None) -> list[Write]:
    """Release N's tables of the change, freshly made, with `seed_rows` rows each; returns the
    seed inserts as journal entries. Whatever an earlier run left (either release's tables and
    views, the state rows of changes to them, PostgreSQL functions whose triggers went with their
    table) is dropped. `beyond_plans`: other tables the phases touch, made empty as release N has
    them; one release N lacks (a revision's plain operation creates it) must not exist before expand.
    `maker` makes the rows (keys, unique values, foreign keys) and learns of them in its LiveRows."""
    maker = maker or RowMaker(plans, values, LiveRows())
    namer = Namer("seed", 1)
    names = sorted(release_names(plans, RELEASE_N) | release_names(plans, RELEASE_N1) | set(beyond_plans))
    parents = _referenced_tables(release_n, release_n1, names)
    with engine.begin() as conn:
        _drop_views(conn, names)  # a rename_table stand-in (PostgreSQL, MariaDB)
        release_n1.drop_all(conn, tables=[release_n1.tables[n] for n in names if n in release_n1.tables])
        release_n.drop_all(conn, tables=[release_n.tables[n] for n in names if n in release_n.tables] + parents)
        dialect = for_dialect(engine.dialect)
        for function in dialect.orphan_functions(conn):
            conn.exec_driver_sql(dialect.drop_sql("function", function, ""))
        for other in state.load_all(conn):  # the tables they were changing are gone
            if other.change_id == change.id or set(other.tables) & set(names):
                state.delete(conn, other.change_id)
        own = [release_n.tables[n] for n in sorted(release_names(plans, RELEASE_N))]
        own += [release_n.tables[n] for n in sorted(beyond_plans) if n in release_n.tables]
        release_n.create_all(conn, tables=parents + own)
    rng = random.Random(f"seed rows {seed}")  # not a writer's sequence: writer N-1's is Random(seed * 7919)
    for parent in parents:  # rows for foreign keys to point at; no worker writes these tables
        writable = [c for c in parent.columns if not (c.primary_key and c.autoincrement)]
        with engine.begin() as conn:
            for _ in range(seed_rows):
                conn.execute(parent.insert().values({c.name: values.value(rng, parent, c) for c in writable}))
    writes = []
    shared: dict[tuple, object] = {}  # (move, parent key, column) -> the value all its rows hold
    for name in [t.name for t in release_n.sorted_tables if t.name in plans]:  # parents first
        plan = plans[name]
        with engine.begin() as conn:
            for _ in range(seed_rows):
                try:
                    row = maker.row(plan, RELEASE_N, rng, namer, plan.writable(RELEASE_N), insert=True)
                except NoParent:
                    continue  # every parent row has its one child already
                for column in list(row):
                    move = plan.moved_from_here(column)
                    if move is not None:  # rows of one parent agree on the value it will hold
                        row[column] = shared.setdefault((move, row[move.source_key], column), row[column])
                for rule in plan.derives:  # as for a derived value: expand refuses rows that disagree
                    for source in [s for s in rule.sources if s.table == name]:
                        if row.get(source.column) is not None and row.get(source.via) is not None:
                            row[source.column] = shared.setdefault((rule, row[source.via]), row[source.column])
                t0 = time.perf_counter()
                key, _, _ = write_row(conn, plan, RELEASE_N, "insert", None, row)
                writes.append(Write("seed", RELEASE_N, "seed", name, key, "insert", row, t0, t0))
        for write in writes[-seed_rows:]:
            if write.table == name:  # committed: later tables' foreign keys may point at them
                maker.rows.add(name, write.key)
    return writes


def _drop_views(conn: sa.Connection, names: list[str]) -> None:
    quote = conn.dialect.identifier_preparer.quote
    for view in sorted(set(sa.inspect(conn).get_view_names()) & set(names)):
        conn.exec_driver_sql(f"DROP VIEW {quote(view)}")


def _referenced_tables(release_n: sa.MetaData, release_n1: sa.MetaData, names: list[str]) -> list[sa.Table]:
    """Tables outside the change that its tables' foreign keys point at in either release (a
    change may add the key), as release N has them, parents first."""
    wanted: set[str] = set()
    pending = list(names)
    while pending:
        name = pending.pop()
        keys = [k for md in (release_n, release_n1) if name in md.tables for k in md.tables[name].foreign_keys]
        for key in keys:
            parent = key.target_fullname.split(".")[0]
            if parent not in wanted and parent not in names and parent in release_n.tables:
                wanted.add(parent)
                pending.append(parent)
    return [t for t in release_n.sorted_tables if t.name in wanted]


def _result(name: str, details: list[str], failed_summary: str) -> CheckResult:
    return CheckResult(name, not details, "ok" if not details else failed_summary, details)
