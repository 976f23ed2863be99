"""Glance's `images` table as release N knows it: visibility is the boolean `is_public`."""

import sqlalchemy as sa

metadata = sa.MetaData()

images = sa.Table(
    "images", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(255)),
    sa.Column("status", sa.String(30), nullable=False, server_default="active"),
    sa.Column("is_public", sa.Boolean, nullable=False),
)
