"""A crossfade trigger switched off behind crossfade's back (PostgreSQL's ALTER TABLE ... DISABLE
TRIGGER, DISABLE TRIGGER ALL, ENABLE REPLICA TRIGGER) is drift: `status` and `check` report it with
the fix, `check` exits 1 as for a missing trigger, and rerunning expand re-enables it and
reconciles the rows written meanwhile. Shown by writing a row while the trigger is off.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from crossfade.cli import app
from crossfade.loader import import_file

GLANCE = Path(__file__).resolve().parents[1] / "examples" / "glance"
CHANGES = str(GLANCE / "changes")
release_n = import_file(GLANCE / "release_n.py")


def run(*args: str, url: str):
    return CliRunner().invoke(app, [*args, "--url", url], catch_exceptions=False, env={"COLUMNS": "400"})


def visibility(engine: sa.Engine, name: str) -> str | None:
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT visibility FROM images WHERE name = :n"), {"n": name}).scalar()


def write_release_n(engine: sa.Engine, name: str) -> None:
    with engine.begin() as conn:
        conn.execute(release_n.images.insert(), [{"name": name, "is_public": True}])


@pytest.mark.parametrize("dialect_name", ["postgresql"])
@pytest.mark.parametrize("switch_off, how", [
    ("DISABLE TRIGGER crossfade_images_insert", "is disabled (ALTER TABLE ... DISABLE TRIGGER)"),
    ("DISABLE TRIGGER ALL", "is disabled (ALTER TABLE ... DISABLE TRIGGER)"),
    ("ENABLE REPLICA TRIGGER crossfade_images_insert", "is enabled only for replication"),
])
def test_a_trigger_switched_off_is_drift_that_expand_repairs(engine, switch_off, how):
    url = engine.url.render_as_string(hide_password=False)
    release_n.metadata.create_all(engine)
    write_release_n(engine, "before")
    assert run("expand", CHANGES, url=url).exit_code == 0
    with engine.begin() as conn:
        conn.exec_driver_sql(f"ALTER TABLE images {switch_off}")
    write_release_n(engine, "while off")
    assert visibility(engine, "while off") != "public"  # the trigger did not fire: the row is unsynced

    result = run("check", CHANGES, url=url)
    assert result.exit_code == 1, result.output
    assert f"trigger crossfade_images_insert on images {how}" in result.stdout
    assert "ALTER TABLE public.images ENABLE TRIGGER crossfade_images_insert" in result.stdout
    status = run("status", CHANGES, "--json", url=url)
    [found] = json.loads(status.stdout)
    assert any("crossfade_images_insert on images " + how in p for p in found["problems"])

    repaired = run("expand", CHANGES, url=url)
    assert repaired.exit_code == 0, repaired.output
    assert visibility(engine, "while off") == "public"  # reconciled
    write_release_n(engine, "after")
    assert visibility(engine, "after") == "public"  # and it fires again
    assert run("check", CHANGES, url=url).exit_code == 3  # needs migrate, no problem


@pytest.mark.parametrize("dialect_name", ["postgresql"])
def test_a_trigger_enabled_always_is_no_drift(engine):
    """ENABLE ALWAYS TRIGGER fires for every write, a logical subscriber's included."""
    url = engine.url.render_as_string(hide_password=False)
    release_n.metadata.create_all(engine)
    assert run("expand", CHANGES, url=url).exit_code == 0
    with engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE images ENABLE ALWAYS TRIGGER crossfade_images_insert")
    write_release_n(engine, "always")
    assert visibility(engine, "always") == "public"
    assert run("check", CHANGES, url=url).exit_code == 3
