"""Trigger bodies never depend on the writing session's settings (issue 11, findings 1 and 2).

crossfade runs from an engine whose sessions carry settings of their own (set in a connect event
after SQLAlchemy detected the server's, as oslo.db does, or at connect so SQLAlchemy sees them),
and writers come from sessions with every other setting that changes how SQL text reads:
PostgreSQL `standard_conforming_strings`, `TimeZone`, `DateStyle`, `IntervalStyle`,
`extra_float_digits`; MariaDB `NO_BACKSLASH_ESCAPES`, `ANSI_QUOTES`, non-strict, `TRADITIONAL`.
The transforms' literals are full of backslashes, quotes, backticks, percent signs, a dollar
quote and non-ASCII. Every row is read back and compared with the transform evaluated in Python.
"""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa
from conftest import make_engine

from crossfade import Change, ops
from crossfade.dialects import TriggerDialect, for_dialect
from crossfade.errors import TransformError
from crossfade.roundtrip import check_group
from crossfade.runner import Runner
from crossfade.schema import Schema
from crossfade.sync import SyncGroup

# The transform: is_public (boolean) <-> visibility (string), with literals no session reads alike.
PUBLIC = "a\\b \\\\ \\' '' \" ` %s %% \\n $crossfade$ üñî €"
SHARED = "sh\\ared' \"x\" `y` 100%"
COMMUNITY = "c\\\\ommunity \\0 ' \" ` % é"  # a finer value only release N+1 writes


def up(is_public: bool | None) -> str | None:
    return None if is_public is None else PUBLIC if is_public else SHARED


def down(visibility: str | None) -> bool | None:
    return None if visibility is None else visibility == PUBLIC


def visibility_change(public: str = PUBLIC) -> Change:
    return Change(
        ops.replace_column(
            "images", "is_public", sa.Column("visibility", sa.String(80), nullable=False, server_default="shared"),
            up=lambda is_public: sa.case((is_public, public), else_=SHARED),
            down=lambda visibility: visibility == public,
        ),
        id="images-visibility",
    )


images_n = sa.Table("images", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("is_public", sa.Boolean, nullable=False))
images_n1 = sa.Table("images", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True),
                     sa.Column("visibility", sa.String(80)))
images_both = sa.Table("images", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True),
                       sa.Column("is_public", sa.Boolean), sa.Column("visibility", sa.String(80)))

# Session settings, per dialect: name -> statements a session runs when it connects.
PG_SETTINGS = {
    "default": [],
    "scs-off": ["SET standard_conforming_strings = off"],
    "kolkata-dmy": ["SET TimeZone = 'Asia/Kolkata'", "SET DateStyle = 'SQL, DMY'",
                    "SET IntervalStyle = 'sql_standard'", "SET extra_float_digits = 0"],
    "new-york-german-scs-off": ["SET TimeZone = 'America/New_York'", "SET DateStyle = 'German'",
                                "SET standard_conforming_strings = off"],
}
MYSQL_SETTINGS = {
    "default": [],
    "no-backslash-escapes": ["SET SESSION sql_mode = CONCAT(@@sql_mode, ',NO_BACKSLASH_ESCAPES')"],
    "ansi-quotes": ["SET SESSION sql_mode = 'ANSI_QUOTES'"],
    "non-strict": ["SET SESSION sql_mode = ''"],
    "traditional": ["SET SESSION sql_mode = 'TRADITIONAL'"],
    "ansi-no-backslash-escapes": ["SET SESSION sql_mode = 'ANSI,NO_BACKSLASH_ESCAPES'"],
}
SETTINGS = {"postgresql": PG_SETTINGS, "mysql": MYSQL_SETTINGS, "sqlite": {"default": []}}

# crossfade's own engine: a setting applied after SQLAlchemy's first connect ("event"), or one
# SQLAlchemy sees at its first connect ("connect-args"), so it renders for it.
CROSSFADE_SESSIONS = [
    ("sqlite", "default", "event"),
    ("postgresql", "default", "event"),
    ("postgresql", "scs-off", "event"),
    ("postgresql", "scs-off", "connect-args"),
    ("postgresql", "kolkata-dmy", "event"),
    ("mysql", "default", "event"),
    ("mysql", "no-backslash-escapes", "event"),
    ("mysql", "ansi-no-backslash-escapes", "connect-args"),
    ("mysql", "non-strict", "event"),
    ("mysql", "traditional", "event"),
]


