"""crossfade: zero-downtime rolling upgrades for SQLAlchemy applications.

Declare a `Change` of `ops` once; a `Runner` takes it through expand, migrate and contract (or
rollback) on PostgreSQL, MySQL/MariaDB or SQLite.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

# The one place the version is written: pyproject.toml reads it (setuptools' dynamic version),
# and the installed package's metadata, hence `crossfade --version`, carries it.
__version__ = "0.1.0"

if TYPE_CHECKING:
    from . import ops, transforms
    from .change import Change
    from .errors import CrossfadeError
    from .identification import identify_new_release
    from .runner import Runner

# Imported on first use, so that `crossfade --help` (which imports this package) does not load
# SQLAlchemy and every dialect: `from crossfade import Change, ops` works as ever.
_PUBLIC = {"Change": ".change", "CrossfadeError": ".errors", "Runner": ".runner",
           "identify_new_release": ".identification",
           "ops": ".ops", "transforms": ".transforms"}


def __getattr__(name: str):
    if name not in _PUBLIC:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(_PUBLIC[name], __name__)
    value = module if module.__name__ == f"{__name__}.{name}" else getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_PUBLIC])


__all__ = ["Change", "CrossfadeError", "Runner", "__version__", "identify_new_release", "ops", "transforms"]
