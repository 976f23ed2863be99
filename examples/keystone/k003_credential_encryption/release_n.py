"""Keystone's `credential` table as release N (Newton) knows it: the secret in `blob`, in clear."""

import sqlalchemy as sa

metadata = sa.MetaData()

credential = sa.Table(
    "credential", metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("user_id", sa.String(64), nullable=False),
    sa.Column("project_id", sa.String(64)),
    sa.Column("blob", sa.Text, nullable=False),
    sa.Column("type", sa.String(255), nullable=False),
    sa.Column("extra", sa.Text),
)
