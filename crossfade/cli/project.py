"""`crossfade init` and `crossfade revision`: crossfade in an Alembic project
(crossfade/alembic/scaffold.py)."""

from __future__ import annotations

import click
from rich.markup import escape

from .common import DEFAULT_CONFIG, Command, clean_errors, out


@click.command(cls=Command, short_help="Add crossfade to an Alembic project (or create one).", examples="""
crossfade init                               creates ./alembic.ini and alembic/ if missing
crossfade init migrations -c db/alembic.ini
""")
@click.argument("directory", default="alembic", metavar="[DIRECTORY]", type=click.Path(file_okay=False))
@click.option("-c", "--config", default=DEFAULT_CONFIG, show_default=True, metavar="FILE", type=click.Path(),
              help="The project's ini file, as for alembic -c.")
def init(directory: str, config: str) -> None:
    """Add crossfade to an Alembic project (creating it, its scripts in DIRECTORY, when the ini file does
    not exist): env.py reads CROSSFADE_URL and leaves crossfade_state to crossfade."""
    from ..alembic import scaffold

    with clean_errors():
        for line in scaffold.init(directory, config):
            out.print(escape(line), soft_wrap=True)


@click.command(cls=Command, short_help="Write a crossfade revision of an Alembic project.", examples="""
crossfade revision -m "users.login becomes users.username"
crossfade revision -m "add a column" -c db/alembic.ini
""")
@click.argument("path", required=False, metavar="[PATH]", type=click.Path())
@click.option("-m", "--message", required=True, metavar="TEXT", help="What the revision changes.")
@click.option("-c", "--config", metavar="FILE", type=click.Path(),
              help=f"The project's ini file, as for alembic -c (default: ./{DEFAULT_CONFIG}).")
def revision(path: str | None, message: str, config: str | None) -> None:
    """Write a crossfade revision after the project's head: ops in its decorator, plain Alembic operations in
    upgrade(), and the `metadata` / `metadata_n1` verify writes through. PATH: the project's ini file or the
    directory holding it, as -c."""
    from ..alembic import scaffold

    if path is not None and config is not None:
        raise click.UsageError(f"give PATH ({path}) or -c/--config ({config}), not both")
    with clean_errors():
        out.print(f"wrote {escape(str(scaffold.revision(path or config or DEFAULT_CONFIG, message)))}",
                  soft_wrap=True)


COMMANDS = [init, revision]
