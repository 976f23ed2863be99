"""Release 1 of the task service: a task is `done` or not, has an `owner` and a `source`."""

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
    sa.Column("done", sa.Boolean, nullable=False),
    sa.Column("owner", sa.String(40)),
    sa.Column("source", sa.String(20), nullable=False),  # where the task came from: web, api, mail
)
