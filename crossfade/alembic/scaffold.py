"""`crossfade init` and `crossfade revision`: crossfade in an Alembic project, and its revision files.

init creates the Alembic project when there is none (`alembic init`), then makes env.py pass
`include_object=crossfade.alembic.include_object` to Alembic: without it, autogenerate proposes
dropping the crossfade_state table, and a later contract would run that drop. It also makes
env.py take the database from CROSSFADE_URL when that is set, so `alembic upgrade` and the
crossfade command find the same database. revision writes an Alembic revision (Alembic picks its
id, file name and down_revision) whose body is a crossfade revision: a decorated upgrade() ready
for crossfade operations and plain Alembic ones, and release N's and N+1's tables for `verify`.
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
_CONFIG_LINE = "config = context.config\n"
_READ_URL = """
# The database: CROSSFADE_URL when set (as for the crossfade command), else sqlalchemy.url.
if os.environ.get("CROSSFADE_URL"):
    config.set_main_option("sqlalchemy.url", os.environ["CROSSFADE_URL"].replace("%", "%%"))
"""

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

# Release N's and release N+1's tables, as each release's code declares them: `crossfade verify`
# writes through both at once, `crossfade plan` renders this revision from release N's. None:
# derived from the revisions before this one, and after it. Set them to your models' MetaData
# where those say more than the revisions do, e.g.
#   metadata = import_file(Path(__file__).parents[2] / "models" / "release_1.py").metadata
#   (crossfade.loader.import_file), metadata_n1 = myapp.models.Base.metadata
metadata: sa.MetaData | None = None
metadata_n1: sa.MetaData | None = None


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
    done += _set_up_env(Path(project.script.dir) / "env.py")
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


def _set_up_env(env_py: Path) -> list[str]:
    """env.py passes crossfade's include_object to Alembic, and reads CROSSFADE_URL."""
    text = env_py.read_text()
    done = []
    text, line = _pass_include_object(text, env_py)
    done.append(line)
    if "CROSSFADE_URL" in text:
        done.append(f"{env_py}: reads CROSSFADE_URL already")
    elif _CONFIG_LINE in text:
        text = text.replace(_CONFIG_LINE, _CONFIG_LINE + _READ_URL, 1)
        text = text if re.search(r"^import os$", text, re.MULTILINE) else "import os\n" + text
        done.append(f"{env_py}: the database is CROSSFADE_URL when set, else sqlalchemy.url")
    else:
        done.append(f"{env_py}: has no `{_CONFIG_LINE.strip()}`; left without CROSSFADE_URL")
    env_py.write_text(text)
    return done


def _pass_include_object(text: str, env_py: Path) -> tuple[str, str]:
    """Pass crossfade's include_object to every `context.configure(` call of env.py."""
    if "crossfade.alembic import include_object" in text:
        return text, f"{env_py}: crossfade's include_object is set up already"
    if "include_object" in text or "context.configure(" not in text:
        return text, (f"{env_py}: left as it is; make its context.configure(...) skip what "
                      "crossfade.alembic.include_object skips (autogenerate must leave crossfade_state alone)")
    # A call continued on the next line gets the argument on a line of its own, same indent.
    text = re.sub(r"context\.configure\(\n([ \t]*)", r"context.configure(\n\1include_object=include_object,\n\1", text)
    text = re.sub(r"context\.configure\((?!\n)", "context.configure(include_object=include_object, ", text)
    anchor = "from alembic import context\n"
    text = text.replace(anchor, anchor + _IMPORT, 1) if anchor in text else _IMPORT + text
    return text, f"{env_py}: context.configure(...) now passes include_object=crossfade.alembic.include_object"
