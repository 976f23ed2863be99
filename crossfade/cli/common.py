"""What every command shares: where the changes come from, the database URL, errors as one line.

One convention for every command (docs/cli.md):

    crossfade COMMAND [PATH] [-c alembic.ini] [--url URL]

PATH is a change module (file or dotted name), a directory of them, or an Alembic project (its
alembic.ini or the directory holding it); `-c/--config FILE` names an Alembic project's ini
file, as Alembic's own commands do. With neither, ./alembic.ini is used when there is one.
The URL is `--url`, else CROSSFADE_URL, else an Alembic project's `sqlalchemy.url`.

This module imports only Click and Rich's console: each command imports what it needs when it
runs, so `crossfade --help` starts fast (benchmarks/startup.py).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.console import Console
from rich.markup import escape

from ..errors import CrossfadeError, OperatorBusyError

if TYPE_CHECKING:
    import sqlalchemy as sa

    from ..alembic.project import Project

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)

# Exit codes of `check`, as Keystone's `db_sync --check`.
UP_TO_DATE, PROBLEM, NEEDS_EXPAND, NEEDS_MIGRATE, NEEDS_CONTRACT = 0, 1, 2, 3, 4
# A phase command that found another crossfade holding the operator lock (sysexits' EX_TEMPFAIL:
# nothing was changed, try again later).
BUSY = 75

URL_VARIABLE = "CROSSFADE_URL"
DEFAULT_CONFIG = "alembic.ini"
# `alembic init` leaves this in alembic.ini until the user sets the real URL.
ALEMBIC_PLACEHOLDER_URL = "driver://"

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
_BOOLEAN_WORDS = {"true", "false", "yes", "no", "on", "off", "1", "0", "y", "n", "t", "f"}


class Command(click.Command):
    """A crossfade command: `-h`, examples shown as written, and a flag given a value refused
    with a message that says it is a flag (`--json true` would otherwise become PATH)."""

    def __init__(self, *args, examples: str = "", **kwargs):
        kwargs.setdefault("context_settings", CONTEXT)
        super().__init__(*args, **kwargs)
        self.examples = examples.strip("\n")

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        flags = {name for p in self.params if isinstance(p, click.Option) and p.is_flag for name in p.opts}
        for given, following in pairwise(args):
            if given in flags and following.lower() in _BOOLEAN_WORDS:
                raise click.UsageError(f"{given} is a flag and takes no value: write {given} alone (leave it "
                                       f"out for false), not {given} {following}", ctx)
        return super().parse_args(ctx, args)

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        super().format_epilog(ctx, formatter)
        if self.examples:
            with formatter.section("Examples"):
                for line in self.examples.splitlines():
                    formatter.write(f"{' ' * formatter.current_indent}{line}\n" if line else "\n")


# --- the options every command shares -----------------------------------------------------

def path_argument(command: Callable) -> Callable:
    return click.argument("path", required=False, metavar="[PATH]", type=click.Path())(command)


def config_option(command: Callable) -> Callable:
    return click.option(
        "-c", "--config", metavar="FILE", type=click.Path(),
        help="An Alembic project's ini file, as for alembic -c (default: ./alembic.ini when no PATH is "
             "given). Its pending revisions are the changes.")(command)


def url_option(help: str = "SQLAlchemy URL of the database.") -> Callable[[Callable], Callable]:
    return click.option("--url", metavar="URL", envvar=URL_VARIABLE, show_envvar=True, help=help)


PATH_HELP = ("PATH: a change module (file or dotted name), a directory of them (run in file-name order), or "
             "an Alembic project (its alembic.ini or the directory holding it).")


def changes_source(path: str | None, config: str | None) -> str:
    """Where the changes come from: PATH, or -c/--config, or ./alembic.ini. Refused before any
    database is opened when none (or both) is given."""
    if path is not None and config is not None:
        raise click.UsageError(f"give PATH ({path}) or -c/--config ({config}), not both")
    if config is not None:
        if not Path(config).exists():
            raise click.BadParameter(f"no such file: {config}", param_hint="'-c' / '--config'")
        return config
    if path is not None:
        return path
    if Path(DEFAULT_CONFIG).is_file():
        return DEFAULT_CONFIG
    raise click.UsageError("no changes given: name a change module or directory (PATH), or an Alembic "
                           f"project with -c/--config (there is no {DEFAULT_CONFIG} here)")


def from_environment(url_source: click.core.ParameterSource | None) -> bool:
    return url_source is click.core.ParameterSource.ENVIRONMENT


# --- the database ------------------------------------------------------------------------

def project_url(project: Project) -> str | None:
    """An Alembic project's sqlalchemy.url; Alembic's placeholder is refused, naming the fix."""
    url = project.url
    if url and url.strip().startswith(ALEMBIC_PLACEHOLDER_URL):
        raise CrossfadeError(f"set sqlalchemy.url in {project.where} or {URL_VARIABLE}: {project.where} still "
                             f"has the placeholder alembic init wrote ({url.strip()})")
    return url or None


def open_database(url: str | None, may_create_file: bool = False) -> sa.Engine:
    from ..engines import open_engine

    if not url:
        raise CrossfadeError(f"no database given: pass --url or set {URL_VARIABLE} (or an Alembic project's "
                             "sqlalchemy.url)")
    return open_engine(url, may_create_file=may_create_file)


# --- errors ------------------------------------------------------------------------------

@contextmanager
def clean_errors():
    """crossfade's errors and database errors as one red line and exit code 1."""
    try:
        yield
    except OperatorBusyError as exc:
        fail(str(exc), code=BUSY)
    except CrossfadeError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        fail("interrupted; every phase is resumable: run the same command again to finish it", code=130)
    except click.exceptions.Exit:
        raise
    except Exception as exc:
        message = _database_error(exc)
        if message is None:
            raise
        fail(message)


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


