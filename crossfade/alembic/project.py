"""An Alembic project as crossfade sees it: its revisions, which are pending, which go together.

CHANGES names a project by its alembic.ini, the directory holding alembic.ini, or its script
directory (env.py and script.py.mako). The database URL is `--url` / CROSSFADE_URL, else the
ini's `sqlalchemy.url`; the version table is `alembic_version` unless the ini's [alembic]
section says `version_table = ...` (env.py must then pass the same name to Alembic).

One rolling upgrade carries the pending revisions in order up to the first one whose crossfade
change touches a table an earlier one of them still changes: that revision waits for the
earlier one's contract (a table is synced by one change at a time).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import sqlalchemy as sa
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError

from ..change import Change
from ..errors import ChangeLoadError, CrossfadeError
from ..schema import Schema
from . import snapshot
from .classify import classify, table_of
from .declare import Declaration, declaration_of
from .recording import record

DEFAULT_VERSION_TABLE = "alembic_version"


@dataclass
class Revision:
    """One pending Alembic revision: its crossfade change (if any) and its plain operations.
    It stands where the CLI expects a Change: `id` is the revision id, so is its change's."""

    id: str
    module: ModuleType
    change: Change | None
    plain: list = field(default_factory=list)

    def change_tables(self) -> set[str]:
        return self.change.tables() if self.change is not None else set()

    def tables(self) -> set[str]:
        return self.change_tables() | {t for t in map(table_of, self.plain) if t}


@dataclass
class Upgrade:
    """The revisions this rolling upgrade carries, and those after it."""

    current: tuple[str, ...]  # the database's alembic_version
    heads: tuple[str, ...]  # the project's
    revisions: list[Revision]
    waiting: list[Revision]
    reason: str = ""  # why the first waiting revision waits

    @property
    def changes(self) -> list[Revision]:  # what the CLI iterates
        return self.revisions

    def summary(self) -> str:
        at = ", ".join(self.current) or "base (empty)"
        if not self.revisions and not self.waiting:
            return f"alembic: database at {at}, head {', '.join(self.heads)}: up to date"
        line = f"alembic: database at {at}; this upgrade: {', '.join(r.id for r in self.revisions)}"
        if self.waiting:
            line += f"; later: {', '.join(r.id for r in self.waiting)} ({self.reason})"
        return line