def with_settings(engine: sa.Engine, statements: list[str]) -> sa.Engine:
    """`engine`, each of whose new connections runs `statements` (after SQLAlchemy's first
    connect has detected the server's settings, as a connect event of the application's does)."""
    if statements:
        @sa.event.listens_for(engine, "connect")
        def _settings(dbapi_connection, _record):
            cursor = dbapi_connection.cursor()
            for statement in statements:
                cursor.execute(statement)
            cursor.close()
            dbapi_connection.commit()  # PostgreSQL: a SET in a transaction rolled back is undone
    return engine


def settings_at_connect(url: sa.URL, dialect: str, statements: list[str]) -> sa.Engine:
    """An engine whose sessions have `statements`' settings before SQLAlchemy first looks."""
    if dialect == "postgresql":
        options = " ".join("-c " + s.removeprefix("SET ").replace(" = ", "=").replace("'", "").replace(" ", "\\ ")
                           for s in statements)
        return sa.create_engine(url, connect_args={"options": options})
    return sa.create_engine(url, connect_args={"init_command": ";".join(statements)})


def writer(engine: sa.Engine, setting: str) -> sa.Engine:
    """An application's engine on the same database, its sessions with `setting`."""
    return with_settings(sa.create_engine(engine.url), SETTINGS[engine.dialect.name][setting])


@pytest.fixture(params=CROSSFADE_SESSIONS, ids=["-".join(p) for p in CROSSFADE_SESSIONS])
def crossfade_engine(request, tmp_path):
    """crossfade's engine (an empty database), its sessions with one of the settings."""
    dialect, setting, how = request.param
    plain = make_engine(dialect, tmp_path)
    statements = SETTINGS[dialect][setting]
    engine = settings_at_connect(plain.url, dialect, statements) if how == "connect-args" else \
        with_settings(plain, statements)
    yield engine
    engine.dispose()
    plain.dispose()


def read_all(engine: sa.Engine) -> dict[int, tuple]:
    with engine.connect() as conn:
        return {row.id: (row.is_public, row.visibility) for row in conn.execute(sa.select(images_both))}


def write_as_both_releases(engine: sa.Engine, base: int) -> dict[int, tuple]:
    """Inserts and updates of release N and release N+1 through `engine`; the rows expected."""
    with engine.begin() as conn:
        conn.execute(images_n.insert(), [{"id": base + 1, "is_public": True}, {"id": base + 2, "is_public": False}])
        conn.execute(images_n1.insert(), [{"id": base + 3, "visibility": PUBLIC},
                                          {"id": base + 4, "visibility": COMMUNITY},
                                          {"id": base + 5, "visibility": SHARED}])
    with engine.begin() as conn:
        conn.execute(images_n.update().where(images_n.c.id == base + 1).values(is_public=False))
        conn.execute(images_n1.update().where(images_n1.c.id == base + 2).values(visibility=PUBLIC))
        conn.execute(images_n1.update().where(images_n1.c.id == base + 3).values(visibility=COMMUNITY))
        conn.execute(images_n.update().where(images_n.c.id == base + 5).values(is_public=True))
    return {base + 1: (False, up(False)), base + 2: (True, PUBLIC), base + 3: (down(COMMUNITY), COMMUNITY),
            base + 4: (False, COMMUNITY), base + 5: (True, up(True))}


