"""Release N+1's `images`: `is_public` is gone; `visibility` says public/private/shared/community."""

import sqlalchemy as sa

metadata = sa.MetaData()

images = sa.Table(
    "images", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(255)),
    sa.Column("status", sa.String(30), nullable=False, server_default="active"),
    sa.Column("visibility", sa.String(16), nullable=False, server_default="shared"),
)
