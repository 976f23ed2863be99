"""Any legal identifier works, or is refused before any DDL (issue 10, finding 5; DESIGN section 6).

Generated names (triggers, functions, checks) fit each database's limit, PostgreSQL's counted in
bytes, and stay unique when shortened; reflected names come back as the database stores them; a
name the database would cut or refuse is an IdentifierError before the first DDL statement.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from test_validation import snapshot

from crossfade import Change, names, ops
from crossfade.dialects import offline
from crossfade.errors import IdentifierError
from crossfade.runner import Runner
from crossfade.state import Phase


def create_table(engine: sa.Engine, table: str, old: str = "is_public", key: str = "id") -> sa.Table:
    metadata = sa.MetaData()
    t = sa.Table(table, metadata, sa.Column(key, sa.Integer, primary_key=True, autoincrement=False),
                 sa.Column(old, sa.Boolean, nullable=False))
    metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(t.insert(), [{key: i, old: i % 2 == 0} for i in range(1, 6)])
    return t


def replace(table: str, new: str = "visibility", old: str = "is_public", public: str = "public",
            shared: str = "shared") -> Change:
    return Change(ops.replace_column(table, old, sa.Column(new, sa.String(40)),
                                     up=lambda p: sa.case((p, public), else_=shared),
                                     down=lambda v: v == public), id="names")


def columns(engine: sa.Engine, table: str) -> list[str]:
    with engine.connect() as conn:
        return [c["name"] for c in sa.inspect(conn).get_columns(table)]


def crossfade_triggers(engine: sa.Engine) -> list[str]:
    return sorted(name for name, _ in snapshot(engine)["triggers"] if name.startswith(names.PREFIX))


# --- the names crossfade makes up -----------------------------------------------------------------

@pytest.mark.parametrize("dialect", ["postgresql", "mysql"])
def test_generated_names_fit_the_limit_and_stay_distinct(dialect):
    d = offline(dialect)
    rules = d.identifiers
    tables = ["表" * 20, "表" * 21, "t" * 63, "t" * 63 + "x", "é" * 40, "a" * 10]
    made = [d.object_name(t, s) for t in tables for s in ("sync", "insert", "update", "link_update")]
    assert all(rules.size(n) <= rules.limit for n in made)
    assert len(set(made)) == len(made)


def test_a_short_name_is_kept_whole():
    assert offline("postgresql").object_name("images", "insert") == "crossfade_images_insert"


def test_the_dollar_quote_tag_is_not_in_the_body():
    assert names.dollar_tag("x := 'plain';") == "$crossfade$"
    body = "x := '$crossfade$';"
    assert names.dollar_tag(body) not in body


# --- finding 5, PostgreSQL: a 60-byte table name -----------------------------------------------------

@pytest.mark.parametrize("dialect_name", ["postgresql"])
def test_a_sixty_byte_table_name_gets_three_distinct_objects(engine):
    table = "表" * 20  # 20 characters, 60 bytes: legal, but crossfade_<it>_sync is 75 bytes
    create_table(engine, table)
    runner = Runner(engine)
    change = replace(table)
    runner.expand(change)
    assert len(crossfade_triggers(engine)) == 2  # BEFORE INSERT and BEFORE UPDATE, both there
    with engine.begin() as conn:
        conn.execute(sa.text(f'INSERT INTO "{table}" (id, is_public) VALUES (10, true)'))
        assert conn.execute(sa.text(f'SELECT visibility FROM "{table}" WHERE id = 10')).scalar() == "public"
    runner.rollback(change)
    assert runner.load(change).phase is Phase.ROLLED_BACK
    assert columns(engine, table) == ["id", "is_public"]
    assert crossfade_triggers(engine) == []


# --- finding 5, MariaDB: a column named n`ew ---------------------------------------------------------

@pytest.mark.parametrize("dialect_name", ["mysql"])
def test_a_backtick_in_a_new_column_name_is_reflected_as_stored(engine):
    create_table(engine, "images")
    runner = Runner(engine)
    change = replace("images", new="n`ew")
    runner.expand(change)
    assert columns(engine, "images") == ["id", "is_public", "n`ew"]
    runner.expand(change)  # a rerun finds the column it added
    runner.migrate(change)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT `n``ew` FROM images WHERE id = 2")).scalar() == "public"
    runner.rollback(change)
    assert runner.load(change).phase is Phase.ROLLED_BACK
    assert columns(engine, "images") == ["id", "is_public"]  # rollback's OK means the column is gone


# --- names a database cannot hold: refused before DDL -----------------------------------------------

TOO_LONG = {"postgresql": "é" * 32, "mysql": "c" * 65}  # 64 bytes; 65 characters


@pytest.mark.parametrize("dialect_name", ["postgresql", "mysql"])
def test_a_new_column_name_over_the_limit_is_refused_before_ddl(engine, dialect_name):
    create_table(engine, "images")
    before = snapshot(engine)
    with pytest.raises(IdentifierError, match="at most") as caught:
        Runner(engine).expand(replace("images", new=TOO_LONG[dialect_name]))
    assert "images" in str(caught.value)
    assert snapshot(engine) == before


@pytest.mark.parametrize("dialect_name", ["mysql"])
def test_a_trailing_space_is_refused_on_mariadb(engine):
    create_table(engine, "images")
    before = snapshot(engine)
    with pytest.raises(IdentifierError, match="ends with a space"):
        Runner(engine).expand(replace("images", new="visibility "))
    assert snapshot(engine) == before


@pytest.mark.parametrize("dialect_name", ["postgresql", "mysql"])
def test_a_name_at_the_limit_works(engine, dialect_name):
    limit = {"postgresql": "é" * 31 + "x", "mysql": "表" * 64}[dialect_name]  # 63 bytes; 64 characters
    create_table(engine, "images")
    runner = Runner(engine)
    change = replace("images", new=limit)
    runner.expand(change)
    assert columns(engine, "images")[-1] == limit
    runner.rollback(change)
    assert columns(engine, "images") == ["id", "is_public"]
