"""block_writes: writes to the named columns fail with a clear error while the change is in
flight, on SQLite, PostgreSQL and MariaDB; nothing else changes, and contract lifts the block."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from crossfade import Change, ops
from crossfade.errors import UnknownColumnError, ValidationError
from crossfade.runner import Runner

metadata = sa.MetaData()
docs = sa.Table(
    "docs", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("title", sa.String(40)),
    sa.Column("legacy_format", sa.String(10), nullable=False, server_default="v1"),
)
BLOCK = Change(ops.block_writes("docs", "legacy_format"), id="block_legacy_format")


@pytest.fixture
def blocked(engine) -> Runner:
    with engine.begin() as conn:
        metadata.create_all(conn)
        conn.execute(docs.insert().values(id=1, title="a", legacy_format="v0"))
    runner = Runner(engine)
    runner.expand(BLOCK)
    return runner


def rows(engine) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.select(docs).order_by(docs.c.id))]


def refused(engine, statement) -> str:
    with pytest.raises(sa.exc.DBAPIError) as caught, engine.begin() as conn:
        conn.execute(statement)
    return str(caught.value.orig)


def test_writes_to_a_blocked_column_fail_and_change_nothing(engine, blocked):
    before = rows(engine)
    message = refused(engine, docs.update().where(docs.c.id == 1).values(title="b", legacy_format="v2"))
    assert "docs.legacy_format is read-only during a rolling upgrade" in message
    refused(engine, docs.insert().values(id=2, title="c", legacy_format="v2"))
    assert rows(engine) == before  # the whole statement was undone, title included


def test_writes_that_leave_the_blocked_column_alone_still_work(engine, blocked):
    with engine.begin() as conn:
        conn.execute(docs.update().where(docs.c.id == 1).values(title="renamed"))
        conn.execute(docs.update().where(docs.c.id == 1).values(legacy_format="v0"))  # unchanged value
        conn.execute(docs.insert().values(id=2, title="new"))  # the column takes its default
        conn.execute(docs.insert().values(id=3, title="same", legacy_format="v1"))  # = the default
    assert rows(engine) == [(1, "renamed", "v0"), (2, "new", "v1"), (3, "same", "v1")]


def test_contract_lifts_the_block(engine, blocked):
    blocked.migrate(BLOCK)
    blocked.contract(BLOCK)
    with engine.begin() as conn:
        conn.execute(docs.update().where(docs.c.id == 1).values(legacy_format="v2"))
    assert rows(engine) == [(1, "a", "v2")]


def test_a_custom_message_reaches_the_writer(engine):
    with engine.begin() as conn:
        metadata.create_all(conn)
        conn.execute(docs.insert().values(id=1, title="a"))
    Runner(engine).expand(Change(ops.block_writes("docs", ["title"], message="titles are frozen: see INC-42"),
                                 id="freeze_titles"))
    assert "titles are frozen: see INC-42" in refused(engine, docs.update().values(title="b"))


def test_bad_block_writes_are_refused_before_any_ddl(engine):
    with engine.begin() as conn:
        metadata.create_all(conn)
    with pytest.raises(UnknownColumnError, match="docs.nope"):
        Runner(engine).expand(Change(ops.block_writes("docs", "nope"), id="bad"))
    assert "crossfade_state" not in sa.inspect(engine).get_table_names()
    with pytest.raises(ValidationError, match="at least one column"):
        ops.block_writes("docs", [])
