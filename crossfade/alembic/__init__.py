"""crossfade inside an Alembic project: one Alembic revision file per change.

    import crossfade.alembic
    from crossfade import ops

    revision = "0002_task_state"
    down_revision = "0001_initial"

    @crossfade.alembic.upgrade(
        ops.rename_column("tasks", "owner", "assignee"),
    )
    def upgrade() -> None:
        op.create_table("labels", ...)  # plain Alembic ops: additive ones run in expand, destructive ones in contract

`crossfade expand | migrate | contract | rollback | status | check | plan` take the project (its
alembic.ini, or the directory holding it) and work on the revisions between the database's
alembic_version and head; contract stamps alembic_version. A plain `alembic upgrade` runs a
crossfade revision offline: the whole change at once, without triggers (`--sql` prints it).
"""

from .declare import include_object, upgrade

__all__ = ["include_object", "upgrade"]
