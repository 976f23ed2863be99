"""The simulator and verify with several URLs for one database: crossfade's DDL on node 1,
release N's writers on node 2, release N+1's on node 3 of a Galera cluster; writers retry
deadlocks (1213) as oslo.db does, and the report counts them per phase and release, separating
those that fell while crossfade's DDL ran."""

from __future__ import annotations

import json
import time

import pytest
import simulated_changes
import sqlalchemy as sa
from test_cli import CHANGES, run

from crossfade.errors import CrossfadeError
from crossfade.testing import Settings, simulate
from crossfade.testing.deadlocks import APPLY_GRACE, Retried, StepClock, StepWindow, count
from crossfade.testing.nodes import Nodes, NodesError
from crossfade.testing.phases import ChangePhases

SHORT = {"seed_rows": 40, "writes_per_phase": 120}


def _run(database, upgrade, phases=None, **overrides):
    return simulate(upgrade.change, upgrade.release_n, upgrade.release_n1, database,
                    Settings(values=upgrade.values, **(SHORT | overrides)), phases=phases)


def _assert_passed(result):
    assert result.ok, {n: (c.summary, c.details[:3]) for n, c in result.checks.items() if not c.ok}


# --- several URLs for one database --------------------------------------------------------------

def test_each_role_has_its_node():
    three = Nodes("mysql+pymysql://root@n1/app", "mysql+pymysql://root@n2/app", "mysql+pymysql://root@n3/app")
    assert (three.ddl, three.release_n, three.release_n1) == three.urls
    two = Nodes("mysql+pymysql://root@n1/app", "mysql+pymysql://root@n2/app")
    assert (two.ddl, two.release_n, two.release_n1) == (two.urls[0], two.urls[1], two.urls[1])
    one = Nodes("mysql+pymysql://root@n1/app")
    assert one.ddl == one.release_n == one.release_n1


def test_a_comma_separates_urls_but_not_a_query_value():
    nodes = Nodes.parse("mysql+pymysql://root@n1/app?init_command=SET a=1,b=2, mysql+pymysql://root@n2/app")
    assert nodes.urls == ("mysql+pymysql://root@n1/app?init_command=SET a=1,b=2", "mysql+pymysql://root@n2/app")


@pytest.mark.parametrize(("urls", "message"), [
    (("mysql+pymysql://root@n1/app", "postgresql+psycopg://postgres@n2/app"), "one kind of server"),
    (("mysql+pymysql://root@n1/app", "mysql+pymysql://root@n2/other"), "must name the same database"),
    (tuple(f"mysql+pymysql://root@n{i}/app" for i in range(4)), "at most 3"),
    (("sqlite:///a.db", "sqlite:///a.db"), "SQLite has no nodes"),
])
def test_nodes_that_cannot_be_one_database_are_refused(urls, message):
    with pytest.raises(NodesError, match=message):
        Nodes(*urls)
    assert issubclass(NodesError, CrossfadeError)


@pytest.mark.parametrize("dialect_name", ["mysql"])
def test_three_urls_of_one_server_run_the_simulator(engine):
    """Not Galera: three spellings of the single MariaDB server, the code paths of a cluster's."""
    url = engine.url
    nodes = Nodes(*[url.set(host=host).render_as_string(hide_password=False)
                    for host in ("127.0.0.1", "localhost", "127.0.0.1")])
    result = _run(nodes, simulated_changes.replace_column())
    _assert_passed(result)
    assert result.url.count("mysql+pymysql://") == 3 and "localhost" in result.url


@pytest.mark.parametrize("dialect_name", ["mysql"])
def test_verify_takes_a_clusters_nodes_as_one_comma_separated_url(engine):
    url = engine.url.render_as_string(hide_password=False)
    result = run("verify", CHANGES, "--writes", "60", "--seed-rows", "20", "--json",
                 url=f"{url},{engine.url.set(host='localhost').render_as_string(hide_password=False)}")
    assert result.exit_code == 0, result.output
    [report] = json.loads(result.stdout)
    [database] = report["results"]
    assert database["ok"] and "localhost" in database["url"] and "deadlocks" in database


def test_verify_refuses_nodes_of_two_databases_before_anything_runs():
    result = run("verify", CHANGES, url="mysql+pymysql://root@127.0.0.1:1/a,mysql+pymysql://root@127.0.0.1:1/b")
    assert result.exit_code != 0
    assert "must name the same database" in result.output


# --- deadlocks, counted and binned by crossfade's steps -----------------------------------------

def test_a_deadlock_is_binned_by_the_step_it_fell_in():
    clock = StepClock()
    clock.windows = [StepWindow(10.0, 11.0, "expand", "install triggers on images"),
                     StepWindow(20.0, 21.0, "migrate", "batch of images up to 100")]
    retried = [Retried(11.0 + APPLY_GRACE / 2, "expand", "N"),  # its node applied the DDL a moment later
               Retried(20.5, "migrate", "N+1"), Retried(30.0, "roll", "N")]
    assert count(retried, clock) == {
        "expand": {"N": {"retried": 1, "ddl": 1, "backfill": 0, "writers": 0}},
        "migrate": {"N+1": {"retried": 1, "ddl": 0, "backfill": 1, "writers": 0}},
        "roll": {"N": {"retried": 1, "ddl": 0, "backfill": 0, "writers": 1}}}


def test_the_steps_of_a_phase_follow_each_other():
    clock = StepClock()
    clock.begin()
    clock.step_done("expand", "install triggers on images")
    clock.step_done("expand", "record expanded")
    first, second = clock.windows
    assert first.end == second.start and (first.kind, second.kind) == ("ddl", "ddl")


# --- on the Galera cluster ----------------------------------------------------------------------

@pytest.mark.galera
@pytest.mark.parametrize("name", ["replace_column",
                                  pytest.param("split_table", marks=pytest.mark.galera_server_bug)])
def test_writers_on_nodes_2_and_3_pass_every_check(galera_nodes, name):
    result = _run(galera_nodes, simulated_changes.ALL[name]())
    _assert_passed(result)
    assert {"N", "N+1"} <= set(result.latency["roll"])
    for node in galera_nodes.urls:
        assert str(sa.make_url(node).port) in result.url


class _ExpandWithMoreDDL(ChangePhases):
    """Expand preceded by DDL statements on crossfade's node: each aborts, on the other nodes,
    the writers' transactions open on the table (Galera's total order isolation)."""

    def expand(self) -> None:
        with self.runner.engine.connect() as conn:
            for i in range(12):
                conn.exec_driver_sql(f"ALTER TABLE images COMMENT = 'crossfade test {i}'")
                time.sleep(0.02)
            conn.exec_driver_sql("ALTER TABLE images COMMENT = ''")
        super().expand()


@pytest.mark.galera
def test_deadlocks_crossfades_ddl_causes_are_retried_and_counted(galera_nodes):
    upgrade = simulated_changes.replace_column()
    result = _run(galera_nodes, upgrade, phases=lambda runner: _ExpandWithMoreDDL(upgrade.change, runner),
                  workers=3)
    _assert_passed(result)  # retried: no write refused
    expand = result.deadlocks.get("expand", {})
    assert sum(f["ddl"] for f in expand.values()) > 0, result.deadlocks
    assert "while crossfade's DDL ran" in result.checks["no refused writes"].summary
    assert result.to_json()["deadlocks"] == result.deadlocks
