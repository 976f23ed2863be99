"""Keystone 003: credential.blob becomes encrypted_blob + key_hash

Revision ID: keystone_003
Revises:
Create Date: 2016-10-03 00:00:00

The encryption is application code (Keystone's Fernet key repository; here a stand-in from the
standard library, k003_credential_encryption/encryption.py), so no trigger can compute the new
columns: writes to `credential` are blocked by Keystone's own rule while release N runs, migrate
encrypts every row in Python, and contract drops `blob`, makes the new columns NOT NULL and lifts
the block. The operations are k003_credential_encryption/change.py's.
"""

from pathlib import Path

import crossfade.alembic
from crossfade.loader import import_file

revision = "keystone_003"
down_revision = None
branch_labels = None
depends_on = None

_k003 = import_file(Path(__file__).resolve().parents[2] / "k003_credential_encryption" / "change.py")
# What each release's code knows: `crossfade verify` runs both at once, and `crossfade plan` /
# `alembic upgrade --sql` render this revision from release N's tables.
metadata = _k003.metadata
metadata_n1 = _k003.metadata_n1
simulator_values = _k003.simulator_values


@crossfade.alembic.upgrade(*_k003.operations())
def upgrade() -> None:
    """No plain Alembic operation: the change is all crossfade's."""


def downgrade() -> None:
    raise NotImplementedError("before contract, `crossfade rollback` undoes this revision's expand")
