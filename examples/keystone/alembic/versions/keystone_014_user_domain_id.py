"""Keystone 014: user.domain_id, derived from local_user.domain_id and nonlocal_user.domain_id

Revision ID: keystone_014
Revises: keystone_003
Create Date: 2026-12-03 12:00:00

While Newton (release N) and Ocata (release N+1) run side by side, crossfade's triggers on
`local_user`, `nonlocal_user` and `user` keep `user.domain_id` equal to the domain its child row
gives it; `crossfade migrate` fills the users that existed before. Contract then ties each
child's (user_id, domain_id) to its user's with a foreign key, as Keystone's 014 contract did.
The declaration is the example's (examples/keystone/k014_user_domain_id/change.py).
"""

from pathlib import Path

import crossfade.alembic
from crossfade.loader import import_file

revision = "keystone_014"
down_revision = "keystone_003"
branch_labels = None
depends_on = None

_example = import_file(Path(__file__).resolve().parents[2] / "k014_user_domain_id" / "change.py")
# What each release's code knows: `crossfade verify` runs both at once, and `crossfade plan` /
# `alembic upgrade --sql` render this revision from release N's tables.
metadata = _example.metadata
metadata_n1 = _example.metadata_n1
simulator_values = _example.simulator_values


@crossfade.alembic.upgrade(*_example.change.ops)
def upgrade() -> None:
    """No plain Alembic operation: the whole change is crossfade's."""


def downgrade() -> None:
    raise NotImplementedError("before contract, `crossfade rollback` undoes this revision's expand")
