"""Release 2: tasks.done becomes tasks.state; tasks.priority; labels

Revision ID: 0002_task_state
Revises: 0001_initial
Create Date: 2024-05-20 10:00:00

Release 1 writes the boolean `done`; release 2 writes `state`, which is finer: a `blocked` task
is "not done" to release 1. While both run, crossfade's triggers keep done = (state = 'done').
"""

from pathlib import Path

import sqlalchemy as sa
from alembic import op

import crossfade.alembic
from crossfade import ops
from crossfade.loader import import_file

revision = "0002_task_state"
down_revision = "0001_initial"
branch_labels = None
depends_on = None

# What each release's code knows: `crossfade verify` runs both at once, and `crossfade plan` /
# `alembic upgrade --sql` render this revision from release 1's tables.
_models = Path(__file__).resolve().parents[2] / "models"
metadata = import_file(_models / "release_1.py").metadata
metadata_n1 = import_file(_models / "release_2.py").metadata
simulator_values = {"tasks.state": ["open", "done", "blocked"]}


@crossfade.alembic.upgrade(
    ops.replace_column(
        "tasks", "done", sa.Column("state", sa.String(16), nullable=False, server_default="open"),
        up=lambda done: sa.case((done, "done"), else_="open"),
        down=lambda state: state == "done",
    ),
    ops.add_column("tasks", sa.Column("priority", sa.Integer, nullable=False, server_default="2")),
)
def upgrade() -> None:
    """A new table release 1 never sees: expand creates it."""
    op.create_table(
        "labels",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("task_id", sa.Integer, nullable=False),
        sa.Column("name", sa.String(40), nullable=False),
    )
    op.create_index("ix_labels_task_id", "labels", ["task_id"])


def downgrade() -> None:
    raise NotImplementedError("before contract, `crossfade rollback` undoes this revision's expand")
