"""block_writes: writes to the named columns fail with a clear error while the change is in
flight, on SQLite, PostgreSQL and MariaDB; nothing else changes, and contract lifts the block."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from crossfade import Change, identify_new_release, ops
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
    """The database's message to the writer (PyMySQL's error holds (code, message))."""
    with pytest.raises(sa.exc.DBAPIError) as caught, engine.begin() as conn:
        conn.execute(statement)
    return str(caught.value.orig.args[-1])


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


# --- a table's block: events, conditions, release N only ------------------------------------

notes = sa.Table(
    "notes", sa.MetaData(),
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("body", sa.String(40)),
    sa.Column("sealed", sa.String(40)),
)
HOSTILE = "it's \"50%\" done; \\ `tick` $$ -- retry %s later"


def notes_table(engine, *ids: int) -> None:
    with engine.begin() as conn:
        notes.metadata.create_all(conn)
        for i in ids:
            conn.execute(notes.insert().values(id=i, body=f"b{i}"))


def note_rows(engine) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.select(notes).order_by(notes.c.id))]


def test_a_tables_block_refuses_the_chosen_kinds_of_write_and_lets_the_others_through(engine):
    notes_table(engine, 1, 2)
    change = Change(ops.block_writes("notes", insert=True, delete=True, message="notes are frozen"), id="freeze_notes")
    Runner(engine).expand(change)
    assert "notes are frozen" in refused(engine, notes.insert().values(id=3, body="c"))
    assert "notes are frozen" in refused(engine, notes.delete().where(notes.c.id == 1))
    with engine.begin() as conn:
        conn.execute(notes.update().where(notes.c.id == 2).values(body="edited"))  # updates were not chosen
    assert note_rows(engine) == [(1, "b1", None), (2, "edited", None)]


def test_an_update_condition_refuses_only_the_updates_it_is_true_for(engine):
    notes_table(engine, 1, 2)
    rule = lambda new, old: sa.or_(new.sealed.is_(None), old.body.is_(None))
    Runner(engine).expand(Change(ops.block_writes("notes", update=rule, message="seal first"), id="seal_notes"))
    assert "seal first" in refused(engine, notes.update().where(notes.c.id == 1).values(body="x"))
    with engine.begin() as conn:
        conn.execute(notes.update().where(notes.c.id == 2).values(body="y", sealed="s"))
        conn.execute(notes.insert().values(id=3, body="inserts are not blocked"))
    assert note_rows(engine) == [(1, "b1", None), (2, "y", "s"), (3, "inserts are not blocked", None)]


def test_a_hostile_message_reaches_the_writer_verbatim(engine):
    notes_table(engine, 1)
    Runner(engine).expand(Change(ops.block_writes("notes", insert=True, update=True, message=HOSTILE), id="hostile"))
    assert HOSTILE in refused(engine, notes.insert().values(id=2))
    assert HOSTILE in refused(engine, notes.update().values(body="z"))
    assert note_rows(engine) == [(1, "b1", None)]


def test_contract_lifts_a_tables_block(engine):
    notes_table(engine, 1)
    change = Change(ops.block_writes("notes", insert=True, update=True, delete=True), id="lift_notes")
    runner = Runner(engine)
    runner.expand(change)
    assert "writes to notes are refused during a rolling upgrade" in refused(engine, notes.delete())
    runner.migrate(change)
    runner.contract(change)
    with engine.begin() as conn:
        conn.execute(notes.insert().values(id=2, body="after"))
        conn.execute(notes.delete().where(notes.c.id == 1))
    assert note_rows(engine) == [(2, "after", None)]


def test_with_release_n1_identified_only_release_ns_writes_are_refused(engine, dialect_name):
    """PostgreSQL and MariaDB tell the releases apart; SQLite cannot, and refuses both."""
    notes_table(engine, 1)
    change = Change(ops.block_writes("notes", insert=True, update=True, old_release_only=True, message="N is frozen"),
                    id="freeze_release_n", new_release_identified=True)
    Runner(engine).expand(change)
    new_release = sa.create_engine(engine.url)
    identified = identify_new_release(new_release)
    assert "N is frozen" in refused(engine, notes.insert().values(id=2, body="from N"))
    if dialect_name == "sqlite":
        assert not identified
        assert "N is frozen" in refused(new_release, notes.insert().values(id=3, body="from N+1"))
        assert note_rows(engine) == [(1, "b1", None)]
        return
    with new_release.begin() as conn:
        conn.execute(notes.insert().values(id=3, body="from N+1"))
        conn.execute(notes.update().where(notes.c.id == 1).values(sealed="by N+1"))
    new_release.dispose()
    assert note_rows(engine) == [(1, "b1", "by N+1"), (3, "from N+1", None)]


def test_a_block_of_release_n_only_without_identification_is_refused_before_any_ddl(engine):
    notes_table(engine)
    with pytest.raises(ValidationError, match="old_release_only=True needs release N\\+1 identified"):
        Runner(engine).expand(Change(ops.block_writes("notes", insert=True, old_release_only=True), id="unidentified"))
    assert "crossfade_state" not in sa.inspect(engine).get_table_names()


def test_a_condition_naming_a_missing_column_is_refused_before_any_ddl(engine):
    notes_table(engine)
    change = Change(ops.block_writes("notes", update=lambda new, old: new.nope.is_(None)), id="bad_condition")
    with pytest.raises(ValidationError, match="'notes' has no column 'nope'"):
        Runner(engine).expand(change)
    assert "crossfade_state" not in sa.inspect(engine).get_table_names()


@pytest.mark.parametrize("arguments, message", [
    ({"columns": "body", "insert": True}, "give columns or insert=..., not both"),
    ({"insert": "yes"}, "insert= takes True, False or a callable"),
    ({}, "name at least one column, or the writes to refuse"),
    ({"insert": True, "message": "  "}, "message must be a non-empty string"),
])
def test_bad_table_blocks_are_refused_in_one_line(arguments, message):
    with pytest.raises(ValidationError, match=message) as caught:
        ops.block_writes("notes", **arguments)
    assert "\n" not in str(caught.value)
