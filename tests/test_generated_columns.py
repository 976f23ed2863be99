"""A table with a generated column goes through every phase, on every database.

Issue 11, finding 6: with a generated column anywhere on the table (PostgreSQL STORED, MariaDB),
contract crashed with `AttributeError: 'Computed' object has no attribute 'arg'` after dropping the
triggers, and so did every rerun, while rollback was refused: stuck. On SQLite a VIRTUAL column
made expand fail with a syntax error and rollback crash: stuck in rolling_back. Generated columns
are now copied as what they are, never written by a trigger or a table rebuild's copy, and an op
that would write one is refused before any DDL.
"""

from __future__ import annotations

import glance_schema
import pytest
import sqlalchemy as sa
from conftest import DIALECTS
from pg_versions import PG_VERSIONS

from crossfade import Change, ops
from crossfade.errors import GeneratedColumnError
from crossfade.runner import Runner
from crossfade.state import Phase

ROWS = [{"id": i, "name": f"n{i}", "is_public": i % 2 == 0, "size": None if i % 3 == 0 else i}
        for i in range(1, 21)]


@pytest.fixture(params=DIALECTS + PG_VERSIONS[-1:])
def dialect_name(request) -> str:
    """Every database, and PostgreSQL 18 (pg_versions mark): the first with VIRTUAL generated columns."""
    return request.param


@pytest.fixture(params=["stored", "virtual"])
def db(request, engine) -> sa.Engine:
    """Release N's images table with `doubled` and `tripled` generated from `size` (STORED or VIRTUAL)."""
    stored = request.param == "stored"
    if not stored and engine.dialect.name == "postgresql" and server_version(engine) < (18,):
        pytest.skip("PostgreSQL before 18 has STORED generated columns only")
    # Two in a row: SQLAlchemy's SQLite reflection ran the first one's expression into the second's.
    glance_schema.create_images(engine, ROWS, sa.Column("doubled", sa.Integer, sa.Computed("size * 2", persisted=stored)),
                                sa.Column("tripled", sa.Integer, sa.Computed("size * 3", persisted=stored)))
    return engine


def server_version(engine: sa.Engine) -> tuple:
    with engine.connect() as conn:
        return conn.dialect.server_version_info


def execute(engine: sa.Engine, statement: str, **params) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text(statement), params)


def rows(engine: sa.Engine, *columns: str) -> dict[int, tuple]:
    with engine.connect() as conn:
        return {r[0]: tuple(r[1:]) for r in conn.execute(sa.text(f"SELECT id, {', '.join(columns)} FROM images"))}


def assert_still_generated(engine: sa.Engine) -> None:
    """Every row's `doubled` is `size * 2`, and the database still computes it for a new row."""
    execute(engine, "INSERT INTO images (id, name, size" + (", is_public" if has_is_public(engine) else "")
            + ") VALUES (999, 'new', 21" + (", true" if has_is_public(engine) else "") + ")")
    assert all(doubled == (None if size is None else size * 2) and tripled == (None if size is None else size * 3)
               for size, doubled, tripled in rows(engine, "size", "doubled", "tripled").values())
    assert rows(engine, "doubled", "tripled")[999] == (42, 63)
    with engine.connect() as conn:
        assert next(c for c in sa.inspect(conn).get_columns("images") if c["name"] == "doubled").get("computed")


def has_is_public(engine: sa.Engine) -> bool:
    with engine.connect() as conn:
        return "is_public" in {c["name"] for c in sa.inspect(conn).get_columns("images")}


def writes_of_both_releases(engine: sa.Engine) -> None:
    execute(engine, "INSERT INTO images (id, name, is_public, size) VALUES (101, 'n', true, 7)")  # release N
    execute(engine, "UPDATE images SET is_public = false, size = 50 WHERE id = 2")
    execute(engine, "INSERT INTO images (id, name, visibility, size) VALUES (102, 'n', 'public', 8)")  # release N+1
    execute(engine, "UPDATE images SET visibility = 'public', size = 60 WHERE id = 3")