def test_literals_read_alike_in_every_session_crossfade_and_the_writers_run(crossfade_engine):
    dialect = crossfade_engine.dialect.name
    with crossfade_engine.begin() as conn:
        images_n.metadata.create_all(conn)
        conn.execute(images_n.insert(), [{"id": 1, "is_public": True}, {"id": 2, "is_public": False},
                                         {"id": 3, "is_public": True}])
    runner = Runner(crossfade_engine)
    runner.expand(visibility_change())
    expected = {1: (True, up(True)), 2: (False, up(False))}
    for n, setting in enumerate(SETTINGS[dialect]):
        engine = writer(crossfade_engine, setting)
        try:
            expected.update(write_as_both_releases(engine, 10 * (n + 1)))
            if n == 0:  # a row the backfill has not reached yet, written by release N+1
                with engine.begin() as conn:
                    conn.execute(images_n1.update().where(images_n1.c.id == 3).values(visibility=COMMUNITY))
                expected[3] = (False, COMMUNITY)
        finally:
            engine.dispose()
    runner.migrate(visibility_change())
    assert read_all(crossfade_engine) == expected


# --- the two findings, exactly as reported ----------------------------------------------------

def expand_and_backfill(engine: sa.Engine, public: str) -> Runner:
    with engine.begin() as conn:
        images_n.metadata.create_all(conn)
        conn.execute(images_n.insert(), [{"id": 1, "is_public": True}])
    runner = Runner(engine)
    runner.expand(visibility_change(public))
    with engine.begin() as conn:
        conn.execute(images_n.insert().values(id=2, is_public=True))
    runner.migrate(visibility_change(public))
    return runner


def test_mariadb_sql_mode_set_after_connect_keeps_one_backslash_and_the_backfilled_true(tmp_path):
    """Finding 1: oslo.db sets sql_mode in a connect event, after SQLAlchemy detected escaping."""
    engine = with_settings(make_engine("mysql", tmp_path), MYSQL_SETTINGS["no-backslash-escapes"])
    expand_and_backfill(engine, "a\\b")
    assert read_all(engine) == {1: (True, "a\\b"), 2: (True, "a\\b")}


def function_settings(engine: sa.Engine, name: str) -> list[str] | None:
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT proconfig FROM pg_proc WHERE proname = :name"), {"name": name}).scalar_one()


@pytest.mark.parametrize("crossfade_scs, writer_scs", [("on", "off"), ("off", "on")])
def test_postgresql_standard_conforming_strings_of_either_session_keep_one_backslash(tmp_path, crossfade_scs,
                                                                                     writer_scs):
    """Finding 2: a function body's 'a\\b' was read by the writer's setting."""
    engine = with_settings(make_engine("postgresql", tmp_path), [f"SET standard_conforming_strings = {crossfade_scs}"])
    expand_and_backfill(engine, "a\\b")
    app = with_settings(sa.create_engine(engine.url), [f"SET standard_conforming_strings = {writer_scs}"])
    with app.begin() as conn:
        conn.execute(images_n.insert().values(id=3, is_public=True))
        conn.execute(images_n1.insert().values(id=4, visibility="a\\b"))
    app.dispose()
    assert read_all(engine) == {1: (True, "a\\b"), 2: (True, "a\\b"), 3: (True, "a\\b"), 4: (True, "a\\b")}
    assert function_settings(engine, "crossfade_images_sync") is None  # E'' needs no setting pinned


# --- the round-trip check reads the literals as the triggers hold them -----------------------

def _render_as_sqlalchemy_detected(dialect: TriggerDialect) -> TriggerDialect:
    """crossfade's dialect as it was: literals rendered by what SQLAlchemy saw at first connect."""
    class AsDetected(type(dialect)):
        def _fix_rendering(self, rendering):
            rendering._backslash_escapes = self.engine_dialect._backslash_escapes

    return AsDetected(dialect.engine_dialect)


@pytest.mark.parametrize("dialect_name, session", [("postgresql", ["SET standard_conforming_strings = off"]),
                                                   ("mysql", MYSQL_SETTINGS["no-backslash-escapes"])])
