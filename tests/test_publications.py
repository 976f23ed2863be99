"""PostgreSQL logical replication: preflight names each publication that carries a synced table
(FOR TABLE, FOR ALL TABLES, a column list) and says what its subscribers will not do; a warning
in expand, check and status, never a refusal. And the reason, shown on the real server: rows
applied the way a subscriber applies them (session_replication_role = replica) skip the triggers.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from crossfade.cli import app
from crossfade.loader import import_file, load_changes
from crossfade.runner import Runner
from crossfade.throttle import ThrottleOptions

GLANCE = Path(__file__).resolve().parents[1] / "examples" / "glance"
CHANGES = str(GLANCE / "changes")
release_n = import_file(GLANCE / "release_n.py")
POSTGRESQL = pytest.mark.parametrize("dialect_name", ["postgresql"])


@pytest.fixture
def publications(engine):
    """CREATE PUBLICATION statements run on the test's database, dropped afterwards (a publication
    is the database's, not the schema's: emptying the schema would leave it)."""
    made: list[str] = []

    def publish(name: str, what: str) -> None:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"CREATE PUBLICATION {name} {what}")
        made.append(name)

    yield publish
    with engine.begin() as conn:
        for name in made:
            conn.exec_driver_sql(f"DROP PUBLICATION IF EXISTS {name}")


def run(*args: str, url: str):
    return CliRunner().invoke(app, [*args, "--url", url], catch_exceptions=False, env={"COLUMNS": "2000"})


def seeded(engine: sa.Engine) -> str:
    release_n.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(release_n.images.insert(), [{"name": "a", "is_public": True}])
    return engine.url.render_as_string(hide_password=False)


@POSTGRESQL
def test_expand_check_and_status_name_the_publications_carrying_a_synced_table(engine, publications):
    url = seeded(engine)
    publications("images_pub", "FOR TABLE images")
    publications("everything", "FOR ALL TABLES")

    expanded = run("expand", CHANGES, url=url)
    assert expanded.exit_code == 0, expanded.output  # a warning, not a refusal
    warning = "table 'images' is published for logical replication by everything (FOR ALL TABLES), images_pub"
    assert warning in expanded.output
    assert "session_replication_role = replica" in expanded.output
    assert "add release N+1's columns on every subscriber before expand" in expanded.output

    checked = run("check", CHANGES, url=url)
    assert checked.exit_code == 3  # needs migrate: the warning is no problem
    assert "warning: " + warning in checked.stdout
    [status] = json.loads(run("status", CHANGES, "--json", url=url).stdout)
    assert status["problems"] == []
    assert [w[:len(warning)] for w in status["warnings"]] == [warning]  # only when there is one


@POSTGRESQL
def test_a_column_list_is_named_with_what_stays_unsynced(engine, publications):
    url = seeded(engine)
    publications("some_columns", "FOR TABLE images (id, name)")
    [change] = load_changes(CHANGES).changes
    runner = Runner(engine)
    runner.expand(change)
    [warning] = runner.warnings
    assert "some_columns sends only (id, name): the new columns are not sent and stay unsynced" in warning
    assert "ENABLE ALWAYS TRIGGER" in warning
    assert run("check", CHANGES, url=url).exit_code == 3


@POSTGRESQL
def test_no_publication_no_warning(engine):
    seeded(engine)
    [change] = load_changes(CHANGES).changes
    runner = Runner(engine)
    runner.expand(change)
    assert runner.warnings == []
    assert runner.replication_warnings(change) == []


@POSTGRESQL
def test_rows_applied_as_a_subscriber_applies_them_skip_the_sync_triggers(engine):
    """Why the warning says so: under session_replication_role = replica (a subscriber's apply
    worker) crossfade's triggers do not fire, unless enabled ALWAYS."""
    seeded(engine)
    [change] = load_changes(CHANGES).changes
    Runner(engine).expand(change)

    def applied(name: str) -> str | None:
        with engine.begin() as conn:
            conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
            conn.execute(release_n.images.insert(), [{"name": name, "is_public": True}])
        with engine.connect() as conn:
            return conn.execute(sa.text("SELECT visibility FROM images WHERE name = :n"), {"n": name}).scalar()

    assert applied("replicated") != "public"  # unsynced: the trigger did not fire
    with engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE images ENABLE ALWAYS TRIGGER crossfade_images_insert")
    assert applied("replicated, triggers always") == "public"


# --- a real subscriber (the PostgreSQL pair of scripts/replicas, wal_level = logical) ---------

