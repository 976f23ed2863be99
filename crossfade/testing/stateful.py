"""The simulator's Hypothesis mode: the rolling upgrade as a state machine of single writes.

Release N and release N+1 write one statement at a time, each through its own release's Table
objects, and the phases (expand, migrate, drain release N and contract) are rules too. After every
rule the sync law holds (while the triggers are installed) and no write is lost; a refused write,
a phase that fails and an unclean contract are failures as well. Hypothesis searches for a
sequence that breaks one of these, and the failure comes back shrunk to a minimal sequence:

    from crossfade.testing import Report, hypothesis_verify
    result = hypothesis_verify(change, release_n_metadata, release_n1_metadata, url)
    assert result.ok, Report(change.id, [result]).failures()

Writes are sequential, so the journal's order is exact. Each example costs a schema and real DDL,
so runs are small and a failure is shrunk on a budget (see `hypothesis_verify`). The bare machine
also runs under pytest, `TestUpgrade = upgrade_machine(change, release_n, release_n1, url).TestCase`,
with your Hypothesis settings; its shrinking is then Hypothesis's alone, which on a real database
can take minutes.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Mapping, Sequence
from typing import Any

import hypothesis
import sqlalchemy as sa
from hypothesis import HealthCheck, Phase, Verbosity
from hypothesis import strategies as st
from hypothesis.errors import HypothesisException
from hypothesis.stateful import RuleBasedStateMachine, get_state_machine_test, invariant, precondition, rule

from ..change import Change
from ..dialects import for_dialect
from ..runner import Runner
from .databases import ensure_database
from .journal import Write
from .model import RELEASE_N, RELEASE_N1, TablePlan, plan_tables
from .oracle import contract_problems, derived_rows, law_violations, lost_writes
from .phases import Phases, beyond_plans_problems, change_phases, tables_beyond_plans
from .report import CHECKS, CheckResult, DialectReport
from .simulator import build_release_n, law_starts, new_release_engine, value_source
from .values import ValueSource, ValueSpec, recipe
from .workers import WRITE_MIX
from .writes import write_row

_CHECKS = [name for name, _ in CHECKS if name != "latency"]  # sequential writes say nothing of latency
_KINDS = [kind for kind, _ in WRITE_MIX]  # the simulator's kinds of write, in its order
# Who writes in each phase, and each phase step: the phase it needs, the phase it leaves.
_WRITERS = {"release N": (RELEASE_N,), "expand": (RELEASE_N, RELEASE_N1), "roll": (RELEASE_N, RELEASE_N1),
            "release N+1": (RELEASE_N1,)}
_PHASE_STEPS = {"expand": ("release N", "expand"), "migrate": ("expand", "roll"),
                "drain release N, contract": ("roll", "release N+1")}


class CheckFailed(Exception):
    """One check failed: which, in which phase, on which row (table None: no row), and how."""

    def __init__(self, check: str, phase: str, what: str, table: str | None = None, key=None):
        super().__init__(f"{check}: {what} (phase {phase})")
        self.check, self.phase, self.what, self.table, self.key = check, phase, what, table, key


@dataclasses.dataclass(frozen=True)
class _Action:
    """One step, concrete enough to replay: a phase step (release None) or a write. A write names
    its row by the id of the action that inserted it (seed rows: -1, -2, ...), so that the row
    stays the same when earlier steps are deleted."""

    id: int
    release: str | None
    kind: str  # a _PHASE_STEPS key, or insert / update / delete
    table: str | None = None
    row: int | None = None
    values: tuple[tuple[str, Any], ...] = ()


@dataclasses.dataclass(frozen=True)
class _Failing:
    """A failing example as the report shows it."""

    failure: CheckFailed
    actions: tuple[_Action, ...]
    steps: tuple[str, ...]  # the actions as run, one readable line each
    seeds: tuple[Write, ...]

    def size(self) -> tuple[int, int]:
        return len(self.actions), sum(map(len, self.steps))


class _ShrinkingBudgetSpent(BaseException):
    """Ends the Hypothesis run; a BaseException, so Hypothesis lets it through as it lets a
    KeyboardInterrupt. The smallest failing example so far is kept in `_Upgrade.smallest`."""


@dataclasses.dataclass
class _Upgrade:
    """What every example of one run shares: the change, its plans, the engines, the tallies."""

    change: Change
    release_n: sa.MetaData
    release_n1: sa.MetaData
    plans: dict[str, TablePlan]
    engine: sa.Engine
    ddl_engine: sa.Engine
    n1_engine: sa.Engine  # release N+1's, identified where the change declares it
    overrides: Mapping[str, ValueSpec]
    seed_values: ValueSource
    seed_rows: int
    seed: int
    shrink_examples: int | None = None  # Hypothesis examples after the first failure; None: no limit
    phases: Phases | None = None  # what each phase runs (crossfade.testing.phases); None: Runner on the change
    examples: int = 0
    writes: int = 0
    contracts: int = 0
    smallest: _Failing | None = None
    replaying: bool = False
    _first_failure: int | None = None
    _strategies: dict = dataclasses.field(default_factory=dict)

    def writers(self, phase: str) -> tuple[str, ...]:
        """Who may write in `phase`: release N+1 from expand on with writer identification, else
        only once migrate is done (DESIGN 2)."""
        if phase == "expand" and self.change.new_release_starts_after(self.engine.dialect.name) == "migrate":
            return (RELEASE_N,)
        return _WRITERS[phase]

    def engine_of(self, release: str) -> sa.Engine:
        return self.n1_engine if release == RELEASE_N1 else self.engine

    def failed(self, failing: _Failing) -> None:
        """Keep the smallest failure Hypothesis found; the first one starts the shrinking budget."""
        if self.replaying:
            return
        if self.smallest is None or failing.size() < self.smallest.size():
            self.smallest = failing
        if self._first_failure is None:
            self._first_failure = self.examples

    def shrinking_budget_spent(self) -> bool:
        return (not self.replaying and self._first_failure is not None and self.shrink_examples is not None
                and self.examples - self._first_failure >= self.shrink_examples)

    def strategy(self, release: str, plan: TablePlan, columns: list[str]) -> st.SearchStrategy[dict]:
        """Values for `columns` as `release` writes them: overrides first, else by type; NULL
        only where that release's model allows it."""
        return st.fixed_dictionaries({name: self._column(plan.column(release, name)) for name in columns})

    def _column(self, column: sa.Column) -> st.SearchStrategy:
        table = column.table
        key = (id(table), column.name)
        if key not in self._strategies:
            spec = self.overrides.get(f"{table.name}.{column.name}")
            if spec is None:
                values = _by_type(column)
            elif callable(spec):
                values = st.randoms(use_true_random=False).map(spec)
            else:
                values = st.sampled_from(list(spec))
            self._strategies[key] = values | st.none() if column.nullable else values
        return self._strategies[key]


