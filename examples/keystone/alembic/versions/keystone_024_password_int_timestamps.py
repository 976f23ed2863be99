"""Keystone 024: password.created_at / expires_at gain created_at_int / expires_at_int

Revision ID: keystone_024
Revises: keystone_014
Create Date: 2017-06-23 00:00:00

Both timestamps become BigInteger microseconds since the epoch (UTC) in one change, kept in step
both ways by crossfade's triggers while release N (DateTime) and release N+1 (integers) both
write; contract drops the DateTime columns and makes created_at_int NOT NULL DEFAULT 0 (Keystone's
"unset"). The operations are k024_password_int_timestamps/change.py's.
"""

from pathlib import Path

import crossfade.alembic
from crossfade.loader import import_file

revision = "keystone_024"
down_revision = "keystone_014"
branch_labels = None
depends_on = None

_k024 = import_file(Path(__file__).resolve().parents[2] / "k024_password_int_timestamps" / "change.py")
# What each release's code knows: `crossfade verify` runs both at once, and `crossfade plan` /
# `alembic upgrade --sql` render this revision from release N's tables.
metadata = _k024.metadata
metadata_n1 = _k024.metadata_n1
simulator_values = _k024.simulator_values


@crossfade.alembic.upgrade(*_k024.change.ops, new_release_identified=_k024.change.new_release_identified)
def upgrade() -> None:
    """No plain Alembic operation: the change is all crossfade's."""


def downgrade() -> None:
    raise NotImplementedError("before contract, `crossfade rollback` undoes this revision's expand")
