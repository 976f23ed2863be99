"""`crossfade demo`: Glance's is_public -> visibility, a real rolling upgrade, narrated.

Runs on a temporary SQLite file by default (no server), or on any supported database via a URL.
It creates release N's `images` table, expands, writes through release N's and release N+1's
tables while both are live, migrates, contracts, and shows the rows at every step. The change
is the one in examples/glance/changes/0001_visibility.py, repeated here so the demo works from an
installed package.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import sqlalchemy as sa
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from . import state
from .change import Change
from .engines import open_engine
from .errors import CrossfadeError
from .oplock import lock_table
from .ops import replace_column
from .runner import Runner
from .state import Phase

TABLE = "images"
# The transition's row as both releases see it: N reads is_public, N+1 reads visibility.
_BOTH_SIDES = sa.table(TABLE, sa.column("id", sa.Integer), sa.column("name", sa.String),
                       sa.column("is_public", sa.Boolean), sa.column("visibility", sa.String))
_NAMES = ("cirros", "ubuntu-24.04", "fedora-40", "debian-12", "centos-stream-9", "alpine-3.20")


def release_n_images(metadata: sa.MetaData) -> sa.Table:
    """Release N's model: visibility is a boolean."""
    return sa.Table(TABLE, metadata,
                    sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("name", sa.String(255)),
                    sa.Column("is_public", sa.Boolean, nullable=False))


def release_n1_images(metadata: sa.MetaData) -> sa.Table:
    """Release N+1's model: visibility is one of public / private / shared / community."""
    return sa.Table(TABLE, metadata,
                    sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("name", sa.String(255)),
                    sa.Column("visibility", sa.String(16), nullable=False, server_default="shared"))


def visibility_change() -> Change:
    return Change(
        replace_column(
            TABLE, "is_public",
            sa.Column("visibility", sa.String(16), nullable=False, server_default="shared"),
            up=lambda is_public: sa.case((is_public, "public"), else_="shared"),
            down=lambda visibility: visibility == "public",
        ),
        id="demo_glance_visibility",
    )


def run_demo(url: str | None = None, *, console: Console | None = None, rows: int = 1000,
             keep: bool = False) -> None:
    console = console or Console(highlight=False)
    workdir = None if url else Path(tempfile.mkdtemp(prefix="crossfade-demo-"))
    engine = open_engine(url or f"sqlite:///{workdir / 'glance.db'}", may_create_file=True)
    try:
        # A temporary file goes away whole; a server database is left as the demo found it.
        _Demo(engine, console, rows).run(keep=keep or workdir is not None)
    finally:
        engine.dispose()
        if workdir is not None:
            if keep:
                console.print(f"\nThe database is kept at [bold]{workdir / 'glance.db'}[/bold]")
            else:
                shutil.rmtree(workdir, ignore_errors=True)


