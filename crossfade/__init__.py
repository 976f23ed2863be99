"""crossfade: zero-downtime rolling upgrades for SQLAlchemy applications."""

from . import ops
from .change import Change
from .errors import CrossfadeError

__all__ = ["Change", "ops", "CrossfadeError"]
