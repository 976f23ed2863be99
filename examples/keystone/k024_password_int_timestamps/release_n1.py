"""Release N+1's (Pike's) `password`: the timestamps are BigInteger microseconds since the epoch,
UTC. `created_at_int` is NOT NULL with Keystone's server default 0 ("unset"); `expires_at_int`
is NULL for a password that never expires. The DateTime columns are gone (Keystone kept them
and wrote both, its TODO said until Rocky; crossfade's contract drops them)."""

import sqlalchemy as sa

metadata = sa.MetaData()

local_user = sa.Table(
    "local_user", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("user_id", sa.String(64), unique=True),
    sa.Column("domain_id", sa.String(64), nullable=False),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("failed_auth_count", sa.Integer),
    sa.Column("failed_auth_at", sa.DateTime),
    sa.UniqueConstraint("domain_id", "name"),
)

password = sa.Table(
    "password", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("local_user_id", sa.Integer, sa.ForeignKey("local_user.id", ondelete="CASCADE"), nullable=False),
    sa.Column("password", sa.String(128)),
    sa.Column("self_service", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("created_at_int", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("expires_at_int", sa.BigInteger),
)
