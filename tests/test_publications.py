"""PostgreSQL logical replication: preflight names each publication that carries a synced table
(FOR TABLE, FOR ALL TABLES, a column list) and says what its subscribers will not do; a warning
in expand, check and status, never a refusal. And the reason, shown on the real server: rows
applied the way a subscriber applies them (session_replication_role = replica) skip the triggers.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from crossfade.cli import app
from crossfade.loader import import_file, load_changes
from crossfade.runner import Runner

GLANCE = Path(__file__).resolve().parents[1] / "examples" / "glance"
CHANGES = str(GLANCE / "changes")
release_n = import_file(GLANCE / "release_n.py")
pytestmark = pytest.mark.parametrize("dialect_name", ["postgresql"])


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


def test_no_publication_no_warning(engine):
    seeded(engine)
    [change] = load_changes(CHANGES).changes
    runner = Runner(engine)
    runner.expand(change)
    assert runner.warnings == []
    assert runner.replication_warnings(change) == []


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
