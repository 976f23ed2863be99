"""`crossfade status` and `crossfade check`: where an upgrade stands, for people and for scripts."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING

import click
from rich.markup import escape

from .common import (
    NEEDS_CONTRACT,
    NEEDS_EXPAND,
    NEEDS_MIGRATE,
    PATH_HELP,
    PROBLEM,
    UP_TO_DATE,
    Command,
    changes_source,
    config_option,
    open_runner,
    out,
    path_argument,
    url_option,
)
from .phases import _changed_after_contract

if TYPE_CHECKING:
    from rich.table import Table

    from ..runner import ChangeStatus

_NEEDS = {  # by state.Phase value
    "pending": NEEDS_EXPAND, "rolled_back": NEEDS_EXPAND,
    "expanded": NEEDS_MIGRATE, "migrating": NEEDS_MIGRATE,
    "migrated": NEEDS_CONTRACT, "contracted": UP_TO_DATE,
}
_CHECK_WORDS = {UP_TO_DATE: "up to date", PROBLEM: "problem", NEEDS_EXPAND: "needs expand",
                NEEDS_MIGRATE: "needs migrate", NEEDS_CONTRACT: "needs contract"}


def _deep_option(command: Callable) -> Callable:
    return click.option(
        "--deep", is_flag=True,
        help="Also read every row (in short batches, online) and report those that break the sync or a link "
             "law: writes the triggers did not see. Contract runs this check itself before dropping anything.")(command)


@click.command(cls=Command, short_help="Phase, backfill progress, triggers, problems.", epilog=PATH_HELP, examples="""
crossfade status changes/ --url postgresql://app@db/app
crossfade status -c alembic.ini --json | jq '.[].phase'
crossfade status changes/ --deep                  also read every row against the sync law
""")
@path_argument
@config_option
@url_option()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
@_deep_option
def status(path: str | None, config: str | None, url: str | None, as_json: bool, deep: bool) -> None:
    """Per change: phase, backfill progress, triggers installed and unchanged, repairs, problems."""
    with open_runner(changes_source(path, config), url) as (runner, loaded):
        statuses = [runner.status(change, deep=deep) for change in loaded.changes]
        holder = runner.operator.holder()
        if as_json:
            operator = {"operator": holder.describe()} if holder else {}
            click.echo(json.dumps([s.to_json() | operator for s in statuses], indent=2))
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


@click.command(cls=Command, short_help="Exit code for scripts: 0 done, 2/3/4 next phase, 1 problem.", epilog=PATH_HELP, examples="""
crossfade check changes/ --url postgresql://app@db/app; echo $?
crossfade check -c alembic.ini || case $? in 2) crossfade expand -c alembic.ini;; esac
""")
@path_argument
@config_option
@url_option()
@_deep_option
def check(path: str | None, config: str | None, url: str | None, deep: bool) -> None:
    """Exit 0 up to date, 2 needs expand, 3 needs migrate, 4 needs contract, 1 a problem."""
    from ..state import SYNCING, Phase

    with open_runner(changes_source(path, config), url) as (runner, loaded):
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
    raise click.exceptions.Exit(_overall(codes))


def _overall(codes: list[int]) -> int:
    """A problem wins; otherwise the earliest phase any change still needs."""
    if PROBLEM in codes:
        return PROBLEM
    needed = [c for c in codes if c != UP_TO_DATE]
    return min(needed) if needed else UP_TO_DATE


def _rows_text(rows: dict) -> str:
    """`status`'s backfill detail: rows done of total, rows/s, ETA, waiting."""
    from ..progress import describe_speed

    speed = describe_speed(rows.get("rows_per_second"), rows.get("eta_seconds"), rows.get("waiting"))
    return f"{rows['done']:,} of {rows['total']:,} rows" + (f", {speed}" if speed else "")


COMMANDS = [status, check]