def test_a_literal_the_database_reads_otherwise_is_refused_before_ddl(tmp_path, dialect_name, session):
    """The round-trip law holds for a wrong literal used on both sides, so crossfade reads each
    literal back, rendered and run as the trigger bodies are."""
    engine = with_settings(make_engine(dialect_name, tmp_path), session)
    images_n.metadata.create_all(engine)
    group = SyncGroup("images", ("is_public",), ("visibility",),
                      lambda is_public: sa.case((is_public, "a\\b"), else_="shared"),
                      lambda visibility: visibility == "a\\b")
    with engine.connect() as conn:
        schema = Schema.reflect(conn, {"images"})
        schema.add_column("images", sa.Column("visibility", sa.String(80)))
        fixed = for_dialect(engine.dialect)
        with fixed.pinned_session(conn):
            assert check_group(conn, fixed, schema, group) == 4  # two samples, the type's two edges
        naive = _render_as_sqlalchemy_detected(fixed)  # in the session as it is, as before
        with pytest.raises(TransformError, match=r"the literal 'a\\\\b' reads back as 'a(\\x08|\\\\\\\\b)'"):
            check_group(conn, naive, schema, group)
    engine.dispose()


# --- values whose conversion reads the session: dates, timestamps, floats as text ------------

WHEN = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.timezone.utc)
CONVERSIONS = {
    # name: (old type, new type, up, down, [(release N's value, release N+1's reading of it)])
    "date-text": (sa.Date(), sa.String(30), lambda a: sa.cast(a, sa.String(30)), lambda b: sa.cast(b, sa.Date()),
                  [(dt.date(2026, 11, 25), "2026-11-25"), (dt.date(2001, 2, 3), "2001-02-03")]),
    "timestamptz-timestamp": (sa.DateTime(timezone=True), sa.DateTime(), lambda a: sa.cast(a, sa.DateTime()),
                              lambda b: sa.cast(b, sa.DateTime(timezone=True)),
                              [(WHEN, WHEN.replace(tzinfo=None)),
                               (WHEN + dt.timedelta(days=200), (WHEN + dt.timedelta(days=200)).replace(tzinfo=None))]),
    "interval-text": (sa.Interval(), sa.String(40), lambda a: sa.cast(a, sa.String(40)),
                      lambda b: sa.cast(b, sa.Interval()),
                      [(dt.timedelta(days=1, hours=2, minutes=3, seconds=4), "1 day 02:03:04"),
                       (dt.timedelta(minutes=90), "01:30:00")]),
    "float-text": (sa.Float(), sa.String(40), lambda a: sa.cast(a, sa.String(40)), lambda b: sa.cast(b, sa.Float()),
                   [(0.1 + 0.2, "0.30000000000000004"), (1 / 3, "0.3333333333333333")]),
}
PG_PINS = {"date-text": ["DateStyle=ISO, MDY"], "timestamptz-timestamp": ["TimeZone=UTC"],
           "interval-text": ["IntervalStyle=postgres"], "float-text": ["extra_float_digits=1"]}
CONVERSION_RUNS = [("postgresql", "date-text", "default"), ("postgresql", "date-text", "kolkata-dmy"),
                   ("postgresql", "timestamptz-timestamp", "new-york-german-scs-off"),
                   ("postgresql", "interval-text", "default"), ("postgresql", "float-text", "kolkata-dmy"), ("mysql", "date-text", "non-strict")]


@pytest.mark.parametrize("dialect_name, conversion, crossfade_setting", CONVERSION_RUNS,
                         ids=["-".join(r) for r in CONVERSION_RUNS])
