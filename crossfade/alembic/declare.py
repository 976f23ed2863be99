"""What a crossfade revision file declares: `@crossfade.alembic.upgrade(*ops)` on its `upgrade()`.

The decorator keeps the crossfade operations (as a Change whose id is the revision id) and the
undecorated function, whose plain Alembic operations crossfade records and classifies. Called by
Alembic itself (a plain `alembic upgrade`), the decorated function runs the offline path.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType

from ..change import Change
from ..errors import ChangeLoadError
from ..oplock import LOCK_TABLE
from ..ops.base import Op
from ..state import STATE_TABLE

UpgradeFn = Callable[[], None]
_ATTRIBUTE = "__crossfade__"


@dataclass(frozen=True)
class Declaration:
    revision: str
    change: Change | None  # None: the revision holds plain Alembic operations only
    plain: UpgradeFn  # the revision's own upgrade(): its plain Alembic operations


def upgrade(*ops: Op, new_release_identified: bool = False) -> Callable[[UpgradeFn], UpgradeFn]:
    """Decorate a revision's `upgrade()`: `ops` run in expand / migrate / contract with sync
    triggers, the plain Alembic operations in its body in expand (additive) or contract.
    `new_release_identified` as for `Change`: release N+1 calls `identify_new_release`."""
    def decorate(fn: UpgradeFn) -> UpgradeFn:
        revision = fn.__globals__.get("revision")
        if not isinstance(revision, str):
            raise ChangeLoadError(f"{fn.__module__}: a crossfade revision needs its `revision = \"...\"` "
                                  "line above the decorated upgrade()")
        declaration = Declaration(revision, Change(*ops, id=revision, new_release_identified=new_release_identified) if ops else None, fn)

        @functools.wraps(fn)
        def run_offline() -> None:
            from .offline import run_revision  # Alembic is calling: all phases at once

            run_revision(declaration)

        setattr(run_offline, _ATTRIBUTE, declaration)
        return run_offline
    return decorate


def declaration_of(module: ModuleType, revision: str) -> Declaration:
    """The revision's declaration; a plain Alembic revision is all plain operations."""
    upgrade_fn = getattr(module, "upgrade", None)
    if not callable(upgrade_fn):
        raise ChangeLoadError(f"revision {revision} ({getattr(module, '__file__', module)}) has no upgrade()")
    found = getattr(upgrade_fn, _ATTRIBUTE, None)
    return found if isinstance(found, Declaration) else Declaration(revision, None, upgrade_fn)


def include_object(object_, name: str | None, type_: str, reflected: bool, compare_to) -> bool:
    """For env.py's `context.configure(include_object=...)`: autogenerate must not propose
    dropping crossfade's state and lock tables (or the table a SQLite rebuild is building)."""
    if type_ == "table" and name is not None:
        return name not in (STATE_TABLE, LOCK_TABLE) and not name.startswith("_crossfade_")
    return True