def _by_type(column: sa.Column) -> st.SearchStrategy:
    """The random writers' recipe (values.recipe) as a strategy: the same values, so every value
    reads back equal."""
    made = recipe(column)
    if made.choices == (False, True):
        return st.booleans()  # shrinks towards False, as sampled_from would not
    if made.choices is not None:
        return st.sampled_from(made.choices)
    if made.letters is not None:
        return st.text(made.letters, min_size=1, max_size=made.longest)
    integers = st.integers(made.low, made.high)
    return integers if made.convert is int else integers.map(made.convert)


def _step(method):
    """An action or invariant whose every failure is a check's: an exception that is not already
    a CheckFailed (a phase that raised, a crash) fails the "phases" check, as in the simulator."""
    @functools.wraps(method)
    def run(self: UpgradeMachine, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except HypothesisException:
            raise
        except CheckFailed as failure:
            self._failed(failure)
            raise
        except Exception as exc:
            failure = CheckFailed("phases", self.phase, f"{type(exc).__name__}: {exc}")
            self._failed(failure)
            raise failure from exc
    return run


class UpgradeMachine(RuleBasedStateMachine):
    """One example: a fresh release-N schema with seed rows, then rules until Hypothesis stops.
    `upgrade_machine()` makes the subclass that knows which change, models and database."""

    upgrade: _Upgrade

    def __init__(self):
        super().__init__()
        up = self.upgrade
        if up.shrinking_budget_spent():
            raise _ShrinkingBudgetSpent
        up.examples += 1
        self.phase = "release N"
        self.law_active = self.backfilled = False
        self.triggers_since: float | None = None  # when expand had installed every trigger
        self.actions: list[_Action] = []  # as run
        self.steps: list[str] = []
        self.driver = (up.phases or change_phases(up.change))(Runner(up.ddl_engine, on_step=self._after_runner_step))
        self.beyond_plans = tables_beyond_plans(self.driver, up.plans, up.release_n, up.release_n1)  # none written
        self.writes: list[Write] = build_release_n(up.engine, up.change, up.plans, up.release_n, up.release_n1,
                                                   up.seed_values, seed_rows=up.seed_rows, seed=up.seed,
                                                   beyond_plans=self.beyond_plans)
        self.driver.prepare()
        self.seeds = tuple(self.writes)
        self.rows = {-i: (w.table, w.key) for i, w in enumerate(self.writes, 1)}  # live rows by action id

    def failing(self, failure: CheckFailed) -> _Failing:
        return _Failing(failure, tuple(self.actions), tuple(self.steps), self.seeds)

    def _failed(self, failure: CheckFailed) -> None:
        self.upgrade.failed(self.failing(failure))
        if hasattr(failure, "add_note"):  # Python 3.11+: readable steps under a plain Hypothesis run
            failure.add_note("\n".join(["steps:", *self.steps]))

    # --- the rules ---------------------------------------------------------------------------
    @rule(data=st.data())
    def write(self, data):
        """One statement by a release that may write now: N until drained, N+1 from expand on."""
        release = data.draw(st.sampled_from(self.upgrade.writers(self.phase)), label="release")
        self.perform(self._draw_write(release, data))

    @precondition(lambda self: self._may("expand"))
    @rule()
    def expand(self):
        self.perform(_Action(len(self.actions), None, "expand"))

    @precondition(lambda self: self._may("migrate"))
    @rule()
    def migrate(self):
        self.perform(_Action(len(self.actions), None, "migrate"))

    @precondition(lambda self: self._may("drain release N, contract"))
    @rule()
    def drain_and_contract(self):
        """Release N's last node stops writing; then contract."""
        self.perform(_Action(len(self.actions), None, "drain release N, contract"))

    def _may(self, action: _Action | str) -> bool:
        if isinstance(action, str):
            return self.phase == _PHASE_STEPS[action][0]
        if action.release is None:
            return self._may(action.kind)
        return action.release in self.upgrade.writers(self.phase) and (action.row is None or action.row in self.rows)

    def _draw_write(self, release: str, data) -> _Action:
        # The same choices whatever the state (a row is picked by position), so that a step the
        # shrinker deletes leaves the later steps meaning the same.
        kind = data.draw(st.sampled_from(_KINDS), label="kind")
        plan = data.draw(st.sampled_from(list(self.upgrade.plans.values())), label="table")
        rows = [ref for ref, (table, _) in self.rows.items() if table == plan.name]
        if not rows:
            kind = "insert"
        if kind == "delete" and plan.parent:
            kind = "update row"  # other tables' rows reference it: no application deletes those blindly
        row = None if kind == "insert" else rows[data.draw(st.integers(0, 255), label="row") % len(rows)]
        if kind == "insert":
            columns = plan.key_given(release) + plan.insertable(release)
        elif kind == "delete":
            columns = []
        else:
            some = {"update synced": plan.synced, "update plain": plan.plain, "update row": plan.updatable}[kind]
            columns = some(release) or plan.updatable(release)
            if kind != "update row":
                columns = data.draw(st.lists(st.sampled_from(columns), min_size=1, unique=True), label="columns")
            columns = plan.with_required(release, columns)
        values = data.draw(self.upgrade.strategy(release, plan, columns)) if columns else {}
        return _Action(len(self.actions), release, kind.split()[0], plan.name, row, tuple(values.items()))

    # --- one action --------------------------------------------------------------------------
    @_step
    def perform(self, action: _Action) -> None:
        """Run `action` (a replayed one is skipped when it no longer may run: its row is gone,
        or its phase or release is out of turn), then nothing else: invariants run after it."""
        if not self._may(action):
            return
        self.actions.append(action)
        if action.release is None:
            self._phase_step(action.kind)
        else:
            self._write(action)

    def _write(self, action: _Action) -> None:
        plan = self.upgrade.plans[action.table]
        values = dict(action.values)
        key = None if action.row is None else self.rows[action.row][1]
        start = time.perf_counter()
        try:
            with self.upgrade.engine_of(action.release).begin() as conn:
                key, affected, values = write_row(conn, plan, action.release, action.kind, key, values)
        except sa.exc.DBAPIError as exc:
            message = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
            declared = any(block.message[:60] in message for block in plan.blocks)  # as the simulator judges
            self.steps.append(_describe(action.release, action.kind, plan.name, key, values)
                              + ("  <- refused, as block_writes declares" if declared else "  <- refused"))
            if declared:
                return
            raise CheckFailed("no refused writes", self.phase,
                              f"release {action.release}'s {action.kind} was refused: {message}", plan.name, key) from None
        end = time.perf_counter()
        if action.kind != "insert" and affected == 0 and self._not_shown_yet(plan, action.release, key):
            self.steps.append(_describe(action.release, action.kind, plan.name, key, values)
                              + "  <- matched no row: release N+1's tables do not show it before the backfill")
            return
        self.steps.append(_describe(action.release, action.kind, plan.name, key, values))
        self.upgrade.writes += 1
        self.writes.append(Write(action.release, action.release, self.phase, plan.name, key, action.kind, values,
                                 start, end))
        if action.kind == "insert":
            self.rows[action.id] = (plan.name, key)
        elif action.kind == "delete":
            del self.rows[action.row]
        if action.kind != "insert" and affected != 1:
            raise CheckFailed("no lost writes", self.phase, f"release {action.release}'s {action.kind} matched "
                              f"{affected} rows, not the one row it named", plan.name, key)

    def _not_shown_yet(self, plan: TablePlan, release: str, key) -> bool:
        """Whether release N+1 cannot see a row release N still has because the backfill has not
        reached it: SQLite's rename_table stand-in is a table that holds a row once a write or the
        backfill copied it (as a split's new row, or a sync group's new columns, wait for it)."""
        if release != RELEASE_N1 or self.backfilled:
            return False
        table = plan.shapes[RELEASE_N].main
        with self.upgrade.engine.connect() as conn:
            return conn.execute(sa.select(table.c[plan.key]).where(table.c[plan.key] == key)).first() is not None

    def _phase_step(self, step: str) -> None:
        up = self.upgrade
        self.steps.append(step)
        self.phase = step.split(", ")[-1]  # expand, migrate or contract, while it runs
        {"expand": self.driver.expand, "migrate": self.driver.migrate,
         "drain release N, contract": self.driver.contract}[step]()
        self.phase = _PHASE_STEPS[step][1]
        if step == "migrate":
            self.backfilled = True
        elif step == "drain release N, contract":
            up.contracts += 1
            with up.engine.connect() as conn:
                dirty = contract_problems(conn, for_dialect(up.engine.dialect), up.change, up.plans, up.release_n1)
                dirty += beyond_plans_problems(conn, up.release_n1, self.beyond_plans)
            if dirty:
                raise CheckFailed("clean contract", self.phase, "; ".join(dirty))

    def _after_runner_step(self, phase: str, step: str) -> None:
        """The simulator's scope: the law holds from the triggers' install until their drop.
        Nothing else writes meanwhile, so only steps that may touch rows are checked: a backfill
        batch, DDL (a SQLite table rebuild copies rows); not the saves of crossfade's state."""
        if step.startswith("drop triggers"):
            self.law_active = False
        if not step.startswith("record "):
            self._check_law(f"{phase} ({step})")
        if law_starts(step):
            self.law_active = True
        if step == "record expanded":  # every trigger is in: each row inserted from now is derived
            self.triggers_since = time.perf_counter()

    # --- the invariants ----------------------------------------------------------------------
    @invariant()
    @_step
    def sync_law_holds_and_no_write_is_lost(self):
        self._check_law(self.phase)
        with self.upgrade.engine.connect() as conn:
            lost = lost_writes(conn, self.upgrade.plans, self.writes, backfilled=self.backfilled)
        if lost:
            raise CheckFailed("no lost writes", self.phase, lost[0].what, lost[0].table, lost[0].key)

    def _check_law(self, phase: str) -> None:
        if not self.law_active:
            return
        with self.upgrade.engine.connect() as conn:
            found = law_violations(conn, self.upgrade.plans, backfilled=self.backfilled, limit=1,
                                   derived=derived_rows(self.writes, self.triggers_since))
        if found:
            table, key, broken = found[0]
            raise CheckFailed("sync law", phase, broken, table, key)


def _describe(release: str, kind: str, table: str, key, values: dict) -> str:
    shown = ", ".join(f"{k}={v!r}" for k, v in values.items())
    return f"{release}: {kind} {table}" + ("" if key is None else f" {key}") + (f" SET {shown}" if shown else "")


def upgrade_machine(change: Change, release_n: sa.MetaData, release_n1: sa.MetaData, url: str, *,
                    values: Mapping[str, ValueSpec] | None = None, seed_rows: int = 3,
                    seed: int = 0, phases: Phases | None = None) -> type[UpgradeMachine]:
    """A state machine class for one change on one scratch database; each example rebuilds
    release N's tables there with `seed_rows` rows per table (`seed` picks their values).
    `phases` makes what each phase runs, as in `simulate`."""
    plans = plan_tables(change, release_n, release_n1)
    overrides = dict(values or {})
    seed_values = value_source(plans, overrides)  # a column without values fails here, named
    parsed = sa.make_url(url)
    ensure_database(parsed)
    # Two pools, as in the simulator: crossfade's DDL session settings never reach the writers.
    upgrade = _Upgrade(change, release_n, release_n1, plans, sa.create_engine(parsed, pool_size=1),
                       sa.create_engine(parsed, pool_size=1), new_release_engine(change, sa.create_engine(parsed, pool_size=1)), overrides, seed_values, seed_rows, seed, phases=phases)
    return type(f"Upgrade_{change.id}", (UpgradeMachine,), {"upgrade": upgrade})


def hypothesis_verify(change: Change, release_n: sa.MetaData, release_n1: sa.MetaData, url: str, *,
                      values: Mapping[str, ValueSpec] | None = None, max_examples: int = 15, steps: int = 12,
                      seed_rows: int = 3, seed: int | None = None, shrink_examples: int = 10,
                      phases: Phases | None = None) -> DialectReport:
    """Search for a sequence of writes and phases that breaks the rolling upgrade of `change` on
    the scratch database `url`; a failed check's details name the row and the phase and list the
    shrunk sequence, one step a line.

    `max_examples` sequences of at most `steps` rules, each from a fresh release-N schema with
    `seed_rows` rows per table (`values` as in `Settings.values`). `seed` makes the search
    reproducible; None searches the same way every run. Hypothesis shrinks a failure for at most
    `shrink_examples` examples, then every step is tried away in turn. `phases` makes what each
    phase runs, as in `simulate` (an Alembic revision's: crossfade.alembic.phases.revision_phases).
    """
    machine = upgrade_machine(change, release_n, release_n1, url, values=values, seed_rows=seed_rows,
                              seed=seed or 0, phases=phases)
    upgrade = machine.upgrade
    upgrade.shrink_examples = shrink_examples
    report = DialectReport(upgrade.engine.dialect.name, upgrade.engine.url.render_as_string(hide_password=True))
    test = get_state_machine_test(machine, settings=hypothesis.settings(
        max_examples=max_examples, stateful_step_count=steps, deadline=None, database=None,
        derandomize=seed is None, suppress_health_check=list(HealthCheck), report_multiple_bugs=False,
        phases=(Phase.explicit, Phase.generate, Phase.shrink), verbosity=Verbosity.quiet, print_blob=False))
    if seed is not None:
        test = hypothesis.seed(seed)(test)
    started = time.perf_counter()
    try:
        try:
            test()
        except (CheckFailed, _ShrinkingBudgetSpent):
            pass  # upgrade.smallest holds the failure
        except HypothesisException:
            if upgrade.smallest is None:
                raise  # Hypothesis could not search at all (a health check, an invalid setting)
            # else a flaky failure: the shrunk example passed when replayed, but it did fail once
        failing = upgrade.smallest and _without_needless_steps(machine, upgrade.smallest)
    finally:
        report.seconds = time.perf_counter() - started
        report.writes = upgrade.writes
        upgrade.engine.dispose()
        upgrade.ddl_engine.dispose()
        upgrade.n1_engine.dispose()
    searched = f"{upgrade.examples} example(s), {upgrade.contracts} reaching contract"
    for name in _CHECKS:
        report.checks[name] = CheckResult(name, True, searched)
    if failing is not None:
        check = failing.failure.check
        report.checks[check] = CheckResult(check, False, _summary(failing.failure), _details(failing, seed_rows))
    return report


def _without_needless_steps(machine: type[UpgradeMachine], failing: _Failing) -> _Failing:
    """Delete the steps the failure does not need. Hypothesis's shrinker takes hundreds of
    examples to delete steps, and every example here builds a schema and runs DDL; so after a
    short Hypothesis shrink each step is tried away in turn, the last first (when step i is tried,
    the steps after it are already settled), keeping every deletion that still fails the check."""
    machine.upgrade.replaying = True
    try:
        # Not the last step: without it, what remains ran, checked, before the failure.
        for i in reversed(range(len(failing.actions) - 1)):
            if i >= len(failing.actions) - 1:
                continue  # a deletion made the failure come earlier: these steps are gone already
            again = _replay(machine, failing.actions[:i] + failing.actions[i + 1:])
            if again is not None and again.failure.check == failing.failure.check:
                failing = again
        return failing
    finally:
        machine.upgrade.replaying = False


def _replay(machine: type[UpgradeMachine], actions: Sequence[_Action]) -> _Failing | None:
    """Run `actions` on a fresh example, checking the invariants as Hypothesis does."""
    example = machine()
    try:
        example.sync_law_holds_and_no_write_is_lost()
        for action in actions:
            example.perform(action)
            example.sync_law_holds_and_no_write_is_lost()
    except CheckFailed as failure:
        return example.failing(failure)
    return None


def _row(failure: CheckFailed) -> str:
    if failure.table is None:
        return ""
    return failure.table + ("" if failure.key is None else f" row {failure.key}")


def _summary(failure: CheckFailed) -> str:
    return "failed" + (f" on {_row(failure)}" if _row(failure) else "") + f" in phase {failure.phase}"


def _details(failing: _Failing, seed_rows: int) -> list[str]:
    """What broke, where and when, then the sequence a step a line (the failing row's seed insert
    first, as step "seed"): short enough that a printed report's first lines tell the story."""
    failure = failing.failure
    lines = [(f"{_row(failure)}: " if _row(failure) else "") + f"{failure.what}; phase {failure.phase}; "
             f"shrunk to {len(failing.steps)} step(s) after {seed_rows} seed row(s) per table:"]
    lines += [f"  seed. {_describe(RELEASE_N, 'insert', w.table, w.key, w.values)}" for w in failing.seeds
              if (w.table, w.key) == (failure.table, failure.key)]
    lines += [f"  {i}. {step}" for i, step in enumerate(failing.steps, 1)]
    return lines