@pytest.fixture
def subscriber(pg_pair):
    """A database on the pair's primary subscribed to the test's database through the slot made
    beforehand (one cluster); a subscription an interrupted run left is dropped first."""
    from crossfade.testing.databases import drop_database, ensure_database

    publisher = pg_pair.primary
    url = publisher.url.set(database=publisher.url.database + "_sub")
    slot = f"{url.database}_slot"
    for database, name in _leftovers(publisher):  # an interrupted run's: they hold workers and WAL
        _unsubscribe(publisher, url.set(database=database), name)
        drop_database(url.set(database=database))
    ensure_database(url)
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with publisher.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql(f"SELECT pg_create_logical_replication_slot('{slot}', 'pgoutput')")

    def subscribe(publication: str) -> None:
        with engine.connect() as conn:
            conn.exec_driver_sql(
                f"CREATE SUBSCRIPTION {slot} CONNECTION 'host=127.0.0.1 port=5434 user=postgres "
                f"dbname={publisher.url.database}' PUBLICATION {publication} "
                f"WITH (create_slot = false, slot_name = '{slot}')")

    try:
        yield engine, subscribe
    finally:
        engine.dispose()
        _unsubscribe(publisher, url, slot)
        drop_database(url)


def _leftovers(publisher: sa.Engine) -> list[tuple[str, str]]:
    with publisher.connect() as conn:
        return conn.execute(sa.text(
            "SELECT d.datname, s.subname FROM pg_subscription s JOIN pg_database d ON d.oid = s.subdbid "
            r"WHERE s.subname LIKE 'crossfade\_test\_%\_sub\_slot'")).all()


def _unsubscribe(publisher: sa.Engine, url: sa.URL, slot: str) -> None:
    """Drop the subscription and its slot, and the publisher's publication, where they exist."""
    subscriber = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with subscriber.connect() as conn:
        if conn.exec_driver_sql(f"SELECT 1 FROM pg_subscription WHERE subname = '{slot}'").first():
            conn.exec_driver_sql(f"ALTER SUBSCRIPTION {slot} DISABLE")
            conn.exec_driver_sql(f"ALTER SUBSCRIPTION {slot} SET (slot_name = NONE)")
            conn.exec_driver_sql(f"DROP SUBSCRIPTION {slot}")
    subscriber.dispose()
    with publisher.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for _ in range(100):  # the walsender ends a moment after the subscription is disabled
            if not conn.exec_driver_sql(f"SELECT 1 FROM pg_replication_slots WHERE slot_name = '{slot}' "
                                        "AND active").first():
                break
            time.sleep(0.05)
        # the subscription's slot, and those its table copies left (pg_<oid>_sync_<oid>_<system id>)
        conn.execute(sa.text("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                             "WHERE slot_name = :slot OR (slot_name LIKE :sync AND NOT active)"),
                     {"slot": slot, "sync": r"pg\_%\_sync\_%"})
        conn.exec_driver_sql("DROP PUBLICATION IF EXISTS images_pub")


def eventually(read, expected, seconds: float = 60.0):
    # A subscriber whose apply failed retries after wal_retrieve_retry_interval (5 s), later on a loaded machine.
    deadline = time.monotonic() + seconds
    while (found := read()) != expected and time.monotonic() < deadline:
        time.sleep(0.05)
    return found


@pytest.mark.replicas
def test_a_subscriber_stops_without_the_new_column_and_then_gets_rows_synced_by_the_publisher(pg_pair, subscriber):
    """What the warning says, on a real subscription: expand's new column must be on the subscriber
    first (without it the subscriber stops applying), and rows arrive with both columns synced by
    the publisher's triggers, none of the subscriber's firing."""
    publisher = pg_pair.primary
    sub, subscribe = subscriber
    for engine in (publisher, sub):
        release_n.metadata.create_all(engine)
    with publisher.begin() as conn:
        conn.execute(release_n.images.insert(), [{"id": 1, "name": "before", "is_public": True}])
        conn.exec_driver_sql("CREATE PUBLICATION images_pub FOR TABLE images")
    subscribe("images_pub")

    def on_subscriber(sql: str):
        with sub.connect() as conn:
            return conn.exec_driver_sql(sql).all()

    assert eventually(lambda: on_subscriber("SELECT name FROM images"), [("before",)]) == [("before",)]

    [change] = load_changes(CHANGES).changes
    runner = Runner(publisher, throttle=ThrottleOptions(max_lag=None))
    runner.expand(change)
    assert any("images_pub" in w for w in runner.warnings)
    with publisher.begin() as conn:
        conn.execute(release_n.images.insert(), [{"id": 2, "name": "after expand", "is_public": True}])
    time.sleep(1.0)
    assert on_subscriber("SELECT name FROM images ORDER BY id") == [("before",)]  # stopped applying

    with sub.connect() as conn:  # release N+1's column, as expand adds it, on the subscriber
        conn.exec_driver_sql("ALTER TABLE images ADD COLUMN visibility VARCHAR(16)")
    expected = [(1, "before", None), (2, "after expand", "public")]
    found = eventually(lambda: on_subscriber("SELECT id, name, visibility FROM images ORDER BY id"), expected)
    assert found == expected  # row 2 synced by the publisher's trigger; row 1 waits for migrate
    runner.migrate(change)
    expected = [(1, "before", "public"), (2, "after expand", "public")]
    assert eventually(lambda: on_subscriber("SELECT id, name, visibility FROM images ORDER BY id"), expected) == expected
