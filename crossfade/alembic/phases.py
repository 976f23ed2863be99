"""One revision of an Alembic project as the simulator's phase driver (crossfade.testing.phases).

    from crossfade.alembic.phases import revision_phases
    simulate(change, release_n, release_n1, url, settings, phases=revision_phases("alembic.ini", change.id))

Each phase is RevisionRunner's, exactly what `crossfade expand | migrate | contract alembic.ini`
runs for the revision: its plain Alembic operations at their phase around the change's. The
upgrade it belongs to holds this revision alone, as when it is the database's next one.

The simulator builds release N's tables from metadata on a scratch database, which says nothing
of Alembic; so `prepare` sets alembic_version to the revision's down_revision (dropping whatever
an earlier run left there), and contract stamps the revision, as the CLI's does.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa

from ..errors import CrossfadeError
from ..runner import Runner
from .locate import find_project
from .project import Project, Upgrade
from .runner import RevisionRunner


class RevisionPhases:
    """The phases of revision `revision_id` of `project`, on the database of `runner`."""

    def __init__(self, project: Project, revision_id: str, runner: Runner):
        script = project.script.get_revision(revision_id)
        if script is None:
            raise CrossfadeError(f"{project.where}: no revision {revision_id}")
        self.project, self.engine = project, runner.engine
        self.down_revision = script.down_revision
        self.revision = project.revision(revision_id, runner.engine.dialect)
        upgrade = Upgrade(_as_heads(self.down_revision), tuple(project.script.get_heads()), [self.revision], [])
        self.runner = RevisionRunner(project, runner, upgrade)

    def tables(self, release_n: sa.MetaData, release_n1: sa.MetaData) -> set[str]:
        """The tables the revision touches (its change's, its plain operations'), and every table
        release N and release N+1 define differently: a revision is one release's whole schema
        change, so a table it should have created, altered or dropped and did not fails too."""
        return self.revision.tables() | _defined_differently(release_n, release_n1, self.engine.dialect)

    def prepare(self) -> None:
        """alembic_version at the revision's down_revision: the database the CLI would find."""
        with self.engine.begin() as conn:
            _drop_version_table(conn, self.project.version_table)
            if self.down_revision is not None:
                self.project.stamp(conn, self.down_revision)

    def expand(self) -> None:
        self.runner.expand(self.revision)

    def migrate(self) -> None:
        self.runner.migrate(self.revision)

    def contract(self) -> None:
        self.runner.contract(self.revision)

    def rollback(self) -> None:
        self.runner.rollback(self.revision)


def revision_phases(project: Project | str | Path, revision_id: str) -> Callable[[Runner], RevisionPhases]:
    """The simulator's `phases` for one revision (`project`: a Project, or its alembic.ini or the
    directory holding it)."""
    if not isinstance(project, Project):
        found = find_project(project)
        if found is None:
            raise CrossfadeError(f"{project} is not an Alembic project (no alembic.ini there)")
        project = found
    return lambda runner: RevisionPhases(project, revision_id, runner)


def _as_heads(down_revision: str | tuple[str, ...] | None) -> tuple[str, ...]:
    if down_revision is None:
        return ()
    return (down_revision,) if isinstance(down_revision, str) else tuple(down_revision)


def _defined_differently(release_n: sa.MetaData, release_n1: sa.MetaData, dialect: sa.Dialect) -> set[str]:
    """Tables only one release has, or whose DDL (columns, constraints, indexes) differs."""
    names = set(release_n.tables) | set(release_n1.tables)
    return {name for name in names if _ddl(release_n, name, dialect) != _ddl(release_n1, name, dialect)}


def _ddl(metadata: sa.MetaData, name: str, dialect: sa.Dialect) -> tuple[str, ...] | None:
    table = metadata.tables.get(name)
    if table is None:
        return None
    indexes = sorted(str(sa.schema.CreateIndex(index).compile(dialect=dialect)) for index in table.indexes)
    return (str(sa.schema.CreateTable(table).compile(dialect=dialect)), *indexes)


def _drop_version_table(conn: sa.Connection, name: str) -> None:
    """A version table an earlier run left may name a revision this project does not have,
    which Alembic cannot stamp from."""
    if sa.inspect(conn).has_table(name):
        sa.Table(name, sa.MetaData()).drop(conn)