def test_every_phase_on_a_table_with_a_generated_column(db):
    """Finding 6: expand, both releases' writes, migrate, contract (which crashed), on STORED and
    VIRTUAL columns."""
    runner, change = Runner(db), glance_schema.visibility_change()
    runner.expand(change)
    writes_of_both_releases(db)
    runner.migrate(change)
    runner.contract(change)
    assert runner.load(change).phase is Phase.CONTRACTED and runner.problems(change) == []
    visibility = rows(db, "visibility")
    assert visibility[101] == ("public",) and visibility[2] == ("shared",)
    assert visibility[102] == ("public",) and visibility[3] == ("public",)
    assert all(visibility[r["id"]] == ("public" if r["is_public"] else "shared",) for r in ROWS if r["id"] not in (2, 3))
    assert_still_generated(db)


def test_rollback_on_a_table_with_a_generated_column(db):
    """Finding 6 on SQLite: a VIRTUAL column made expand fail and rollback crash."""
    runner, change = Runner(db), glance_schema.visibility_change()
    runner.expand(change)
    writes_of_both_releases(db)
    runner.rollback(change)
    assert runner.load(change).phase is Phase.ROLLED_BACK and runner.problems(change) == []
    is_public = rows(db, "is_public")
    assert bool(is_public[101][0]) and not is_public[2][0] and bool(is_public[102][0]) and bool(is_public[3][0])
    assert_still_generated(db)


def test_contract_runs_again_after_a_stop_on_a_table_with_a_generated_column(db):
    """A contract stopped after it dropped the triggers (where the crash was) finishes when run again."""
    runner, change = Runner(db), glance_schema.visibility_change()
    runner.expand(change)
    runner.migrate(change)

    def stop(phase: str, step: str) -> None:
        if step.startswith("drop triggers on"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        Runner(db, on_step=stop).contract(change)
    runner.contract(change)
    assert runner.load(change).phase is Phase.CONTRACTED and runner.problems(change) == []
    assert_still_generated(db)


def test_rename_table_keeps_the_generated_column_on_both_names(db):
    """SQLite's stand-in is a mirror table: it computes the column itself; no trigger copies it."""
    runner, change = Runner(db), Change(ops.rename_table("images", "pictures"), id="rename")
    runner.expand(change)
    execute(db, "INSERT INTO pictures (id, name, is_public, size) VALUES (103, 'p', true, 4)")
    with db.connect() as conn:
        assert conn.exec_driver_sql("SELECT doubled FROM images WHERE id = 103").scalar() == 8
    runner.migrate(change)
    with db.connect() as conn:
        assert conn.exec_driver_sql("SELECT doubled FROM pictures WHERE id = 1").scalar() == 2
    runner.contract(change)
    assert runner.problems(change) == []
    with db.connect() as conn:
        assert conn.exec_driver_sql("SELECT doubled FROM pictures WHERE id = 103").scalar() == 8


WRITING_OPS = {
    "replace the generated column": lambda: ops.replace_column(
        "images", "doubled", sa.Column("doubled_text", sa.String(20)),
        up=lambda d: sa.cast(d, sa.String(20)), down=lambda t: sa.cast(t, sa.Integer)),
    "rename the generated column": lambda: ops.rename_column("images", "doubled", "twice"),
    "a generated new column a trigger fills": lambda: ops.replace_column(
        "images", "size", sa.Column("size_kb", sa.Integer, sa.Computed("id * 2")),
        up=lambda size: size, down=lambda size_kb: size_kb),
}


@pytest.mark.parametrize("what", sorted(WRITING_OPS))
def test_an_op_that_would_write_a_generated_column_is_refused_before_any_ddl(db, what):
    change = Change(WRITING_OPS[what](), id="writes-generated")
    with db.connect() as conn:
        before = sorted(c["name"] for c in sa.inspect(conn).get_columns("images"))
    with pytest.raises(GeneratedColumnError, match="generated column"):
        Runner(db).expand(change)
    with db.connect() as conn:
        assert sorted(c["name"] for c in sa.inspect(conn).get_columns("images")) == before
        assert "crossfade_state" not in sa.inspect(conn).get_table_names()
