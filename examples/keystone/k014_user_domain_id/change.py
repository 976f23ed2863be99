"""Keystone's change 014 (Ocata): `user.domain_id`, gathered from `local_user` and `nonlocal_user`.

Keystone hand-wrote this one's triggers. Its MySQL and SQLite triggers only fired where
`user.domain_id <> NEW.domain_id`, which is never true while `user.domain_id` is NULL: an update
of a child row before the data migration reached its user was lost. crossfade derives the value
from every row of both tables on every write (INSERT, UPDATE, DELETE, a row moving to another
user), so there is no such guard to get wrong.

Contract then ties each child's (user_id, domain_id) to the user's with a foreign key, ON UPDATE
CASCADE and ON DELETE CASCADE as 014 did: a unique (id, domain_id) on user first, which the
foreign keys reference. Once the triggers are gone, a user moved to another domain carries its
child row along, and a deleted user takes it with it.
"""

from pathlib import Path

import sqlalchemy as sa

from crossfade import Change, ops
from crossfade.loader import import_file

_here = Path(__file__).resolve().parent
metadata = import_file(_here / "release_n.py").metadata
metadata_n1 = import_file(_here / "release_n1.py").metadata

DOMAINS = ["default", "ldap", "heat", "service"]
# What the simulator's writers put in the domain columns (Keystone's domain ids are short strings).
simulator_values = {"local_user.domain_id": DOMAINS, "nonlocal_user.domain_id": DOMAINS}

derive_domain = ops.derive_column(
    "user", sa.Column("domain_id", sa.String(64)),
    # A user has a local_user row or a nonlocal_user row; were it ever both, the local one wins.
    sources=[("local_user", "domain_id", "user_id"), ("nonlocal_user", "domain_id", "user_id")],
)

change = Change(
    derive_domain,
    ops.add_unique("user", "ixu_user_id_domain_id", ["id", "domain_id"]),
    ops.add_foreign_key("local_user", "fk_local_user_user_id_domain_id", ["user_id", "domain_id"],
                        "user", ["id", "domain_id"], ondelete="CASCADE", onupdate="CASCADE"),
    ops.add_foreign_key("nonlocal_user", "fk_nonlocal_user_user_id_domain_id", ["user_id", "domain_id"],
                        "user", ["id", "domain_id"], ondelete="CASCADE", onupdate="CASCADE"),
    id="keystone_014",
)
