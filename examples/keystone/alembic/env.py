"""Alembic's environment for Keystone's changes: Alembic's generic env.py, plus two lines for
crossfade (marked). `alembic upgrade` runs crossfade revisions offline; `crossfade expand`,
`migrate` and `contract` run them online without this file.

The project starts at Keystone's release N (Newton): its tables exist already, made by the
migrations before these (sqlalchemy-migrate's, in Keystone), so keystone_003 has no down_revision.
"""

import os
from logging.config import fileConfig
from pathlib import Path

from alembic import context
from sqlalchemy import engine_from_config, pool

from crossfade.alembic import include_object  # crossfade: autogenerate leaves crossfade_state alone
from crossfade.loader import import_file

config = context.config
if config.config_file_name is not None:
    fileConfig(config.config_file_name, disable_existing_loggers=False)

# The models of the newest release, for `alembic revision --autogenerate`.
target_metadata = import_file(Path(__file__).resolve().parents[1] / "k003_credential_encryption" / "release_n1.py").metadata

# crossfade reads CROSSFADE_URL too, so both tools work on the same database.
url = config.get_main_option("sqlalchemy.url") or os.environ.get("CROSSFADE_URL")


def run_migrations_offline() -> None:
    context.configure(url=url, target_metadata=target_metadata, include_object=include_object,
                      literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connectable = engine_from_config({"sqlalchemy.url": url}, prefix="sqlalchemy.", poolclass=pool.NullPool)
    with connectable.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata, include_object=include_object)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
