"""Whether CHANGES names an Alembic project, told from its paths alone: a plain change module
never imports Alembic (the CLI's start-up, `benchmarks/startup.py`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .project import Project


def find_project(target: str | Path) -> Project | None:
    """The Alembic project `target` names (its alembic.ini, the directory holding one, or its
    script directory: env.py and script.py.mako), or None when it names something else."""
    path = Path(target)
    if path.is_file() and path.suffix == ".ini":
        ini = path
    elif path.is_dir() and (path / "alembic.ini").is_file():
        ini = path / "alembic.ini"
    elif path.is_dir() and (path / "env.py").is_file() and (path / "script.py.mako").is_file():
        from .project import from_script_directory

        return from_script_directory(path)
    else:
        return None
    from .project import from_ini

    return from_ini(ini)
