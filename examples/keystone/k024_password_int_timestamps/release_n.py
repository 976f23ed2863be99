"""Keystone's `password` table as release N (Ocata) knows it: the timestamps are DateTime.

`local_user` is there for the foreign key only (Keystone's columns, less its own key to `user`,
which this change never reads). DateTime is naive and holds UTC, as Keystone writes it
(`datetime.utcnow()`): microseconds on PostgreSQL and SQLite, whole seconds in a MySQL/MariaDB
DATETIME.
"""

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
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("expires_at", sa.DateTime),
    sa.Column("self_service", sa.Boolean, nullable=False, server_default=sa.false()),
)
