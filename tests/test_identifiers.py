"""Any legal identifier works, or is refused before any DDL (issue 10, finding 5; DESIGN section 6).

Generated names (triggers, functions, checks) fit each database's limit, PostgreSQL's counted in
bytes, and stay unique when shortened; reflected names come back as the database stores them; a
name the database would cut or refuse is an IdentifierError before the first DDL statement.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_validation import snapshot

from crossfade import Change, names, ops
from crossfade.dialects import offline
from crossfade.errors import IdentifierError
from crossfade.runner import Runner
from crossfade.state import Phase
from crossfade.testing.databases import empty_database


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
    # NOT NULL in release N+1, as the NOT NULL old column needs (DESIGN 2: down(NULL) has no value).
    return Change(ops.replace_column(table, old, sa.Column(new, sa.String(40), nullable=False),
                                     up=lambda p: sa.case((p, public), else_=shared),
                                     down=lambda v: v == public), id="names")


def columns(engine: sa.Engine, table: str) -> list[str]:
    with engine.connect() as conn:
        return [c["name"] for c in sa.inspect(conn).get_columns(table)]


TRIGGERS = {"postgresql": "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal",
            "sqlite": "SELECT name FROM sqlite_master WHERE type = 'trigger'",
            "mysql": "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE()"}


def crossfade_triggers(engine: sa.Engine) -> list[str]:
    with engine.connect() as conn:
        found = conn.exec_driver_sql(TRIGGERS[engine.dialect.name]).scalars()
        return sorted(name for name in found if name.startswith(names.PREFIX))


# --- the names crossfade makes up -----------------------------------------------------------------

@pytest.mark.parametrize("dialect", ["postgresql", "mysql"])
def test_generated_names_fit_the_limit_and_stay_distinct(dialect):
    d = offline(dialect)
    rules = d.identifiers
    tables = ["表" * 20, "表" * 21, "表" * 50, "t" * 63, "t" * 63 + "x", "é" * 40, "a" * 10]
    made = [d.object_name(t, s) for t in tables for s in ("sync", "insert", "update", "link_update")]
    assert all(rules.problem(n, "table") is None for n in made)  # within the limit, and MySQL's file names
    assert len(set(made)) == len(made)


def test_a_portable_name_fits_every_database_and_stays_distinct():
    long = [names.portable(f"fk_{'表' * 30}{end}_id") for end in "12"]
    assert all(names.POSTGRESQL.problem(n) is None and names.MYSQL.problem(n) is None for n in long)
    assert long[0] != long[1]
    assert names.portable("fk_users_id") == "fk_users_id"


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


@pytest.mark.parametrize("dialect_name", ["sqlite", "postgresql", "mysql"])
def test_a_final_line_break_sqlalchemy_would_not_quote_is_refused_before_ddl(engine):
    create_table(engine, "images")
    before = snapshot(engine)
    with pytest.raises(IdentifierError, match="line break"):
        Runner(engine).expand(replace("images", new="visibility\n"))
    assert snapshot(engine) == before


@pytest.mark.parametrize("dialect_name", ["mysql"])
def test_a_trailing_space_is_refused_on_mariadb(engine):
    create_table(engine, "images")
    before = snapshot(engine)
    with pytest.raises(IdentifierError, match="ends with a space, tab"):
        Runner(engine).expand(replace("images", new="visibility "))
    assert snapshot(engine) == before


@pytest.mark.parametrize("dialect_name", ["mysql"])
def test_a_table_whose_trigger_file_name_is_too_long_is_refused_before_ddl(engine):
    table = "t" + "表" * 50  # its own files' names fit (251 bytes); <table>.TRG~ does not (256)
    create_table(engine, table)
    before = snapshot(engine)
    with pytest.raises(IdentifierError, match="triggers in a file"):
        Runner(engine).expand(replace(table))
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


# --- property: any legal name, any literal, through every phase -------------------------------------

# Pieces names and literals are drawn from: quoting and comment characters, statement separators,
# format and bind markers, PostgreSQL's dollar quote, non-ASCII of two and three bytes.
PIECES = ['"', "`", "'", " ", "--", ";", "%", "%s", ":x", "$crossfade$", "\\", "é", "表", "a", "Z", "0", "/*", "\n",
          "\t"]
# Reserved words as whole names, a different set per role so two roles never share one.
RESERVED = {"table": ["order", "table", "user", "group"], "key": ["select", "key"],
            "old": ["from", "where"], "new": ["limit", "default"]}
MARKERS = {"table": "t", "key": "k", "old": "o", "new": "n"}  # distinct first letters: distinct under
# any collation (MySQL and SQLite compare column names case- and accent-insensitively)
LIMITS = {"sqlite": names.IdentifierRules("sqlite", 100), "postgresql": names.POSTGRESQL, "mysql": names.MYSQL}


def _legal(name: str, rules: names.IdentifierRules, kind: str) -> bool:
    return rules.problem(name, kind) is None


def _shrink(name: str, rules: names.IdentifierRules, kind: str) -> str:
    """`name` cut until one more ASCII character still fits (a table pair's last character)."""
    while name and not _legal(name + "x", rules, kind):
        name = name[:-1]
    return name.rstrip(" ")


def _pad(name: str, rules: names.IdentifierRules, kind: str) -> str:
    """`name` filled up to exactly the database's limit."""
    for filler in ("表", "x"):
        while _legal(name + filler, rules, kind):
            name += filler
    return name


@st.composite
def identifier(draw, role: str, rules: names.IdentifierRules) -> str:
    kind = "table" if role == "table" else "column"
    if draw(st.integers(0, 4)) == 0:
        return draw(st.sampled_from(RESERVED[role]))
    name = _shrink(MARKERS[role] + "".join(draw(st.lists(st.sampled_from(PIECES), max_size=6))), rules, kind)
    if draw(st.integers(0, 3)) == 0:
        name = _pad(name, rules, kind)
    if role == "new":
        return name  # crossfade makes it: one it cannot take is an IdentifierError
    # Release N's tables are made here, with SQLAlchemy: their names must be ones the database and
    # SQLAlchemy take (SQLAlchemy writes a name ending in a line break unquoted; MariaDB refuses
    # trailing whitespace, and SQLAlchemy cannot reflect a MariaDB name with a line break).
    if rules.problem(name, kind) is not None:
        name = name.replace("\n", "").rstrip(" \t")
    return name


@st.composite
def upgrade(draw, dialect: str):
    """One or two tables (a pair shares all but its last character), each with a drawn key, old
    and new column; the two strings the transform maps booleans to."""
    rules = LIMITS[dialect]
    table = draw(identifier("table", rules))
    tables = [table]
    if draw(st.booleans()):
        stem = _shrink(table, rules, "table")
        tables = [stem + "1", stem + "2"]
    columns = [(draw(identifier("key", rules)), draw(identifier("old", rules)), draw(identifier("new", rules)))
               for _ in tables]
    literal = st.lists(st.sampled_from(PIECES), max_size=8).map("".join)
    public, shared = "P" + draw(literal), "S" + draw(literal)  # distinct under any collation
    return [(t, *c) for t, c in zip(tables, columns)], public, shared, draw(st.sampled_from(["contract", "rollback"]))


def _tables(spec):
    metadata = sa.MetaData()
    return [sa.Table(table, metadata, sa.Column(key, sa.Integer, primary_key=True, autoincrement=False),
                     sa.Column(old, sa.Boolean), sa.Column(new, sa.String(80))) for table, key, old, new in spec]


def _rows(engine, t: sa.Table, columns) -> dict:
    with engine.connect() as conn:
        return {row[0]: tuple(row[1:]) for row in conn.execute(sa.select(*[t.c[c] for c in columns]))}


def run_upgrade(engine: sa.Engine, spec, public: str, shared: str, finish: str) -> None:
    empty_database(engine)
    metadata = sa.MetaData()
    for table, key, old, _ in spec:
        sa.Table(table, metadata, sa.Column(key, sa.Integer, primary_key=True, autoincrement=False),
                 sa.Column(old, sa.Boolean, nullable=False))
    metadata.create_all(engine)
    tables = _tables(spec)
    with engine.begin() as conn:
        for t, (_, key, old, _) in zip(tables, spec):
            conn.execute(sa.insert(t).values([{key: i, old: i % 2 == 0} for i in range(1, 6)]))
    change = Change(*[ops.replace_column(table, old, sa.Column(new, sa.String(80), nullable=False),
                                         up=lambda p: sa.case((p, public), else_=shared),
                                         down=lambda v: v == public) for table, _, old, new in spec], id="prop")
    runner = Runner(engine)
    try:
        runner.expand(change)
    except IdentifierError:  # a name the database cannot take: refused before any DDL
        for table, key, old, _ in spec:
            assert columns(engine, table) == [key, old]
        assert crossfade_triggers(engine) == [] and not sa.inspect(engine).has_table("crossfade_state")
        return
    with engine.begin() as conn:  # writes of both releases, through the triggers
        for t, (_, key, old, new) in zip(tables, spec):
            conn.execute(sa.insert(t).values({key: 10, old: True}))
            conn.execute(sa.insert(t).values({key: 11, new: shared}))
            conn.execute(sa.update(t).where(t.c[key] == 1).values({old: True}))
            conn.execute(sa.update(t).where(t.c[key] == 2).values({new: shared}))
    expected = {1: True, 2: False, 3: False, 4: True, 5: False, 10: True, 11: False}
    for t, (_, key, old, new) in zip(tables, spec):
        rows = _rows(engine, t, [key, old, new])
        for k in (1, 2, 10, 11):
            assert rows[k] == (expected[k], public if expected[k] else shared), (t.name, k, rows[k])
    runner.migrate(change)
    for t, (_, key, old, new) in zip(tables, spec):
        assert _rows(engine, t, [key, old, new]) == {k: (v, public if v else shared) for k, v in expected.items()}
    getattr(runner, finish)(change)
    assert runner.problems(change) == []
    for t, (table, key, old, new) in zip(tables, spec):
        kept = new if finish == "contract" else old
        assert columns(engine, table) == [key, kept]
        value = {True: public, False: shared} if finish == "contract" else {True: True, False: False}
        assert _rows(engine, t, [key, kept]) == {k: (value[v],) for k, v in expected.items()}
    assert crossfade_triggers(engine) == []


@pytest.mark.parametrize("dialect_name", ["sqlite", "postgresql", "mysql"])
def test_any_legal_names_and_literals_go_through_every_phase(engine, dialect_name, request):
    soak = request.config.getoption("--soak")

    @settings(max_examples=100 if soak else 10, deadline=None, derandomize=not soak,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
    @given(upgrade(dialect_name))
    def check(drawn):
        spec, public, shared, finish = drawn
        run_upgrade(engine, spec, public, shared, finish)

    check()
