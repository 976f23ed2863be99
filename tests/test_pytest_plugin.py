"""The pytest plugin, as an application's test suite uses it (run in a separate pytest)."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

APPLICATION_TEST = '''
import sqlalchemy as sa
from crossfade import Change, ops
from crossfade.testing import mutants

def users(*columns):
    metadata = sa.MetaData()
    sa.Table("users", metadata, sa.Column("id", sa.Integer, primary_key=True), *columns)
    return metadata

RELEASE_N = users(sa.Column("login", sa.String(40), nullable=False))
RELEASE_N1 = users(sa.Column("username", sa.String(40), nullable=False))
CHANGE = Change(ops.rename_column("users", "login", "username"), id="rename_login")

def test_rename_is_safe(crossfade_verify):
    report = crossfade_verify(CHANGE, RELEASE_N, RELEASE_N1)
    assert {r.dialect for r in report.results} == DIALECTS

def test_broken_trigger_is_caught(crossfade_verify):
    with mutants.without_update_down_sync():
        crossfade_verify(CHANGE, RELEASE_N, RELEASE_N1)
'''


def _write(pytester, dialects: set[str]) -> None:
    pytester.makepyfile(test_app=APPLICATION_TEST.replace("DIALECTS", repr(dialects)))


@pytest.mark.slow
def test_crossfade_verify_passes_a_safe_change_and_fails_a_broken_one(pytester, engine, dialect_name):
    _write(pytester, {dialect_name})
    url = engine.url.render_as_string(hide_password=False)
    result = pytester.runpytest_subprocess("--crossfade-url", url, "--crossfade-writes", "80",
                                           "--crossfade-seed-rows", "20")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*test_broken_trigger_is_caught*", "*sync law*"])


@pytest.mark.slow
@pytest.mark.parametrize("dialect_name", ["sqlite"])
def test_without_urls_it_simulates_on_a_fresh_sqlite_file(pytester, dialect_name):
    _write(pytester, {"sqlite"})
    result = pytester.runpytest_subprocess("-k", "safe", "--crossfade-writes", "80")
    result.assert_outcomes(passed=1)


def test_an_unreachable_database_fails_the_test_and_never_skips(pytester):
    _write(pytester, {"mysql"})
    unreachable = sa.URL.create("mysql+pymysql", "root", host="127.0.0.1", port=1, database="x")
    result = pytester.runpytest_subprocess("-k", "safe", "--crossfade-url",
                                           unreachable.render_as_string(hide_password=False))
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*unreachable*never skips*"])


def test_a_url_whose_driver_is_missing_fails_in_one_line_naming_the_package(pytester):
    _write(pytester, {"mysql"})
    result = pytester.runpytest_subprocess("-k", "safe", "--crossfade-url", "mysql://root@127.0.0.1/x")
    result.assert_outcomes(failed=1)
    expected = ("*crossfade_verify: the URL mysql://root@127.0.0.1/x needs the mysqlclient package, which is "
                "not installed: pip install mysqlclient, or use mysql+pymysql://root@127.0.0.1/x*")
    result.stdout.fnmatch_lines([expected])
    assert "Traceback" not in result.stdout.str()


ALEMBIC_TEST = '''
import sqlalchemy as sa
from crossfade.loader import load_changes

def test_every_revision_is_safe_plain_operations_included(crossfade_verify, crossfade_urls):
    loaded = load_changes(EXAMPLE)
    for change, simulated in zip(loaded.changes, loaded.simulations):
        crossfade_verify(change, simulated.release_n, simulated.release_n1, values=simulated.values,
                         phases=simulated.phases)
    tables = set(sa.inspect(sa.create_engine(crossfade_urls[0])).get_table_names())
    assert "labels" in tables and "projects" not in tables  # a plain op created one, another dropped one
'''


@pytest.mark.slow
@pytest.mark.parametrize("dialect_name", ["sqlite"])
def test_an_alembic_projects_revisions_are_verified_whole(pytester, dialect_name):
    example = Path(__file__).resolve().parents[1] / "examples" / "alembic_service"
    pytester.makepyfile(test_app=ALEMBIC_TEST.replace("EXAMPLE", repr(str(example))))
    result = pytester.runpytest_subprocess("--crossfade-writes", "40", "--crossfade-seed-rows", "10")
    result.assert_outcomes(passed=1)