def test_conversions_that_read_session_settings_give_every_writer_the_same_values(tmp_path, dialect_name, conversion,
                                                                                  crossfade_setting):
    old_type, new_type, up_sql, down_sql, values = CONVERSIONS[conversion]
    engine = with_settings(make_engine(dialect_name, tmp_path), SETTINGS[dialect_name][crossfade_setting])
    items_n = sa.Table("items", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True),
                       sa.Column("a", old_type))
    items_n1 = sa.Table("items", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True),
                        sa.Column("b", new_type))
    items_both = sa.Table("items", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True),
                          sa.Column("a", old_type), sa.Column("b", new_type))
    change = Change(ops.replace_column("items", "a", sa.Column("b", new_type), up=up_sql, down=down_sql), id="items-b")
    items_n.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(items_n.insert(), [{"id": i, "a": a} for i, (a, _) in enumerate(values, 1)])
    expected = {i: (a, b) for i, (a, b) in enumerate(values, 1)}
    runner = Runner(engine)
    runner.expand(change)
    if dialect_name == "postgresql":  # pinned: only what the types read (each SET costs every call)
        assert function_settings(engine, "crossfade_items_sync") == PG_PINS[conversion]
    for n, setting in enumerate(SETTINGS[dialect_name]):
        app = writer(engine, setting)
        base = 10 * (n + 1)
        with app.begin() as conn:
            for i, (a, b) in enumerate(values):
                conn.execute(items_n.insert().values(id=base + 2 * i, a=a))
                conn.execute(items_n1.insert().values(id=base + 2 * i + 1, b=b))
                expected[base + 2 * i] = expected[base + 2 * i + 1] = (a, b)
        app.dispose()
    runner.migrate(change)
    engine.dispose()
    reader = sa.create_engine(engine.url)  # psycopg reads timestamptz in ISO style only
    with reader.connect() as conn:
        found = {row.id: (row.a, row.b) for row in conn.execute(sa.select(items_both))}
    reader.dispose()
    if isinstance(old_type, sa.DateTime) and old_type.timezone:
        found = {k: (a.astimezone(dt.timezone.utc), b) for k, (a, b) in found.items()}
    assert found == expected


CONTRACT_SESSIONS = [("sqlite", "default"), ("postgresql", "scs-off"), ("mysql", "no-backslash-escapes")]


@pytest.mark.parametrize("dialect_name, setting", CONTRACT_SESSIONS, ids=["-".join(s) for s in CONTRACT_SESSIONS])
def test_a_server_default_full_of_escapes_is_what_release_n1_gets_after_contract(tmp_path, dialect_name, setting):
    engine = with_settings(make_engine(dialect_name, tmp_path), SETTINGS[dialect_name][setting])
    change = Change(ops.replace_column(
        "images", "is_public", sa.Column("visibility", sa.String(80), nullable=False, server_default=COMMUNITY),
        up=lambda is_public: sa.case((is_public, PUBLIC), else_=SHARED),
        down=lambda visibility: visibility == PUBLIC), id="images-visibility")
    images_n.metadata.create_all(engine)
    runner = Runner(engine)
    for phase in (runner.expand, runner.migrate, runner.contract):
        phase(change)
    app = writer(engine, setting)
    with app.begin() as conn:
        conn.execute(images_n1.insert().values(id=1))
    app.dispose()
    with engine.connect() as conn:
        assert conn.execute(sa.select(images_n1.c.visibility)).scalar_one() == COMMUNITY
    engine.dispose()


def test_a_mariadb_trigger_recreated_under_another_sql_mode_is_drift_and_expand_repairs_it(tmp_path):
    """Same text, other mode: its literals read otherwise, so status must not call it unchanged."""
    engine = make_engine("mysql", tmp_path)
    images_n.metadata.create_all(engine)
    runner = Runner(engine)
    runner.expand(visibility_change("a\\b"))
    with engine.connect() as conn:
        create = conn.exec_driver_sql("SHOW CREATE TRIGGER crossfade_images_insert").one()[2]
        conn.exec_driver_sql("SET SESSION sql_mode = CONCAT(@@sql_mode, ',NO_BACKSLASH_ESCAPES')")
        conn.exec_driver_sql("DROP TRIGGER crossfade_images_insert")
        conn.connection.driver_connection.cursor().execute(create)  # as is: no % placeholders
        conn.exec_driver_sql("SET SESSION sql_mode = DEFAULT")
    assert runner.problems(visibility_change("a\\b")) == [
        "trigger crossfade_images_insert on images was changed outside crossfade"]
    runner.expand(visibility_change("a\\b"))  # reinstalls it under crossfade's mode
    assert runner.problems(visibility_change("a\\b")) == []
    insert(engine, images_n, id=1, is_public=True)
    assert read_all(engine) == {1: (True, "a\\b")}
    engine.dispose()


def insert(engine: sa.Engine, table: sa.Table, **values) -> None:
    with engine.begin() as conn:
        conn.execute(table.insert().values(**values))
