"""Release 2: `done` becomes the finer `state` (open, done, blocked), tasks get a `priority`,
and tasks can carry labels."""

import sqlalchemy as sa

metadata = sa.MetaData()

projects = sa.Table(
    "projects", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(80), nullable=False),
)

tasks = sa.Table(
    "tasks", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("title", sa.String(200)),
    sa.Column("owner", sa.String(40)),
    sa.Column("source", sa.String(20), nullable=False),
    sa.Column("state", sa.String(16), nullable=False, server_default="open"),
    sa.Column("priority", sa.Integer, nullable=False, server_default="2"),
)

labels = sa.Table(
    "labels", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("task_id", sa.Integer, nullable=False, index=True),
    sa.Column("name", sa.String(40), nullable=False),
)
