"""Release 3: owner becomes assignee, titles required, source and projects dropped

Revision ID: 0003_assignee
Revises: 0002_task_state
Create Date: 2024-06-03 10:00:00

It changes `tasks` again, so it waits for 0002's contract: `crossfade expand` runs it in the
rolling upgrade after 0002's.
"""

from pathlib import Path

import sqlalchemy as sa
from alembic import op

import crossfade.alembic
from crossfade import ops
from crossfade.loader import import_file

revision = "0003_assignee"
down_revision = "0002_task_state"
branch_labels = None
depends_on = None

_models = Path(__file__).resolve().parents[2] / "models"
metadata = import_file(_models / "release_2.py").metadata
metadata_n1 = import_file(_models / "release_3.py").metadata
simulator_values = {"tasks.state": ["open", "done", "blocked"]}


@crossfade.alembic.upgrade(
    ops.rename_column("tasks", "owner", "assignee"),
    ops.set_not_null("tasks", "title", fill="untitled"),  # release 2 may still write NULL titles
    ops.drop_column("tasks", "source", fill="web"),  # release 3 no longer writes it; release 2 requires it
)
def upgrade() -> None:
    """Plain Alembic operations: the new column runs in expand, the dropped table in contract."""
    op.add_column("labels", sa.Column("color", sa.String(7)))
    op.drop_table("projects")


def downgrade() -> None:
    raise NotImplementedError("before contract, `crossfade rollback` undoes this revision's expand")
