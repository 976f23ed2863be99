"""`crossfade init` and `crossfade revision`: crossfade in an Alembic project, and its revision files.

init creates the Alembic project when there is none (`alembic init`), then makes env.py pass
`include_object=crossfade.alembic.include_object` to Alembic: without it, autogenerate proposes
dropping the crossfade_state table, and a later contract would run that drop. revision writes an
Alembic revision (Alembic picks its id, file name and down_revision) whose body is a crossfade
revision: a decorated upgrade() ready for crossfade operations and plain Alembic ones.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from string import Template

from alembic import command
from alembic.config import Config
from alembic.util import CommandError

from ..errors import CrossfadeError
from .locate import find_project

_IMPORT = "from crossfade.alembic import include_object  # autogenerate leaves crossfade_state alone\n"

REVISION_TEMPLATE = Template('''"""$message

Revision ID: $revision
Revises: $down_revision
Create Date: $create_date

A crossfade revision: `crossfade expand`, `migrate` and `contract` run it during a rolling
upgrade (alembic_version moves at contract); a plain `alembic upgrade` runs all of it at once,
without triggers, for a deployment that stops release N.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import crossfade.alembic
from crossfade import ops

revision: str = $revision_repr
down_revision: str | Sequence[str] | None = $down_revision_repr
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


@crossfade.alembic.upgrade(
    # crossfade operations: both releases keep working while they run, e.g.
    # ops.rename_column("users", "login", "username"),
    # ops.add_column("users", sa.Column("full_name", sa.String(81)),
    #                backfill=lambda row: row.first_name + " " + row.last_name),
)
def upgrade() -> None:
    """Plain Alembic operations: additive ones (op.create_table, op.add_column of a nullable
    column, op.create_index) run in expand, destructive ones (op.drop_*) in contract."""


def downgrade() -> None:
    raise NotImplementedError("before contract, `crossfade rollback` undoes this revision's expand; "
                              "contract dropped what release N used")
''')


def init(directory: str, config_file: str) -> list[str]:
    """Add crossfade to the Alembic project `config_file` configures, creating the project (its
    scripts in `directory`) when the file does not exist. Returns what it did, a line each."""
    done: list[str] = []
    ini = Path(config_file)
    if not ini.exists():
        try:
            command.init(Config(str(ini)), directory)
        except CommandError as exc:
            raise CrossfadeError(f"alembic init {directory}: {exc}") from None
        done.append(f"created the Alembic project {directory} (configured by {ini})")
    project = find_project(ini)
    if project is None:
        raise CrossfadeError(f"{ini} is not an Alembic project's configuration")
    done.append(_set_up_env(Path(project.script.dir) / "env.py"))
    return done


def revision(config_file: str, message: str) -> Path:
    """Write a crossfade revision after the project's head; returns its path."""
    project = find_project(config_file)
    if project is None:
        raise CrossfadeError(f"{config_file} is not an Alembic project (its alembic.ini or the directory holding it)")
    try:
        script = command.revision(project.config, message=message)
    except CommandError as exc:
        raise CrossfadeError(f"alembic revision: {exc}") from None
    if script is None or isinstance(script, list):
        raise CrossfadeError("alembic revision wrote no single revision file")
    down = script.down_revision
    path = Path(script.path)
    path.write_text(REVISION_TEMPLATE.substitute(
        message=message, revision=script.revision, revision_repr=repr(script.revision),
        down_revision=", ".join(down) if isinstance(down, tuple) else down,
        down_revision_repr=repr(down), create_date=datetime.now().isoformat(sep=" ", timespec="seconds")))
    return path


def _set_up_env(env_py: Path) -> str:
    """Pass crossfade's include_object to every `context.configure(` call of env.py."""
    text = env_py.read_text()
    if "crossfade" in text:
        return f"{env_py}: crossfade is set up already"
    if "include_object" in text or "context.configure(" not in text:
        return (f"{env_py}: left as it is; make its context.configure(...) skip what "
                "crossfade.alembic.include_object skips (autogenerate must leave crossfade_state alone)")
    # A call continued on the next line gets the argument on a line of its own, same indent.
    text = re.sub(r"context\.configure\(\n([ \t]*)", r"context.configure(\n\1include_object=include_object,\n\1", text)
    text = re.sub(r"context\.configure\((?!\n)", "context.configure(include_object=include_object, ", text)
    anchor = "from alembic import context\n"
    text = text.replace(anchor, anchor + _IMPORT, 1) if anchor in text else _IMPORT + text
    env_py.write_text(text)
    return f"{env_py}: context.configure(...) now passes include_object=crossfade.alembic.include_object"
