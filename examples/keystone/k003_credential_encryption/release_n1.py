"""Keystone's `credential` table as release N+1 (Ocata) knows it: the secret encrypted in
`encrypted_blob`, with `key_hash` naming the key that encrypted it; `blob` is gone."""

import sqlalchemy as sa

metadata = sa.MetaData()

credential = sa.Table(
    "credential", metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("user_id", sa.String(64), nullable=False),
    sa.Column("project_id", sa.String(64)),
    sa.Column("type", sa.String(255), nullable=False),
    sa.Column("extra", sa.Text),
    sa.Column("encrypted_blob", sa.Text, nullable=False),
    sa.Column("key_hash", sa.String(64), nullable=False),
)
