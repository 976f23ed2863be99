"""Keystone 003 (Ocata): `credential.blob` becomes `encrypted_blob` + `key_hash`.

The encryption is application code (Keystone's Fernet key repository), not SQL, so no trigger can
keep the new columns in step with release N's writes. Keystone blocked those writes for the
transition, and so does this change, with Keystone's exact rule:

- every INSERT into `credential` fails;
- an UPDATE fails when it leaves `encrypted_blob` NULL, or sets it on a row whose `blob` was NULL;

with the message "Credential migration in progress. Cannot perform writes to credential table.".
Expand adds `encrypted_blob` and `key_hash` (nullable) and relaxes `blob` to nullable; migrate
encrypts every row in Python, batch by batch (resumable); contract drops `blob`, makes the new
columns NOT NULL and lifts the block. `encryption.py` stands in for the Fernet key repository.
"""

from pathlib import Path

import sqlalchemy as sa

from crossfade import Change, ops
from crossfade.loader import import_file

_here = Path(__file__).resolve().parent
metadata = import_file(_here / "release_n.py").metadata
metadata_n1 = import_file(_here / "release_n1.py").metadata
encryption = import_file(_here / "encryption.py")
# `crossfade verify`: credential ids are strings the applications choose; the simulator's must not collide.
simulator_values = {"credential.id": lambda rng: f"{rng.getrandbits(64):016x}"}

MESSAGE = "Credential migration in progress. Cannot perform writes to credential table."


def keystone_update_rule(new, old):
    """Keystone's UPDATE trigger: refuse when encrypted_blob stays NULL, or is set on a row whose
    blob was NULL."""
    return sa.or_(new.encrypted_blob.is_(None), sa.and_(new.encrypted_blob.is_not(None), old.blob.is_(None)))


def operations():
    """The change's operations (the Alembic revision keystone_003 declares the same ones)."""
    return (
        ops.compute_column("credential", [sa.Column("encrypted_blob", sa.Text, nullable=False),
                                          sa.Column("key_hash", sa.String(64), nullable=False)],
                           encryption.encrypt_rows, reads=["blob"]),
        ops.block_writes("credential", insert=True, update=keystone_update_rule, message=MESSAGE),
        ops.drop_column("credential", "blob", relax=True),
    )


change = Change(*operations(), id="keystone_003_credential_encryption")
