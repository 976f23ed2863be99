"""`crossfade expand`, `migrate`, `contract` and `rollback`: the phases of a rolling upgrade."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import click
from rich.markup import escape

from ..errors import CrossfadeError
from .common import (
    BUSY,
    PATH_HELP,
    Command,
    changes_source,
    config_option,
    open_runner,
    out,
    path_argument,
    url_option,
)

if TYPE_CHECKING:
    from ..change import Change
    from ..runner import Runner

# backfill.DEFAULT_BATCH_SECONDS, repeated so that --help does not import the backfill engine
# (tests/test_install.py holds them equal).
DEFAULT_BATCH_SECONDS = 0.04


def _phase_options(command: Callable) -> Callable:
    """PATH, -c, --url, and how a phase waits: for table locks, and for another crossfade."""
    for option in reversed([
        path_argument, config_option, url_option(),
        click.option("--lock-timeout", type=click.FloatRange(min=0.0), default=0.05, show_default=True,
                     metavar="SECONDS", help="Seconds each DDL attempt may wait for its lock before retrying."),
        click.option("--allow-foreign-triggers", is_flag=True,
                     help="Proceed although the table has triggers crossfade did not write."),
        click.option("--wait", type=click.FloatRange(min=0.0), default=0.0, metavar="SECONDS",
                     help="Seconds to wait while another crossfade runs a phase on this database; then stop "
                          f"with exit code {BUSY} naming it (default 0: stop at once)."),
    ]):
        command = option(command)
    return command


@click.command(cls=Command, short_help="Additive DDL and the sync triggers.", epilog=PATH_HELP, examples="""
crossfade expand examples/glance/changes --url sqlite:///glance.db
crossfade expand -c alembic.ini                  the project's pending revisions, at sqlalchemy.url
CROSSFADE_URL=postgresql://app@db/app crossfade expand changes/ --wait 60
""")
@_phase_options
def expand(path: str | None, config: str | None, url: str | None, lock_timeout: float,
           allow_foreign_triggers: bool, wait: float) -> None:
    """Additive DDL and the sync triggers; release N keeps working."""
    # An Alembic project's first revisions may create the tables, even the SQLite file.
    with open_runner(changes_source(path, config), url, lock_timeout, allow_foreign_triggers, builds_project=True,
                     operation="expand", operator_wait=wait) as (runner, loaded):
        for change in loaded.changes:
            if _skip_contracted(runner, change, "expand"):
                continue
            _run_phase("expand", change, runner.expand, "expanded: both releases can write now")


@click.command(cls=Command, short_help="Backfill existing rows in keyed batches.", epilog=PATH_HELP, examples="""
crossfade migrate changes/ --url postgresql://app@db/app
crossfade migrate -c alembic.ini --jobs 4 --max-lag 2      four key ranges at once; wait for replicas
crossfade migrate changes/ --batch-size 500 --pause 0.1    fixed batches with a rest after each
""")
@_phase_options
@click.option("--batch-size", type=click.IntRange(min=1), metavar="ROWS",
              help="Rows per batch, fixed (default: batches sized to --batch-seconds).")
@click.option("--batch-seconds", type=float, metavar="SECONDS",
              help=f"Target duration of each batch; batch sizes adapt to it (default {DEFAULT_BATCH_SECONDS}).")
@click.option("--pause", type=float, metavar="SECONDS",
              help="Seconds to sleep after each batch (default: none, but SQLite rests until a writer waiting "
                   "for the lock has tried again, ~22 ms after a 40 ms batch).")
@click.option("--jobs", type=int, default=1, show_default=True, metavar="N",
              help="Workers backfilling disjoint key ranges of a table at once, each with its own connection "
                   "(SQLite: one).")
@click.option("--max-lag", default="1", show_default=True, metavar="SECONDS|off",
              help="Wait between batches while a replica is more than this many seconds behind (PostgreSQL: every "
                   "replica of the primary, a paused one included; MariaDB: each --replica; Galera: flow control).")
@click.option("--max-load", metavar="VARIABLE=N[,...]",
              help="Wait between batches while server load passes a threshold: MariaDB a global status variable "
                   "(Threads_running=25), PostgreSQL active_backends=N or backends=N (default: no load limit).")
@click.option("--replica", multiple=True, metavar="URL",
              help="A replica whose lag --max-lag watches (repeatable; MariaDB's primary does not know its "
                   "replicas' lag).")
def migrate(path: str | None, config: str | None, url: str | None, lock_timeout: float,
            allow_foreign_triggers: bool, wait: float, batch_size: int | None, batch_seconds: float | None,
            pause: float | None, jobs: int, max_lag: str, max_load: str | None, replica: tuple[str, ...]) -> None:
    """Backfill existing rows in keyed batches (resumes where it stopped)."""
    from ..backfill import BackfillOptionError
    from ..backfill import check_options as check_backfill_options

    try:
        check_backfill_options(batch_size, batch_seconds, pause, jobs)
    except BackfillOptionError as exc:
        hint = " / ".join(f"'--{option.replace('_', '-')}'" for option in exc.options)
        raise click.BadParameter(exc.problem, param_hint=hint) from None
    throttle = _throttle_options(max_lag, max_load, list(replica))
    with open_runner(changes_source(path, config), url, lock_timeout, allow_foreign_triggers, batch_size=batch_size,
                     batch_seconds=batch_seconds, pause=pause, jobs=jobs, operation="migrate",
                     operator_wait=wait, throttle=throttle) as (runner, loaded):
        for change in loaded.changes:
            if _skip_contracted(runner, change, "migrate"):
                continue
            _run_phase("migrate", change, _with_progress_bar(runner, runner.migrate),
                       "migrated: roll your nodes to release N+1, then contract")


def _throttle_options(max_lag: str, max_load: str | None, replicas: list[str]):
    from ..throttle import ThrottleOptionError, ThrottleOptions, parse_max_load

    try:
        lag = None if max_lag.strip().lower() == "off" else float(max_lag)
    except ValueError:
        raise click.BadParameter(f"must be a number of seconds or 'off' (got {max_lag!r})",
                                 param_hint="'--max-lag'") from None
    try:
        return ThrottleOptions(lag, parse_max_load(max_load), tuple(replicas))
    except ThrottleOptionError as exc:
        raise click.BadParameter(exc.problem, param_hint=f"'{exc.option}'") from None


@click.command(cls=Command, short_help="Drop triggers and old columns, once release N is gone.", epilog=PATH_HELP, examples="""
crossfade contract changes/ --url postgresql://app@db/app   once every node runs release N+1
crossfade contract -c alembic.ini                           stamps alembic_version too
""")
@_phase_options
def contract(path: str | None, config: str | None, url: str | None, lock_timeout: float,
             allow_foreign_triggers: bool, wait: float) -> None:
    """Only when no node of release N is left: drop triggers and old columns, apply NOT NULL."""
    with open_runner(changes_source(path, config), url, lock_timeout, allow_foreign_triggers, operation="contract",
                     operator_wait=wait) as (runner, loaded):
        for change in loaded.changes:
            if _skip_contracted(runner, change, "contract"):
                continue
            _run_phase("contract", change, runner.contract, "contracted: release N+1's schema is final")


@click.command(cls=Command, short_help="Undo expand, before contract.", epilog=PATH_HELP, examples="""
crossfade rollback changes/ --url postgresql://app@db/app   before contract: back to release N
crossfade rollback -c alembic.ini
""")
@_phase_options
def rollback(path: str | None, config: str | None, url: str | None, lock_timeout: float,
             allow_foreign_triggers: bool, wait: float) -> None:
    """Before contract: undo expand (newest change first); release N's data is intact."""
    from ..state import IN_FLIGHT, Phase

    with open_runner(changes_source(path, config), url, lock_timeout, allow_foreign_triggers, operation="rollback",
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


# --- shared by the phases --------------------------------------------------------------

def _run_phase(phase: str, change: Change, run: Callable[[Change], None], done: str) -> None:
    out.print(f"[bold]{phase}[/bold] {escape(change.id)}")
    run(change)
    out.print(f"  [green]{escape(done)}[/green]")


def _skip_contracted(runner: Runner, change: Change, phase: str) -> bool:
    """A contracted change has nothing left to do, unless the database no longer looks contracted:
    then `phase` stops with the problem, as `check` reports it."""
    from ..state import Phase

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
    from ..progress import describe_speed

    return describe_speed(p.rate, p.eta, p.waiting)


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

    from ..backfill import Progress as BackfillProgress

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


COMMANDS = [expand, migrate, contract, rollback]
