"""PostgreSQL 16, 17 and 18 (wheels, scripts/pg-versions) pass what 15 passes: the trigger decision
table (tests/test_triggers.py takes these versions as variants) and one simulator run per op family;
and the servers' script leaves running ones alone, and an unreachable version fails a CI run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import simulated_changes
import sqlalchemy as sa
from conftest import _unreachable as unreachable
from pg_versions import MAJORS, PG_VERSIONS, default_url, major_of, server_major

from crossfade.testing import Settings, simulate

# One change per op family: single-table sync, a table split (link), a column moved between
# tables, a table renamed; each runs every phase with both releases writing.
FAMILIES = ("replace_column", "rename_column", "add_column_computed", "split_table", "move_column", "rename_table")


@pytest.mark.parametrize("dialect_name", PG_VERSIONS)
def test_each_version_url_reaches_a_server_of_that_major_version(engine, dialect_name):
    """A URL pointing at the wrong server would pass every other test here without testing anything."""
    assert server_major(engine) == major_of(dialect_name)


@pytest.mark.parametrize("dialect_name", PG_VERSIONS)
@pytest.mark.parametrize("family", FAMILIES)
def test_each_op_family_passes_every_simulator_check(engine, family):
    upgrade = simulated_changes.ALL[family]()
    settings = Settings(seed_rows=40, writes_per_phase=120, values=upgrade.values)
    result = simulate(upgrade.change, upgrade.release_n, upgrade.release_n1,
                      engine.url.render_as_string(hide_password=False), settings)
    assert result.ok, {name: check.summary for name, check in result.checks.items() if not check.ok}
    assert {"N", "N+1"} <= set(result.latency["roll"])  # both releases wrote at once


@pytest.mark.pg_versions
def test_an_unreachable_version_fails_the_run_under_ci():
    env = {**os.environ, "CI": "true", "CROSSFADE_TEST_PG16_URL": "postgresql+psycopg://postgres@127.0.0.1:1/crossfade_test"}
    tests = Path(__file__).parent
    run = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:xdist", "-p", "no:cacheprovider", "-rf",
                          str(tests / "test_pg_versions.py"), "-k", "reaches and postgresql16"],
                         check=False, capture_output=True, text=True, env=env, cwd=tests.parent)
    assert run.returncode == 1 and "1 failed" in run.stdout, run.stdout[-2000:]
    assert "postgresql16 is not reachable" in run.stdout and "CI never skips a database" in run.stdout


@pytest.mark.pg_versions
def test_starting_the_servers_again_leaves_the_running_ones_alone():
    if any(os.environ.get(f"CROSSFADE_TEST_PG{major}_URL") for major in MAJORS):
        pytest.skip("the servers under test are not scripts/pg-versions' (CROSSFADE_TEST_PG<N>_URL is set)")
    started = {major: postmaster_start_time(major) for major in MAJORS}
    script = Path(__file__).parent.parent / "scripts" / "pg-versions"
    run = subprocess.run([str(script), "start"], check=False, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert all(f"PostgreSQL {major} already up" in run.stdout for major in MAJORS), run.stdout
    assert {major: postmaster_start_time(major) for major in MAJORS} == started


def postmaster_start_time(major: int):
    engine = sa.create_engine(sa.make_url(default_url(major)).set(database="postgres"))
    try:
        with engine.connect() as conn:
            return conn.exec_driver_sql("SELECT pg_postmaster_start_time()").scalar()
    except sa.exc.OperationalError as exc:
        unreachable(f"postgresql{major}", exc)  # fails under CI=true, skips otherwise
    finally:
        engine.dispose()
