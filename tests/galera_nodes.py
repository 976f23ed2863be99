"""The Galera cluster's nodes for tests: `galera_nodes` is one scratch database reached through
nodes 1, 2 and 3 (scripts/galera-cluster starts them at 127.0.0.1:3311-3313).

URLs come from CROSSFADE_TEST_GALERA_URLS (comma-separated, one per node). The database is this
run's own (conftest.per_run), created on node 1 and seen by every node before a test starts. With
CI=true an unreachable cluster fails the test, never skips it.
"""

from __future__ import annotations

import os

import pytest
import sqlalchemy as sa
from conftest import _unreachable, per_run

from crossfade.testing.databases import drop_database, empty_database, ensure_database
from crossfade.testing.nodes import Nodes

_DEFAULT = ",".join(f"mysql+pymysql://root@127.0.0.1:{port}/crossfade_galera" for port in (3311, 3312, 3313))
GALERA = Nodes(*[per_run(u) for u in Nodes.parse(os.environ.get("CROSSFADE_TEST_GALERA_URLS", _DEFAULT)).urls])

_made: list[str] = []


def pytest_configure(config):
    config.addinivalue_line("markers", "galera: runs on the 3-node Galera cluster (scripts/galera-cluster)")


@pytest.fixture
def galera_nodes() -> Nodes:
    """GALERA's database, empty, on every node."""
    try:
        ensure_database(GALERA.ddl)
    except sa.exc.OperationalError as exc:
        _unreachable("the Galera cluster", exc)
    if GALERA.ddl not in _made:
        _made.append(GALERA.ddl)
    engine = sa.create_engine(GALERA.ddl)
    try:
        empty_database(engine)
    finally:
        engine.dispose()
    for url in GALERA.urls[1:]:  # a TOI statement of node 1 may still be applying on the others
        try:
            ensure_database(url)
        except sa.exc.OperationalError as exc:
            _unreachable(f"Galera node {sa.make_url(url).port}", exc)
    return GALERA


def pytest_sessionfinish(session, exitstatus):
    for url in _made:
        drop_database(url)