class Project:
    def __init__(self, config: Config, where: str, script: ScriptDirectory | None = None):
        self.config, self.where = config, where
        try:
            self.script = script or ScriptDirectory.from_config(config)
        except CommandError as exc:
            raise ChangeLoadError(f"{where}: {exc}") from None
        self._revisions: dict[tuple[str, str], Revision] = {}
        self._replayed: dict[tuple[str, str], Schema] = {}

    @property
    def url(self) -> str | None:
        return self.config.get_main_option("sqlalchemy.url")

    @property
    def version_table(self) -> str:
        return self.config.get_main_option("version_table") or DEFAULT_VERSION_TABLE

    # --- revisions -----------------------------------------------------------------------------
    def history(self, upper: str | tuple[str, ...] = "heads", lower: str | tuple[str, ...] = "base") -> list[str]:
        """Revision ids after `lower` up to `upper`, oldest first."""
        with self._loading():
            scripts = list(self.script.iterate_revisions(upper, lower))
        return [s.revision for s in reversed(scripts)]

    def declaration(self, revision_id: str) -> tuple[ModuleType, Declaration]:
        with self._loading():
            script = self.script.get_revision(revision_id)
        if script is None:
            raise CrossfadeError(f"{self.where}: no revision {revision_id}")
        return script.module, declaration_of(script.module, revision_id)

    @contextmanager
    def _loading(self):
        """Alembic imports every revision file when it first maps them: a broken one is a
        ChangeLoadError naming it, crossfade's own errors (a bad Change) pass as they are."""
        try:
            yield
        except CrossfadeError:
            raise
        except CommandError as exc:
            raise ChangeLoadError(f"{self.where}: {exc}") from None
        except Exception as exc:
            raise ChangeLoadError(f"{self.where}: a revision file failed to load: {type(exc).__name__}: {exc}") \
                from exc

    def revision(self, revision_id: str, dialect: sa.Dialect) -> Revision:
        """The revision with its plain operations as recorded for `dialect`."""
        key = (revision_id, dialect.name)
        if key not in self._revisions:
            module, declared = self.declaration(revision_id)
            plain = record(declared.plain, dialect, f"revision {revision_id} ({getattr(module, '__file__', '')})")
            self._revisions[key] = Revision(revision_id, module, declared.change, plain)
        return self._revisions[key]

    def declared_changes(self) -> list[tuple[ModuleType, Change]]:
        """Every crossfade revision's module and change, oldest first (for `crossfade verify`)."""
        found = []
        for revision_id in self.history():
            module, declared = self.declaration(revision_id)
            if declared.change is not None:
                found.append((module, declared.change))
        return found

    # --- the database --------------------------------------------------------------------------
    def current(self, conn: sa.Connection) -> tuple[str, ...]:
        return MigrationContext.configure(conn, opts={"version_table": self.version_table}).get_current_heads()

    def stamp(self, conn: sa.Connection, revision_id: str) -> None:
        MigrationContext.configure(conn, opts={"version_table": self.version_table}).stamp(self.script, revision_id)

    def upgrade(self, conn: sa.Connection) -> Upgrade:
        """The pending revisions this rolling upgrade carries, in order."""
        current, heads = self.current(conn), tuple(self.script.get_heads())
        pending = [self.revision(r, conn.dialect) for r in self.history(lower=current or "base")]
        claimed: dict[str, str] = {}
        for position, revision in enumerate(pending):
            clash = sorted(t for t in revision.change_tables() if t in claimed)
            if clash:
                reason = (f"{revision.id} waits for {claimed[clash[0]]}'s contract: both change table "
                          f"{clash[0]}")
                return Upgrade(current, heads, pending[:position], pending[position:], reason)
            for table in revision.tables():
                claimed.setdefault(table, revision.id)
        return Upgrade(current, heads, pending, [])

    # --- release N's schema without a database -------------------------------------------------
    def release_n_schema(self, revision: Revision, dialect: sa.Dialect) -> Schema:
        """The tables before `revision`: replayed, or as its module's `metadata` states them."""
        schema = self.schema_before(revision.id, dialect)
        stated = getattr(revision.module, "metadata", None)
        if isinstance(stated, sa.MetaData):
            snapshot.merge(schema, stated)
        return schema

    def release_tables(self, revision_id: str) -> tuple[sa.MetaData, sa.MetaData]:
        """Release N's and release N+1's tables around `revision_id` as the revisions state them:
        what `crossfade verify` writes through when the revision sets no `metadata` /
        `metadata_n1` (a fresh `crossfade revision`). Replayed with PostgreSQL's dialect: the
        revisions' operations name portable SQLAlchemy types, and the simulator compiles the
        tables for each database it runs on."""
        from sqlalchemy.dialects import postgresql

        dialect = postgresql.dialect()
        revision = self.revision(revision_id, dialect)
        before = self.release_n_schema(revision, dialect)
        after = before.copy()
        self.replay(after, revision)
        return before.metadata, after.metadata

    def schema_before(self, revision_id: str, dialect: sa.Dialect) -> Schema:
        """The tables as the revisions before `revision_id` leave them (see crossfade.alembic.snapshot)."""
        script = self.script.get_revision(revision_id)
        down = script.down_revision if script is not None else None
        schema = Schema(sa.MetaData())
        if down is None:
            return schema
        history = self.history(upper=down)
        start = 0
        for position in range(len(history) - 1, -1, -1):
            cached = self._replayed.get((history[position], dialect.name))
            if cached is not None:
                schema, start = cached.copy(), position + 1
                break
        for earlier in history[start:]:
            self.replay(schema, self.revision(earlier, dialect))
            self._replayed[(earlier, dialect.name)] = schema.copy()
        return schema

    def replay(self, schema: Schema, revision: Revision) -> None:
        """Apply `revision` to `schema` as the offline path runs it."""
        stated = getattr(revision.module, "metadata", None)
        if isinstance(stated, sa.MetaData):
            snapshot.merge(schema, stated)
        phases = classify(revision.plain, schema, revision.id, strict=False)
        for operation in phases.expand:
            snapshot.apply(schema, operation)
        if revision.change is not None:
            snapshot.apply_change(schema, revision.change)
        for operation in phases.contract:
            snapshot.apply(schema, operation)


def from_script_directory(path: Path) -> Project:
    config = Config()
    config.set_main_option("script_location", str(path.resolve()))
    return Project(config, str(path))


def from_ini(ini: Path) -> Project:
    config = Config(str(ini))
    if not config.get_main_option("script_location"):
        raise ChangeLoadError(f"{ini} has no script_location: is it an Alembic project's ini?")
    return Project(config, str(ini))
