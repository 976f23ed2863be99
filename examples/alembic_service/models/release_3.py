"""Release 3: `owner` is called `assignee`, every task has a title, nobody reads `source` any
more, labels have a color, and projects are gone."""

import sqlalchemy as sa

metadata = sa.MetaData()

tasks = sa.Table(
    "tasks", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("title", sa.String(200), nullable=False),
    sa.Column("state", sa.String(16), nullable=False, server_default="open"),
    sa.Column("priority", sa.Integer, nullable=False, server_default="2"),
    sa.Column("assignee", sa.String(40)),
)

labels = sa.Table(
    "labels", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("task_id", sa.Integer, nullable=False, index=True),
    sa.Column("name", sa.String(40), nullable=False),
    sa.Column("color", sa.String(7)),
)
