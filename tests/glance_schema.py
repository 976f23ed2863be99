"""The reference change the phase, idempotency, validation and locking tests share: Glance's
`images.is_public` (boolean) replaced by `images.visibility` (string), on release N's table."""

from __future__ import annotations

import sqlalchemy as sa

from crossfade import Change, ops


def images_table(metadata: sa.MetaData, *extra_columns: sa.Column) -> sa.Table:
    """Release N's images table; a test adds the columns only it needs."""
    return sa.Table(
        "images", metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(50), nullable=False),
        sa.Column("is_public", sa.Boolean, nullable=False),
        sa.Column("size", sa.Integer, nullable=True),
        *extra_columns,
    )


def create_images(engine: sa.Engine, rows: list[dict], *extra_columns: sa.Column) -> None:
    metadata = sa.MetaData()
    images = images_table(metadata, *extra_columns)
    with engine.begin() as conn:
        metadata.create_all(conn)
        conn.execute(images.insert(), rows)


def visibility_op() -> ops.ReplaceColumnOp:
    return ops.replace_column(
        "images", "is_public", sa.Column("visibility", sa.String(16), nullable=False, server_default="shared"),
        up=lambda is_public: sa.case((is_public, "public"), else_="shared"),
        down=lambda visibility: visibility == "public",
    )


def visibility_change(id: str = "visibility") -> Change:
    return Change(visibility_op(), id=id)
