"""Finding the changes a command works on: a module file, a dotted module name, or a directory.

A change module defines `change` (a Change) or `changes` (a list of them), and optionally
`metadata`: release N's `sa.MetaData`, which lets `crossfade plan` render SQL without a database.
For `crossfade verify` it also defines `metadata_n1` (release N+1's `sa.MetaData`) and may define
`simulator_values` ({"table.column": [values to write]}) for columns whose values matter.
A directory holds one module per change, applied in file-name order (`0001_...`, `0002_...`);
files starting with `_` are helpers and are not loaded. An Alembic project (its alembic.ini or
the directory holding it) gives its crossfade revisions, oldest first, each module read as a
change module (see `crossfade.alembic`); the simulator runs each whole revision, its plain
Alembic operations included (`Simulated.phases`). A revision that leaves `metadata` or
`metadata_n1` None (as `crossfade revision` writes it) gets the tables its revisions state:
before it, and after it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import importlib.util
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import sqlalchemy as sa

from .alembic.locate import find_project
from .change import Change
from .errors import ChangeLoadError, CrossfadeError

if TYPE_CHECKING:
    from .alembic.project import Project
    from .testing.phases import Phases

_DOTTED = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


@dataclass
class LoadedChanges:
    changes: list[Change]
    # Release N's schema, from the first module that defines `metadata` (None when none does).
    metadata: sa.MetaData | None = None
    sources: list[str] = field(default_factory=list)
    # Per change, what the simulator needs from its module: release N's and N+1's metadata
    # and value overrides (None where the module does not say), and for an Alembic revision
    # what its phases run.
    simulations: list[Simulated] = field(default_factory=list)


@dataclass(frozen=True)
class Simulated:
    release_n: sa.MetaData | None
    release_n1: sa.MetaData | None
    values: dict
    phases: Phases | None = None  # None: crossfade's Runner on the change alone


def load_changes(target: str | Path) -> LoadedChanges:
    """The changes defined at `target`, in the order they must run."""
    project = find_project(target)
    if project is not None:
        return _alembic_changes(project)
    path = Path(target)
    if path.is_dir():
        modules = [_import_file(p) for p in _change_files(path)]
    elif path.is_file():
        modules = [_import_file(path)]
    elif _looks_like_module_name(str(target)):
        modules = [_import_module_name(str(target))]
    else:
        raise ChangeLoadError(f"no such file or directory: {target}")
    loaded = LoadedChanges([])
    for module in modules:
        found = _changes_of(module)
        loaded.changes += found
        loaded.sources += [_source(module)] * len(found)
        loaded.simulations += [_simulated(module)] * len(found)
        if loaded.metadata is None:
            loaded.metadata = _metadata_of(module)
    _refuse_duplicate_ids(loaded.changes)
    return loaded


def _alembic_changes(project: Project) -> LoadedChanges:
    from .alembic.phases import revision_phases

    loaded = LoadedChanges([])
    for module, change in project.declared_changes():
        loaded.changes.append(change)
        loaded.sources.append(_source(module))
        simulated = dataclasses.replace(_simulated(module), phases=revision_phases(project, change.id))
        if simulated.release_n is None or simulated.release_n1 is None:  # derived from the revisions
            release_n, release_n1 = project.release_tables(change.id)
            simulated = dataclasses.replace(simulated, release_n=simulated.release_n or release_n,
                                            release_n1=simulated.release_n1 or release_n1)
        loaded.simulations.append(simulated)
        if loaded.metadata is None:
            loaded.metadata = _metadata_of(module)
    return loaded


def import_file(path: str | Path) -> ModuleType:
    """Import a Python file by path, e.g. release N's models next to a change module:
    `release_n = import_file(Path(__file__).parents[1] / "release_n.py")`."""
    path = Path(path)
    if not path.is_file():
        raise ChangeLoadError(f"no such file: {path}")
    return _import_file(path)


def _change_files(directory: Path) -> list[Path]:
    files = sorted(p for p in directory.glob("*.py") if not p.name.startswith("_"))
    if not files:
        raise ChangeLoadError(f"directory {directory} holds no change modules (*.py)")
    return files


def _looks_like_module_name(target: str) -> bool:
    return not target.endswith(".py") and _DOTTED.fullmatch(target) is not None


def _import_file(path: Path) -> ModuleType:
    resolved = path.resolve()
    # A unique name per file, so two `0001_x.py` in different directories never collide.
    digest = hashlib.sha256(str(resolved).encode()).hexdigest()[:10]
    name = f"_crossfade_change_{re.sub(r'[^A-Za-z0-9_]', '_', resolved.stem)}_{digest}"
    spec = importlib.util.spec_from_file_location(name, resolved)
    if spec is None or spec.loader is None:
        raise ChangeLoadError(f"{path} is not a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look modules up by name
    try:
        spec.loader.exec_module(module)
    except CrossfadeError:
        raise
    except Exception as exc:
        sys.modules.pop(name, None)
        raise ChangeLoadError(f"{path}: {_describe(exc)}") from exc
    return module


def _import_module_name(name: str) -> ModuleType:
    # Like `python -m`: modules of the current directory are importable.
    added = "" not in sys.path and str(Path.cwd()) not in sys.path
    if added:
        sys.path.insert(0, str(Path.cwd()))
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and name.startswith(exc.name):
            raise ChangeLoadError(f"no such file, directory or module: {name}") from None
        raise ChangeLoadError(f"module {name}: {_describe(exc)}") from exc
    except CrossfadeError:
        raise
    except Exception as exc:
        raise ChangeLoadError(f"module {name}: {_describe(exc)}") from exc
    finally:
        if added:
            sys.path.remove(str(Path.cwd()))


def _changes_of(module: ModuleType) -> list[Change]:
    where = _source(module)
    if hasattr(module, "changes"):
        found = module.changes
        if not isinstance(found, (list, tuple)) or not found:
            raise ChangeLoadError(f"{where}: `changes` must be a non-empty list of Change")
    elif hasattr(module, "change"):
        found = [module.change]
    else:
        raise ChangeLoadError(f"{where} defines no Change: give it `change = Change(...)` "
                              "or `changes = [Change(...), ...]`")
    for item in found:
        if not isinstance(item, Change):
            raise ChangeLoadError(f"{where}: {item!r} is not a crossfade Change")
    return list(found)


def _metadata_of(module: ModuleType) -> sa.MetaData | None:
    metadata = getattr(module, "metadata", None)
    if metadata is None:
        return None
    if not isinstance(metadata, sa.MetaData):
        raise ChangeLoadError(f"{_source(module)}: `metadata` must be release N's sqlalchemy.MetaData")
    return metadata


def _simulated(module: ModuleType) -> Simulated:
    release_n1 = getattr(module, "metadata_n1", None)
    if release_n1 is not None and not isinstance(release_n1, sa.MetaData):
        raise ChangeLoadError(f"{_source(module)}: `metadata_n1` must be release N+1's sqlalchemy.MetaData")
    values = getattr(module, "simulator_values", {})
    if not isinstance(values, dict):
        raise ChangeLoadError(f"{_source(module)}: `simulator_values` must be a dict of 'table.column' -> values")
    return Simulated(_metadata_of(module), release_n1, values)


def _refuse_duplicate_ids(changes: list[Change]) -> None:
    seen: set[str] = set()
    for change in changes:
        if change.id in seen:
            raise ChangeLoadError(f"two changes share the id {change.id!r}; each needs its own")
        seen.add(change.id)


def _source(module: ModuleType) -> str:
    return getattr(module, "__file__", None) or module.__name__


def _describe(exc: Exception) -> str:
    if isinstance(exc, SyntaxError):
        return f"syntax error at line {exc.lineno}: {exc.msg}"
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".rstrip(": ")


__all__ = ["LoadedChanges", "import_file", "load_changes"]
