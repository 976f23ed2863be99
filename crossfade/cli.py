"""The `crossfade` command: plan, expand, migrate, contract, rollback, status, check, verify, demo,
and for Alembic projects init and revision.

Every command takes CHANGES (a change module, a dotted module name or a directory of modules,
see `crossfade.loader`; or an Alembic project, see `crossfade.alembic`) and, when it needs a
database, `--url` or the CROSSFADE_URL variable.
crossfade's own errors are printed as one red line with exit code 1, never as a traceback; a
phase that finds another crossfade running (crossfade/oplock.py) exits with BUSY (75) instead.

Start-up stays fast (`crossfade --help` measured by benchmarks/startup.py): this module imports
only Typer and Rich's console; each command imports what it needs (SQLAlchemy, the runner,
Alembic, the simulator, Hypothesis) when it runs.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import Enum
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape

from .errors import ChangeLoadError, CrossfadeError, MissingDependencyError, OperatorBusyError

if TYPE_CHECKING:
    import sqlalchemy as sa
    from rich.table import Table
    from rich.tree import Tree

    from . import plan as planning
    from .change import Change
    from .dialects import TriggerDialect
    from .loader import LoadedChanges
    from .runner import ChangeStatus, Runner
    from .schema import Schema

# backfill.DEFAULT_BATCH_SECONDS, repeated so that --help does not import the backfill engine
# (tests/test_install.py holds them equal).
DEFAULT_BATCH_SECONDS = 0.04

app = typer.Typer(
    help="Zero-downtime rolling upgrades for SQLAlchemy applications: expand, migrate, contract.",
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
)
out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


class DialectName(str, Enum):
    postgresql = "postgresql"
    mysql = "mysql"
    sqlite = "sqlite"


# Exit codes of `check`, as Keystone's `db_sync --check`.
UP_TO_DATE, PROBLEM, NEEDS_EXPAND, NEEDS_MIGRATE, NEEDS_CONTRACT = 0, 1, 2, 3, 4
# A phase command that found another crossfade holding the operator lock (sysexits' EX_TEMPFAIL:
# nothing was changed, try again later).
BUSY = 75
_NEEDS = {  # by state.Phase value
    "pending": NEEDS_EXPAND, "rolled_back": NEEDS_EXPAND,
    "expanded": NEEDS_MIGRATE, "migrating": NEEDS_MIGRATE,
    "migrated": NEEDS_CONTRACT, "contracted": UP_TO_DATE,
}
_CHECK_WORDS = {UP_TO_DATE: "up to date", PROBLEM: "problem", NEEDS_EXPAND: "needs expand",
                NEEDS_MIGRATE: "needs migrate", NEEDS_CONTRACT: "needs contract"}

ChangesArg = Annotated[str, typer.Argument(
    metavar="CHANGES", help="A change module (file or dotted name), or a directory of them (run in file-name order); "
    "or an Alembic project (its alembic.ini or the directory holding it): its pending revisions.")]
UrlOpt = Annotated[str | None, typer.Option(
    "--url", envvar="CROSSFADE_URL", show_envvar=True, help="SQLAlchemy database URL.")]
LockTimeoutOpt = Annotated[float, typer.Option(
    "--lock-timeout", min=0.0, help="Seconds each DDL attempt may wait for its lock before retrying.")]
ForeignTriggersOpt = Annotated[bool, typer.Option(
    "--allow-foreign-triggers", help="Proceed although the table has triggers crossfade did not write.")]
WaitOpt = Annotated[float, typer.Option(
    "--wait", min=0.0, help="Seconds to wait while another crossfade runs a phase on this database; "
    f"then stop with exit code {BUSY} naming it (default 0: stop at once).")]
DeepOpt = Annotated[bool, typer.Option(
    "--deep", help="Also read every row (in short batches, online) and report those that break the sync or a "
    "link law: writes the triggers did not see. Contract runs this check itself before dropping anything.")]


# --- plan --------------------------------------------------------------------------------

@app.command()
def plan(
    changes: ChangesArg,
    sql: Annotated[bool, typer.Option("--sql", help="Print every phase's SQL, not just the steps.")] = False,
    dialect: Annotated[DialectName | None, typer.Option(
        "--dialect", help="Render for this database (default: all three). Not with --url.")] = None,
    url: Annotated[str | None, typer.Option(
        "--url", help="Plan against this live database's tables instead of the modules' `metadata`.")] = None,
    batch_size: Annotated[int | None, typer.Option(
        "--batch-size", min=1, help="Show fixed backfill batches of this size (default: sized by time).")] = None,
) -> None:
    """Show what each phase will do, without changing any database."""
    from . import plan as planning
    from .alembic.locate import find_project
    from .loader import load_changes

    with _clean_errors():
        project = find_project(changes)  # an Alembic project: crossfade/alembic/plan.py
        if project is not None:
            from .alembic.plan import plan_project

            planned = plan_project(project, dialect and dialect.value, url, batch_size,
                                   note=lambda line: err.print(f"[dim]{escape(line)}[/dim]", soft_wrap=True))
        else:
            planned = ((target, planning.build_plan(pending, target, schema, batch_size=batch_size))
                       for target, schema, pending in _plan_targets(load_changes(changes), dialect, url))
        for target, sections in planned:
            if sql:
                typer.echo(planning.render_sql(sections, target))
            else:
                out.print(_plan_tree(sections, target))


def _plan_targets(loaded: LoadedChanges, dialect: DialectName | None,
                  url: str | None) -> Iterator[tuple[TriggerDialect, Schema, list[Change]]]:
    """(dialect, release N's schema, changes to plan) for each database the plan is for."""
    from . import state
    from .dialects import NAMES, for_dialect, offline
    from .schema import Schema
    from .state import Phase

    if url is None:
        if loaded.metadata is None:
            raise ChangeLoadError("the change modules define no `metadata` (release N's sqlalchemy.MetaData); "
                                  "add one, or plan against a live database with --url")
        for name in [dialect.value] if dialect else NAMES:
            yield offline(name), Schema.from_metadata(loaded.metadata), loaded.changes
        return
    engine = _engine(url)
    try:
        target = for_dialect(engine.dialect)
        if dialect is not None and target.name != dialect.value:
            raise CrossfadeError(f"--dialect {dialect.value} does not match the {target.name} database at --url")
        with engine.connect() as conn:
            schema = Schema.reflect(conn, set().union(*(c.tables() for c in loaded.changes)))
            phases = {c.id: state.load(conn, c.id).phase for c in loaded.changes}
    finally:
        engine.dispose()
    # The live tables are release N's only for changes this database has not started.
    pending = [c for c in loaded.changes if phases[c.id] in (Phase.PENDING, Phase.ROLLED_BACK)]
    for change in loaded.changes:
        if change not in pending:
            err.print(f"[dim]{escape(change.id)} is {phases[change.id].value} in this database; "
                      "not planned (plan without --url shows all of it)[/dim]", soft_wrap=True)
    yield target, schema, pending


def _plan_tree(sections: list[planning.Section], target: TriggerDialect) -> Tree:
    from rich.tree import Tree

    tree = Tree(f"[bold]plan for {target.name}[/bold] [dim](add --sql for the statements)[/dim]")
    changes: dict[str, Tree] = {}
    for section in sections:
        node = changes.get(section.change_id) or tree.add(f"[bold]{escape(section.change_id)}[/bold]")
        changes[section.change_id] = node
        summary = f"; {section.ddl_summary()}" if section.ddl_summary() else ""
        phase = node.add(f"[cyan]{section.phase}[/cyan] [dim]{escape(section.note + summary)}[/dim]")
        for step in section.steps:
            phase.add(f"{escape(step.title)} [dim]({len(step.sql)} statement{'s' * (len(step.sql) != 1)})[/dim]")
    return tree


# --- phases ------------------------------------------------------------------------------

@app.command()
def expand(changes: ChangesArg, url: UrlOpt = None, lock_timeout: LockTimeoutOpt = 0.05,
           allow_foreign_triggers: ForeignTriggersOpt = False, wait: WaitOpt = 0.0) -> None:
    """Additive DDL and the sync triggers; release N keeps working."""
    # An Alembic project's first revisions may create the tables, even the SQLite file.
    with _runner(changes, url, lock_timeout, allow_foreign_triggers, builds_project=True,
                 operation="expand", operator_wait=wait) as (runner, loaded):
        for change in loaded.changes:
            if _skip_contracted(runner, change, "expand"):
                continue
            _run_phase("expand", change, runner.expand, "expanded: both releases can write now")


@app.command()
def migrate(
    changes: ChangesArg, url: UrlOpt = None, lock_timeout: LockTimeoutOpt = 0.05,
    allow_foreign_triggers: ForeignTriggersOpt = False, wait: WaitOpt = 0.0,
    batch_size: Annotated[int | None, typer.Option(
        "--batch-size", min=1, help="Rows per batch, fixed (default: batches sized to --batch-seconds).")] = None,
    batch_seconds: Annotated[float | None, typer.Option(
        "--batch-seconds", help="Target duration of each batch, in seconds; batch sizes adapt to it "
        f"(default {DEFAULT_BATCH_SECONDS}).")] = None,
    pause: Annotated[float | None, typer.Option(
        "--pause", help="Seconds to sleep after each batch (default: none, but SQLite rests until a writer "
        "waiting for the lock has tried again, ~22 ms after a 40 ms batch).")] = None,
    jobs: Annotated[int, typer.Option(
        "--jobs", help="Workers backfilling disjoint key ranges of a table at once, each with its own "
        "connection (SQLite: one).")] = 1,
    max_lag: Annotated[str, typer.Option(
        "--max-lag", help="Wait between batches while a replica is more than this many seconds behind "
        "(PostgreSQL: every replica of the primary, a paused one included; MariaDB: each --replica; Galera: "
        "flow control), or 'off'.")] = "1",
    max_load: Annotated[str | None, typer.Option(
        "--max-load", help="Wait between batches while server load passes a threshold, VARIABLE=N[,...]: MariaDB "
        "a global status variable (Threads_running=25), PostgreSQL active_backends=N or backends=N "
        "(default: no load limit).")] = None,
    replica: Annotated[list[str] | None, typer.Option(
        "--replica", help="URL of a replica whose lag --max-lag watches (repeatable; MariaDB's primary does not "
        "know its replicas' lag).")] = None,
) -> None:
    """Backfill existing rows in keyed batches (resumes where it stopped)."""
    from .backfill import BackfillOptionError
    from .backfill import check_options as check_backfill_options

    try:
        check_backfill_options(batch_size, batch_seconds, pause, jobs)
    except BackfillOptionError as exc:
        hint = " / ".join(f"'--{option.replace('_', '-')}'" for option in exc.options)
        raise typer.BadParameter(exc.problem, param_hint=hint) from None
    throttle = _throttle_options(max_lag, max_load, replica or [])
    with _runner(changes, url, lock_timeout, allow_foreign_triggers, batch_size=batch_size,
                 batch_seconds=batch_seconds, pause=pause, jobs=jobs, operation="migrate",
                 operator_wait=wait, throttle=throttle) as (runner, loaded):
        for change in loaded.changes:
            if _skip_contracted(runner, change, "migrate"):
                continue
            _run_phase("migrate", change, _with_progress_bar(runner, runner.migrate),
                       "migrated: roll your nodes to release N+1, then contract")


def _throttle_options(max_lag: str, max_load: str | None, replicas: list[str]):
    from .throttle import ThrottleOptionError, ThrottleOptions, parse_max_load

    try:
        lag = None if max_lag.strip().lower() == "off" else float(max_lag)
    except ValueError:
        raise typer.BadParameter(f"must be a number of seconds or 'off' (got {max_lag!r})",
                                 param_hint="'--max-lag'") from None
    try:
        return ThrottleOptions(lag, parse_max_load(max_load), tuple(replicas))
    except ThrottleOptionError as exc:
        raise typer.BadParameter(exc.problem, param_hint=f"'{exc.option}'") from None


@app.command()
def contract(changes: ChangesArg, url: UrlOpt = None, lock_timeout: LockTimeoutOpt = 0.05,
             allow_foreign_triggers: ForeignTriggersOpt = False, wait: WaitOpt = 0.0) -> None:
    """Only when no node of release N is left: drop triggers and old columns, apply NOT NULL."""
    with _runner(changes, url, lock_timeout, allow_foreign_triggers, operation="contract",
                 operator_wait=wait) as (runner, loaded):
        for change in loaded.changes:
            if _skip_contracted(runner, change, "contract"):
                continue
            _run_phase("contract", change, runner.contract, "contracted: release N+1's schema is final")


@app.command()
def rollback(changes: ChangesArg, url: UrlOpt = None, lock_timeout: LockTimeoutOpt = 0.05,
             allow_foreign_triggers: ForeignTriggersOpt = False, wait: WaitOpt = 0.0) -> None:
    """Before contract: undo expand (newest change first); release N's data is intact."""
    from .state import IN_FLIGHT, Phase

    with _runner(changes, url, lock_timeout, allow_foreign_triggers, operation="rollback",
                 operator_wait=wait) as (runner, loaded):
        ordered = list(reversed(loaded.changes))
        phases = {c.id: runner.load(c).phase for c in ordered}
        in_flight = [c for c in ordered if phases[c.id] in IN_FLIGHT]
        if not in_flight:
            contracted = [c for c in ordered if phases[c.id] is Phase.CONTRACTED]
            if contracted:
                runner.rollback(contracted[0])  # raises the runner's PhaseError, which says why
            out.print("nothing to roll back: no change is in flight")
            return
        for change in in_flight:
            _run_phase("rollback", change, runner.rollback, "rolled back: release N's schema is back")


# --- watching and scripting --------------------------------------------------------------

@app.command()
def status(changes: ChangesArg, url: UrlOpt = None,
           as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
           deep: DeepOpt = False) -> None:
    """Per change: phase, backfill progress, triggers installed and unchanged, repairs, problems."""
    with _runner(changes, url) as (runner, loaded):
        statuses = [runner.status(change, deep=deep) for change in loaded.changes]
        holder = runner.operator.holder()
        if as_json:
            operator = {"operator": holder.describe()} if holder else {}
            typer.echo(json.dumps([s.to_json() | operator for s in statuses], indent=2))
            return
        if holder is not None:
            out.print(f"[yellow]operator lock held by {escape(holder.describe())}[/yellow]", soft_wrap=True)
        for change_status in statuses:
            out.print(_status_table(change_status))


def _status_table(status_: ChangeStatus) -> Table:
    from rich.table import Table

    ok, bad = "[green]yes[/green]", "[red]no[/red]"
    table = Table(title=f"[bold]{escape(status_.change_id)}[/bold]", title_justify="left", show_header=False)
    table.add_column("what", style="dim")
    table.add_column("state")
    table.add_row("phase", f"[cyan]{status_.phase.value}[/cyan]")
    if status_.schema is not None:
        table.add_row("schema", escape(status_.schema))
    table.add_row("release N+1", status_.new_release)
    for name, fraction in sorted(status_.backfill.items()):
        rows = status_.backfill_rows.get(name)
        table.add_row(f"backfill {escape(name)}", f"{fraction:.0%}" + (f", {escape(_rows_text(rows))}" if rows else ""))
    for name, done in sorted(status_.data_steps.items()):
        table.add_row(f"data step {escape(name)}", done)
    for trigger in status_.triggers:
        table.add_row(f"{trigger['kind']} {escape(trigger['name'])}",
                      f"installed {ok if trigger['installed'] else bad}, "
                      f"checksum matches {ok if trigger['matches'] else bad}")
    for repair in status_.repairs:
        table.add_row("repair", escape(repair))
    for problem in status_.problems:
        table.add_row("[red]problem[/red]", f"[red]{escape(problem)}[/red]")
    if not status_.problems:
        table.add_row("problems", "[green]none[/green]")
    for warning in status_.warnings:
        table.add_row("[yellow]warning[/yellow]", f"[yellow]{escape(warning)}[/yellow]")
    return table


@app.command()
def check(changes: ChangesArg, url: UrlOpt = None, deep: DeepOpt = False) -> None:
    """Exit 0 up to date, 2 needs expand, 3 needs migrate, 4 needs contract, 1 a problem."""
    from .state import SYNCING, Phase

    with _runner(changes, url) as (runner, loaded):
        codes = []
        holder = runner.operator.holder()
        running = holder is not None and not holder.gone
        if running:
            out.print(f"a phase is running: {escape(holder.describe())}", soft_wrap=True)
        for change in loaded.changes:
            current = runner.load(change)
            problems = runner.problems(change, current, deep=deep)
            if current.phase is Phase.MIGRATING and not running and not problems:
                problems = [f"{change.id} stopped while migrating; run migrate again to finish it"]
            code = PROBLEM if problems else _NEEDS.get(current.phase.value, PROBLEM)
            codes.append(code)
            detail = f": {'; '.join(problems)}" if problems else ""
            if problems and current.phase is Phase.CONTRACTED:
                detail += _changed_after_contract(change)
            detail = escape(detail)
            if current.phase in SYNCING:  # while the releases overlap: when release N+1 may start
                detail += f"; release N+1 {runner.new_release(change, current.phase)}"
            out.print(f"{escape(change.id)}: {current.phase.value}, {_CHECK_WORDS[code]}{detail}", soft_wrap=True)
            for warning in runner.replication_warnings(change, current):
                out.print(f"  [yellow]warning:[/yellow] {escape(warning)}", soft_wrap=True)
    raise typer.Exit(_overall(codes))


def _overall(codes: list[int]) -> int:
    """A problem wins; otherwise the earliest phase any change still needs."""
    if PROBLEM in codes:
        return PROBLEM
    needed = [c for c in codes if c != UP_TO_DATE]
    return min(needed) if needed else UP_TO_DATE


# --- verify ------------------------------------------------------------------------------

@app.command()
def verify(
    changes: ChangesArg,
    urls: Annotated[list[str], typer.Option(
        "--url", help="A scratch database to simulate on (repeat for a matrix). Its tables of the "
                      "change are dropped and rebuilt (and an Alembic project's alembic_version). "
                      "A cluster's nodes as `--url node1,node2,node3`: crossfade's DDL on the first, "
                      "release N's writers on the second, release N+1's on the third (with two, both "
                      "on the second).")],
    writes: Annotated[int, typer.Option("--writes", min=1, help="Writes per phase, by all workers.")] = 2000,
    seed_rows: Annotated[int, typer.Option("--seed-rows", min=0, help="Rows of release N before expand.")] = 200,
    workers: Annotated[int, typer.Option("--workers", min=1, help="Writer threads per release.")] = 2,
    seed: Annotated[int, typer.Option("--seed", help="Random seed of the writes.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
    hypothesis: Annotated[bool, typer.Option(
        "--hypothesis", help="Search sequential writes and phases with Hypothesis instead, and shrink a "
                             "failure to a minimal sequence (needs the hypothesis package).")] = False,
    examples: Annotated[int, typer.Option("--examples", min=1, help="With --hypothesis: sequences to try.")] = 15,
) -> None:
    """Prove each change: release N and N+1 write at once through every phase; exit 1 on any failure.
    An Alembic project's revisions run whole, their plain Alembic operations at their phase."""
    from .engines import check_url
    from .loader import load_changes
    from .testing import Report, Settings, simulator
    from .testing.nodes import Nodes

    with _clean_errors():
        hypothesis_verify = _hypothesis_verify() if hypothesis else None
        databases = [Nodes.parse(url) for url in urls]
        for nodes in databases:
            for url in nodes.urls:
                check_url(url)
            if hypothesis and len(nodes.urls) > 1:
                raise CrossfadeError("--hypothesis writes one statement at a time: give one URL per database")
        loaded = load_changes(changes)
        reports: list[Report] = []
        for change, simulated in zip(loaded.changes, loaded.simulations):
            if simulated.release_n is None or simulated.release_n1 is None:
                raise CrossfadeError(f"{change.id}: its module must define `metadata` (release N) and "
                                     "`metadata_n1` (release N+1) for verify")
            settings = Settings(seed_rows=seed_rows, writes_per_phase=writes, workers=workers, seed=seed,
                                values=simulated.values)
            phase_line = (lambda dialect, phase: None) if as_json else (
                lambda dialect, phase: err.print(f"  [dim]{dialect}: {phase}[/dim]"))
            if hypothesis_verify is not None:
                reports.append(Report(change.id, [
                    hypothesis_verify(change, simulated.release_n, simulated.release_n1, url,
                                      values=simulated.values, max_examples=examples, seed=seed,
                                      phases=simulated.phases)
                    for url in urls]))
            else:
                reports.append(simulator.verify(change, simulated.release_n, simulated.release_n1, databases,
                                                settings, on_phase=phase_line, phases=simulated.phases))
    if as_json:
        out.print_json(data=[r.to_json() for r in reports])
    else:
        for report in reports:
            report.print(out)
    raise typer.Exit(UP_TO_DATE if all(r.ok for r in reports) else PROBLEM)


def _hypothesis_verify() -> Callable:
    """The Hypothesis mode, which needs the hypothesis package (a test dependency)."""
    try:
        from .testing.stateful import hypothesis_verify
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] != "hypothesis":
            raise
        raise MissingDependencyError("hypothesis", "verify --hypothesis") from None
    return hypothesis_verify


# --- demo --------------------------------------------------------------------------------

@app.command()
def demo(
    url: Annotated[str | None, typer.Option(
        "--url", help="Run on this database instead of a temporary SQLite file (it must have no `images` table).")] = None,
    rows: Annotated[int, typer.Option("--rows", min=1, help="Rows of release N to start with.")] = 1000,
    keep: Annotated[bool, typer.Option("--keep", help="Keep the demo's table and database afterwards.")] = False,
) -> None:
    """A complete rolling upgrade of Glance's is_public -> visibility, narrated."""
    from .demo import run_demo

    with _clean_errors():
        run_demo(url, console=out, rows=rows, keep=keep)


# --- Alembic projects (crossfade/alembic/scaffold.py) ------------------------------------

@app.command()
def init(
    directory: Annotated[str, typer.Argument(
        help="Where `alembic init` puts the scripts of a new project.")] = "alembic",
    config: Annotated[str, typer.Option("--config", "-c", help="The project's ini file.")] = "alembic.ini",
) -> None:
    """Add crossfade to an Alembic project (creating the project when --config does not exist)."""
    from .alembic import scaffold

    with _clean_errors():
        for line in scaffold.init(directory, config):
            out.print(escape(line), soft_wrap=True)


@app.command()
def revision(
    message: Annotated[str, typer.Option("--message", "-m", help="What the revision changes.")],
    config: Annotated[str, typer.Option("--config", "-c", help="The project's ini file, or its directory.")]
    = "alembic.ini",
) -> None:
    """Write a crossfade revision: one Alembic revision file per change, ops inside upgrade()."""
    from .alembic import scaffold

    with _clean_errors():
        out.print(f"wrote {escape(str(scaffold.revision(config, message)))}", soft_wrap=True)


# --- shared ------------------------------------------------------------------------------

def _run_phase(phase: str, change: Change, run: Callable[[Change], None], done: str) -> None:
    out.print(f"[bold]{phase}[/bold] {escape(change.id)}")
    run(change)
    out.print(f"  [green]{escape(done)}[/green]")


def _skip_contracted(runner: Runner, change: Change, phase: str) -> bool:
    """A contracted change has nothing left to do, unless the database no longer looks contracted:
    then `phase` stops with the problem, as `check` reports it."""
    from .state import Phase

    current = runner.load(change)
    if current.phase is not Phase.CONTRACTED:
        return False
    problems = runner.problems(change, current)
    if problems:
        raise CrossfadeError(f"{change.id} is contracted, but {'; '.join(problems)}{_changed_after_contract(change)}")
    out.print(f"[bold]{phase}[/bold] {escape(change.id)}: [dim]already contracted, nothing to do[/dim]")
    return True


def _changed_after_contract(change: Change) -> str:
    """What to do when a contracted change's tables no longer look contracted."""
    return (": the database changed after contract (a table recreated or restored?). To upgrade it again, "
            f"delete the change's crossfade_state row (DELETE FROM crossfade_state WHERE change_id = '{change.id}') "
            "and run expand; otherwise put back the schema contract left")


def _speed_text(p) -> str:
    """The progress line's tail: rows/s, ETA, and why the backfill waits, where known."""
    from .progress import describe_speed

    return describe_speed(p.rate, p.eta, p.waiting)


def _rows_text(rows: dict) -> str:
    """`status`'s backfill detail: rows done of total, rows/s, ETA, waiting."""
    from .progress import describe_speed

    speed = describe_speed(rows.get("rows_per_second"), rows.get("eta_seconds"), rows.get("waiting"))
    return f"{rows['done']:,} of {rows['total']:,} rows" + (f", {speed}" if speed else "")


def _with_progress_bar(runner: Runner, run: Callable[[Change], None]) -> Callable[[Change], None]:
    """`run` with a Rich progress bar per table fed by the runner's backfill progress."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskID,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    from .backfill import Progress as BackfillProgress

    def run_with_bar(change: Change) -> None:
        progress = Progress(TextColumn("  backfill {task.description}"), BarColumn(), MofNCompleteColumn(),
                            TaskProgressColumn(), TimeElapsedColumn(), TextColumn("{task.fields[speed]}"),
                            console=out)
        tasks: dict[str, TaskID] = {}
        waiting_on: dict[str, bool] = {}

        def on_progress(p: BackfillProgress) -> None:
            if p.table not in tasks:
                tasks[p.table] = progress.add_task(escape(p.table), total=p.total, speed="")
            if not out.is_terminal and waiting_on.get(p.table, False) != bool(p.waiting):  # a log: when it changes
                out.print(f"  backfill {escape(p.table)} " + (f"waiting: {escape(p.waiting)}" if p.waiting else "resumed"),
                          soft_wrap=True)
            waiting_on[p.table] = bool(p.waiting)
            progress.update(tasks[p.table], completed=p.done, total=p.total, speed=escape(_speed_text(p)))

        runner.on_progress = on_progress
        try:
            with progress:
                run(change)
        finally:
            runner.on_progress = None
    return run_with_bar


@contextmanager
def _runner(changes: str, url: str | None, lock_timeout: float = 0.05, allow_foreign_triggers: bool = False,
            builds_project: bool = False, operation: str | None = None, **options):
    """The Runner (an Alembic project's RevisionRunner) and the changes. `builds_project`: the
    command may create an Alembic project's SQLite file; otherwise a missing one is an error.
    `operation`: the phase command, named by the operator lock each phase takes."""
    from .alembic.locate import find_project
    from .loader import load_changes
    from .runner import Runner

    with _clean_errors():
        project = find_project(changes)  # an Alembic project: its pending revisions (crossfade/alembic)
        loaded = load_changes(changes) if project is None else None
        engine = _engine(url or (project.url if project is not None else None),
                         may_create_file=builds_project and project is not None)
        try:
            runner = Runner(engine, lock_timeout=lock_timeout, allow_foreign_triggers=allow_foreign_triggers,
                            log=lambda message: out.print(f"  [dim]{escape(message)}[/dim]"), **options)
            if operation is not None:  # each phase call takes the operator lock, naming this command
                runner.operator.command = f"crossfade {operation} {changes}"
            if project is not None:
                from .alembic.runner import open_upgrade

                runner, loaded = open_upgrade(project, runner)
                err.print(f"[dim]{escape(loaded.summary())}[/dim]", soft_wrap=True)
            yield runner, loaded
            for warning in runner.warnings:
                err.print(f"[yellow]warning:[/yellow] {escape(warning)}", soft_wrap=True)
        finally:
            engine.dispose()


def _engine(url: str | None, may_create_file: bool = False) -> sa.Engine:
    from .engines import open_engine

    if not url:
        raise CrossfadeError("no database given: pass --url or set CROSSFADE_URL (or an Alembic project's "
                             "sqlalchemy.url)")
    return open_engine(url, may_create_file=may_create_file)


@contextmanager
def _clean_errors():
    """crossfade's errors and database errors as one red line and exit code 1."""
    try:
        yield
    except OperatorBusyError as exc:
        _fail(str(exc), code=BUSY)
    except CrossfadeError as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        _fail("interrupted; every phase is resumable: run the same command again to finish it", code=130)
    except Exception as exc:
        message = _database_error(exc)
        if message is None:
            raise
        _fail(message)


def _database_error(exc: Exception) -> str | None:
    """SQLAlchemy's and the driver's errors in one line (None for anything else: a bug, shown whole).
    SQLAlchemy is imported already whenever one of its errors was raised."""
    import sqlalchemy as sa

    if isinstance(exc, sa.exc.DBAPIError):
        return f"database error: {_first_line(exc.orig if exc.orig is not None else exc)}"
    if isinstance(exc, sa.exc.SQLAlchemyError):
        return f"database error: {_first_line(exc)}"
    return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _fail(message: str, code: int = PROBLEM) -> None:
    err.print(f"[bold red]error:[/bold red] [red]{escape(message)}[/red]", soft_wrap=True)
    raise typer.Exit(code)


def main() -> None:
    app()


if __name__ == "__main__":
    main()


__all__ = ["app", "main"]
