"""The 3-node MariaDB Galera cluster (scripts/galera-cluster) for the `galera` tests.

URLs come from CROSSFADE_TEST_GALERA_URLS, comma-separated, one per node (default: the three
local nodes at 127.0.0.1:3311-3313). The run's database is the first URL's name with the
process id appended, as conftest's `per_run` does; it is created once through node 1 (DDL
replicates to every node), emptied before each test and dropped when the run ends. With CI=true
an unreachable cluster, or one whose nodes are not all synced, fails the test, never skips it.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass

import pytest
import sqlalchemy as sa
from conftest import per_run

from crossfade.testing.databases import drop_database, empty_database, ensure_database, server_url
from crossfade.testing.nodes import Nodes

DEFAULT_URLS = ",".join(f"mysql+pymysql://root@127.0.0.1:{port}/crossfade_test" for port in (3311, 3312, 3313))
GALERA_URLS = [per_run(url.strip()) for url in os.environ.get("CROSSFADE_TEST_GALERA_URLS", DEFAULT_URLS).split(",")]

_created = False
_unready: str | None = None


@dataclass
class Cluster:
    """One engine per node on the run's database. crossfade runs on `nodes[0]` (node 1), with the
    server's default settings; the other nodes' statements are causal (wsrep_sync_wait=15): each
    waits until its node has applied everything the cluster committed before it, so a row written
    on one node reads back on another, and a write does not race the node's apply of a DDL that
    crossfade finished on node 1 (that race is an abort, error 1213, which galera-sim's simulator
    counts; these tests check the sync law, not it)."""

    urls: list[str]
    nodes: list[sa.Engine]

    def rotating(self, indexes: tuple[int, ...]) -> sa.Engine:
        """An engine whose every new connection goes to the next of these nodes in turn: a test's
        write and its read-back land on different nodes. Statements are causal."""
        nodes = itertools.cycle([sa.make_url(self.urls[i]) for i in indexes])
        engine = sa.create_engine(self.urls[indexes[0]], poolclass=sa.pool.NullPool)

        @sa.event.listens_for(engine, "do_connect")
        def _next_node(dialect, conn_rec, cargs, cparams):
            node = next(nodes)
            cparams.update(host=node.host, port=node.port)

        _causal(engine)
        return engine


def _causal(engine: sa.Engine) -> None:
    @sa.event.listens_for(engine, "connect")
    def _sync_wait(dbapi_connection, _record):
        with dbapi_connection.cursor() as cursor:
            cursor.execute("SET SESSION wsrep_sync_wait = 15")  # reads, updates, deletes, inserts


def _unreachable(message: str):
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message + " (CI never skips the cluster; scripts/galera-cluster start)", pytrace=False)
    pytest.skip(message)


def _cluster_problem() -> str | None:
    """Why the URLs are not a synced Galera cluster of that many nodes (None: they are)."""
    for url in GALERA_URLS:
        engine = sa.create_engine(server_url(url))
        try:
            with engine.connect() as conn:
                size, ready = conn.execute(sa.text(
                    "SELECT (SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS "
                    "        WHERE VARIABLE_NAME = 'WSREP_CLUSTER_SIZE'), "
                    "       (SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS "
                    "        WHERE VARIABLE_NAME = 'WSREP_READY')")).one()
        except sa.exc.OperationalError as exc:
            return f"Galera node {sa.make_url(url).port} is not reachable: {str(exc.orig).splitlines()[0]}"
        finally:
            engine.dispose()
        if ready != "ON" or str(size) != str(len(GALERA_URLS)):
            return f"Galera node {sa.make_url(url).port}: wsrep_ready={ready}, cluster size {size} (want {len(GALERA_URLS)})"
    return None


def _empty_run_database() -> None:
    """The run's database, created once through node 1, emptied; the test fails (CI) or skips
    when the URLs are not a synced cluster."""
    global _created, _unready
    if not _created and _unready is None:
        _unready = _cluster_problem()
        if _unready is None:
            ensure_database(GALERA_URLS[0])
            _created = True
    if _unready is not None:
        _unreachable(_unready)
    engine = sa.create_engine(GALERA_URLS[0])
    try:
        empty_database(engine)
    finally:
        engine.dispose()


@pytest.fixture
def galera() -> Cluster:
    """A Cluster on an empty per-run database; the `galera` marker lets a quick run deselect it."""
    _empty_run_database()
    nodes = [sa.create_engine(url) for url in GALERA_URLS]
    for node in nodes[1:]:
        _causal(node)
    yield Cluster(GALERA_URLS, nodes)
    for node in nodes:
        node.dispose()


@pytest.fixture
def galera_nodes() -> Nodes:
    """The same empty database as `Nodes`, one URL per node: what the simulator and `verify` take."""
    _empty_run_database()
    for url in GALERA_URLS[1:]:  # node 1's DDL may still be applying on the others: wait for it there
        ensure_database(url)
    return Nodes(*GALERA_URLS)


SERVER_BUG = ("MariaDB 10.11's Galera wedged the whole cluster when crossfade created a trigger on a table with "
              "a foreign key to one that other nodes wrote meanwhile (docs/galera.md, 'Known problem'); "
              "--galera-server-bugs runs it")


def pytest_addoption(parser):
    parser.addoption("--galera-server-bugs", action="store_true",
                     help="also run the Galera simulations that meet MariaDB's known wedge (docs/galera.md); "
                          "a wedged cluster needs scripts/galera-cluster stop && start")


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(config, items):
    """Every test that takes the cluster carries the `galera` marker (-m "not galera" leaves them
    out), and runs in one pytest-xdist worker (scripts/test: --dist loadgroup): DDL anywhere in the
    cluster aborts catalog reads on every node (crossfade/rerun.py), the tests' own included.
    A test marked `galera_server_bug` meets the server's known wedge: it is skipped, saying so,
    unless --galera-server-bugs asks for it (a wedge would hang the suite until CI's time limit)."""
    for item in items:
        if {"galera", "galera_nodes"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.galera)
            item.add_marker(pytest.mark.xdist_group("galera"))
        if item.get_closest_marker("galera_server_bug") and not config.getoption("--galera-server-bugs"):
            item.add_marker(pytest.mark.skip(reason=SERVER_BUG))


def pytest_sessionfinish(session, exitstatus):
    if _created:
        drop_database(GALERA_URLS[0])
