"""crossfade: zero-downtime rolling upgrades for SQLAlchemy applications.

Declare a `Change` of `ops` once; a `Runner` takes it through expand, migrate and contract (or
rollback) on PostgreSQL, MySQL/MariaDB or SQLite.
"""

from . import ops, transforms
from .change import Change
from .errors import CrossfadeError
from .runner import Runner

__all__ = ["Change", "CrossfadeError", "Runner", "ops", "transforms"]
