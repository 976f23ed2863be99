"""The `crossfade` command: plan, expand, migrate, contract, rollback, status, check, verify, demo,
and for Alembic projects init and revision (docs/cli.md).

Every command takes the changes the same way, `[PATH]` or `-c/--config alembic.ini` (see
`crossfade.cli.common`), and, when it needs a database, `--url` or the CROSSFADE_URL variable.
crossfade's own errors are printed as one red line with exit code 1, never as a traceback; a
phase that finds another crossfade running (crossfade/oplock.py) exits with BUSY (75) instead.

Built on Click directly (not Typer): Click 8's interface has stayed put across its releases,
while Typer's help, metavars and completion changed from one version to the next.
Start-up stays fast (`crossfade --help` measured by benchmarks/startup.py): these modules import
only Click and Rich's console; each command imports what it needs (SQLAlchemy, the runner,
Alembic, the simulator, Hypothesis) when it runs.
"""

from __future__ import annotations

import click

from .common import BUSY, CONTEXT, NEEDS_CONTRACT, NEEDS_EXPAND, NEEDS_MIGRATE, PROBLEM, UP_TO_DATE

EXAMPLES = """
crossfade demo                                   a rolling upgrade on a scratch SQLite file
crossfade plan changes/ --sql --dialect mariadb  the SQL each phase runs on MariaDB
export CROSSFADE_URL=postgresql://app@db/app
crossfade expand changes/                        then migrate, roll your nodes, then contract
crossfade check -c alembic.ini                   exit code 0/2/3/4 says what is next
"""


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("crossfade")
    except PackageNotFoundError:
        return "unknown (not installed)"


def _print_version(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        click.echo(f"crossfade {_version()}")
        ctx.exit()


class _Group(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)  # in the order of a rolling upgrade, not alphabetical

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Examples"):
            for line in EXAMPLES.strip("\n").splitlines():
                formatter.write(f"{' ' * formatter.current_indent}{line}\n")
        formatter.write_paragraph()
        formatter.write_text("Every command: crossfade COMMAND -h. Shell completion: docs/cli.md.")


@click.group(cls=_Group, context_settings=CONTEXT, no_args_is_help=True)
@click.option("--version", is_flag=True, expose_value=False, is_eager=True, callback=_print_version,
              help="Show crossfade's version and exit.")
def app() -> None:
    """Zero-downtime rolling upgrades for SQLAlchemy applications: expand, migrate, contract."""


# The commands, in the order `crossfade --help` lists them.
from . import phases as _phases
from . import plan as _plan
from . import project as _project
from . import verify as _verify
from . import watch as _watch
from .phases import DEFAULT_BATCH_SECONDS, _speed_text

for _module in (_plan, _phases, _watch, _verify, _project):
    for _command in _module.COMMANDS:
        app.add_command(_command)


def main() -> None:
    """The `crossfade` console script. Shell completion: `_CROSSFADE_COMPLETE=bash_source crossfade`."""
    app.main(prog_name="crossfade", complete_var="_CROSSFADE_COMPLETE")


__all__ = ["BUSY", "DEFAULT_BATCH_SECONDS", "NEEDS_CONTRACT", "NEEDS_EXPAND", "NEEDS_MIGRATE", "PROBLEM",
           "UP_TO_DATE", "_speed_text", "app", "main"]