def fail(message: str, code: int = PROBLEM) -> None:
    err.print(f"[bold red]error:[/bold red] [red]{escape(message)}[/red]", soft_wrap=True)
    raise click.exceptions.Exit(code)


def note(line: str) -> None:
    """A dim line on stderr: what a command left out or assumed."""
    err.print(f"[dim]{escape(line)}[/dim]", soft_wrap=True)


# --- the runner --------------------------------------------------------------------------

@contextmanager
def open_runner(changes: str, url: str | None, lock_timeout: float = 0.05, allow_foreign_triggers: bool = False,
                builds_project: bool = False, operation: str | None = None, **options):
    """The Runner (an Alembic project's RevisionRunner) and the changes. `builds_project`: the
    command may create an Alembic project's SQLite file; otherwise a missing one is an error.
    `operation`: the phase command, named by the operator lock each phase takes."""
    from ..alembic.locate import find_project
    from ..loader import load_changes
    from ..runner import Runner

    with clean_errors():
        project = find_project(changes)  # an Alembic project: its pending revisions (crossfade/alembic)
        loaded = load_changes(changes) if project is None else None
        if not url and project is not None:
            url = project_url(project)
        engine = open_database(url, may_create_file=builds_project and project is not None)
        try:
            runner = Runner(engine, lock_timeout=lock_timeout, allow_foreign_triggers=allow_foreign_triggers,
                            log=lambda message: out.print(f"  [dim]{escape(message)}[/dim]"), **options)
            if operation is not None:  # each phase call takes the operator lock, naming this command
                runner.operator.command = f"crossfade {operation} {changes}"
            if project is not None:
                from ..alembic.runner import open_upgrade

                runner, loaded = open_upgrade(project, runner)
                note(loaded.summary())
            yield runner, loaded
            for warning in runner.warnings:
                err.print(f"[yellow]warning:[/yellow] {escape(warning)}", soft_wrap=True)
        finally:
            engine.dispose()