class _Demo:
    def __init__(self, engine: sa.Engine, console: Console, rows: int):
        self.engine, self.console, self.rows = engine, console, rows
        self.old = release_n_images(sa.MetaData())
        self.new = release_n1_images(sa.MetaData())
        self.change = visibility_change()
        self.runner = Runner(engine, batch_size=max(1, rows // 4),
                             log=lambda message: console.print(f"    [dim]{escape(message)}[/dim]"))

    def run(self, keep: bool) -> None:
        self._refuse_existing_table()
        had_state_table = self._has_state_table()
        try:
            self._release_n()
            self._expand()
            self._both_releases_write()
            self._migrate()
            self._contract()
        finally:
            if not keep:
                self._clean_up(had_state_table)

    # --- the story -----------------------------------------------------------------------
    def _release_n(self) -> None:
        self._say(f"Release N runs on {self.engine.dialect.name}: images have a boolean [bold]is_public[/bold]")
        self.old.metadata.create_all(self.engine)
        with self.engine.begin() as conn:
            conn.execute(self.old.insert(), [{"name": f"{_NAMES[i % len(_NAMES)]}-{i // len(_NAMES)}",
                                              "is_public": i % 3 == 0} for i in range(self.rows)])
        self.console.print(f"  {self.rows} images created by release N")
        self._show("release N's rows", self._first_rows(self.old, ("id", "name", "is_public")))

    def _expand(self) -> None:
        self._say("crossfade expand: add [bold]visibility[/bold] (nullable for now) and the sync triggers")
        self.runner.expand(self.change)

    def _both_releases_write(self) -> None:
        self._say("Nodes roll from release N to N+1; both write at once and the triggers sync them")
        with self.engine.begin() as conn:
            old_id = conn.execute(self.old.insert().values(name="written-by-N", is_public=True)).inserted_primary_key[0]
        self._wrote("release N inserts an image with is_public=true", old_id)
        with self.engine.begin() as conn:
            new_id = conn.execute(self.new.insert().values(name="written-by-N+1", visibility="community")) \
                .inserted_primary_key[0]
        self._wrote("release N+1 inserts an image with visibility='community'", new_id)
        with self.engine.begin() as conn:
            conn.execute(self.new.update().where(self.new.c.id == 1).values(visibility="private"))
        self._wrote("release N+1 makes image 1 private", 1)
        with self.engine.begin() as conn:
            conn.execute(self.old.update().where(self.old.c.id == 2).values(is_public=True))
        self._wrote("release N makes image 2 public", 2)
        with self.engine.begin() as conn:
            conn.execute(self.old.update().where(self.old.c.id == new_id).values(name="renamed-by-N"))
        self._wrote("release N renames the community image: its finer visibility survives", new_id)

    def _migrate(self) -> None:
        self._say("crossfade migrate: backfill visibility of the rows written before expand")
        self.runner.on_progress = lambda p: self.console.print(
            f"    backfilled {p.table}: {p.done}/{p.total} rows ({p.fraction:.0%})")
        try:
            self.runner.migrate(self.change)
        finally:
            self.runner.on_progress = None
        with self.engine.connect() as conn:
            missing = conn.execute(sa.select(sa.func.count()).select_from(self.new)
                                   .where(self.new.c.visibility.is_(None))).scalar()
        self.console.print(f"  rows without visibility now: {missing}")

    def _contract(self) -> None:
        self._say("Every node runs release N+1. crossfade contract drops the triggers and is_public,\n"
                  "  and visibility becomes NOT NULL DEFAULT 'shared'")
        self.runner.contract(self.change)
        status = self.runner.status(self.change)
        self.console.print(f"  phase: [cyan]{status.phase.value}[/cyan], "
                           f"problems: {'; '.join(status.problems) or 'none'}")
        columns = [c["name"] for c in sa.inspect(self.engine).get_columns(TABLE)]
        self.console.print(f"  columns of {TABLE} now: {', '.join(columns)}")
        with self.engine.connect() as conn:
            counts = conn.execute(sa.select(self.new.c.visibility, sa.func.count())
                                  .group_by(self.new.c.visibility).order_by(self.new.c.visibility)).all()
        self.console.print("  visibility counts: " + ", ".join(f"{v}={n}" for v, n in counts))
        columns = ("id", "name", "visibility")
        with self.engine.connect() as conn:
            last = conn.execute(sa.select(*[self.new.c[c] for c in columns])
                                .order_by(self.new.c.id.desc()).limit(2)).all()
        self._show("release N+1's rows (final)", self._first_rows(self.new, columns) + sorted(last))

    # --- helpers -------------------------------------------------------------------------
    def _wrote(self, what: str, image_id: int) -> None:
        with self.engine.connect() as conn:
            found = conn.execute(sa.select(_BOTH_SIDES).where(_BOTH_SIDES.c.id == image_id)).one()
        self.console.print(f"  {escape(what)}\n    -> image {found.id}: N reads is_public={found.is_public}, "
                           f"N+1 reads visibility={escape(repr(found.visibility))}")

    def _first_rows(self, table: sa.Table, columns: tuple[str, ...]) -> list:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(*[table.c[c] for c in columns]).order_by(table.c.id).limit(3)).all()

    def _show(self, title: str, rows: list) -> None:
        if not rows:
            return
        table = Table(title=title, title_justify="left")
        for name in rows[0]._fields:
            table.add_column(name)
        for found in rows:
            table.add_row(*[escape(str(v)) for v in found])
        self.console.print(table)

    def _say(self, text: str) -> None:
        self.console.print(f"\n[bold cyan]>[/bold cyan] {text}")

    def _quoted(self) -> str:
        return self.engine.dialect.identifier_preparer.quote(TABLE)

    def _refuse_existing_table(self) -> None:
        if sa.inspect(self.engine).has_table(TABLE):
            raise CrossfadeError(f"the demo creates its own {TABLE!r} table, and this database already "
                                 "has one; give the demo an empty database")

    def _has_state_table(self) -> bool:
        with self.engine.connect() as conn:
            return state.has_table(conn)

    def _clean_up(self, had_state_table: bool) -> None:
        """Leave the database as the demo found it (a server database, not the temporary file)."""
        if self.runner.load(self.change).phase in state.IN_FLIGHT - {Phase.CONTRACTING}:
            self.runner.rollback(self.change)
        with self.engine.begin() as conn:
            conn.execute(sa.text(f"DROP TABLE IF EXISTS {self._quoted()}"))
            state.delete(conn, self.change.id)
            if not had_state_table:  # crossfade had never run here: its lock's table goes too
                state.state_table.drop(conn, checkfirst=True)
                lock_table.drop(conn, checkfirst=True)


__all__ = ["release_n1_images", "release_n_images", "run_demo", "visibility_change"]
