"""Release 1: projects and tasks

Revision ID: 0001_initial
Revises:
Create Date: 2024-05-06 10:00:00

A plain Alembic revision: crossfade classifies its operations (both additive, so expand runs
them), and a plain `alembic upgrade` runs it as Alembic always does.
"""

import sqlalchemy as sa
from alembic import op

revision = "0001_initial"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "projects",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(80), nullable=False),
    )
    op.create_table(
        "tasks",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("title", sa.String(200)),
        sa.Column("done", sa.Boolean, nullable=False),
        sa.Column("owner", sa.String(40)),
        sa.Column("source", sa.String(20), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("tasks")
    op.drop_table("projects")
