"""Keystone's identity tables as release N+1 (Ocata) knows them: `user.domain_id` holds the
domain that `local_user.domain_id` or `nonlocal_user.domain_id` gives the user (change 014).
Release N+1 reads it there and still writes the domain through the child rows; contract ties
each child's (user_id, domain_id) to its user's (id, domain_id)."""

import sqlalchemy as sa

metadata = sa.MetaData()

project = sa.Table(
    "project", metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("extra", sa.Text),
    sa.Column("description", sa.Text),
    sa.Column("enabled", sa.Boolean),
    sa.Column("domain_id", sa.String(64), nullable=False),
    sa.Column("parent_id", sa.String(64)),
    sa.Column("is_domain", sa.Boolean, nullable=False, server_default=sa.false()),
)

user = sa.Table(
    "user", metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("enabled", sa.Boolean),
    sa.Column("extra", sa.Text),
    sa.Column("default_project_id", sa.String(64)),
    sa.Column("created_at", sa.DateTime),
    sa.Column("last_active_at", sa.Date),
    sa.Column("domain_id", sa.String(64)),
    # What contract adds: the (id, domain_id) the children's foreign keys reference.
    sa.UniqueConstraint("id", "domain_id", name="ixu_user_id_domain_id"),
)

local_user = sa.Table(
    "local_user", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("user_id", sa.String(64), sa.ForeignKey("user.id", ondelete="CASCADE"), unique=True),
    sa.Column("domain_id", sa.String(64), nullable=False),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("failed_auth_count", sa.Integer),
    sa.Column("failed_auth_at", sa.DateTime),
    sa.UniqueConstraint("domain_id", "name", name="ixu_local_user_domain_id_name"),
    sa.ForeignKeyConstraint(["user_id", "domain_id"], ["user.id", "user.domain_id"],
                            name="fk_local_user_user_id_domain_id", ondelete="CASCADE", onupdate="CASCADE"),
)

nonlocal_user = sa.Table(
    "nonlocal_user", metadata,
    sa.Column("domain_id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(255), primary_key=True),
    # Indexed: the derive triggers look a user's rows up by it on every write.
    sa.Column("user_id", sa.String(64), sa.ForeignKey("user.id", ondelete="CASCADE"), index=True),
    sa.ForeignKeyConstraint(["user_id", "domain_id"], ["user.id", "user.domain_id"],
                            name="fk_nonlocal_user_user_id_domain_id", ondelete="CASCADE",
                            onupdate="CASCADE"),
)
