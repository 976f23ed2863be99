"""Two test runs on one server (two checkouts, a developer and CI) never touch each other's data:
each run has databases of its own, dropped when it ends."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import MYSQL_URL, PG_URL, make_engine

from crossfade.testing.databases import server_url

PROBE = Path(__file__).with_name("isolation_probe.py")


@pytest.mark.slow
def test_two_runs_at_once_share_the_servers_without_touching_each_others_data(tmp_path):
    for dialect in ("postgresql", "mysql"):
        make_engine(dialect, tmp_path).dispose()  # both servers answer (CI fails here, never skips)
    env = {**os.environ, "CI": "true", "CROSSFADE_PROBE_SECONDS": "3"}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(PROBE)]
    runs = [subprocess.Popen(command, cwd=PROBE.parent.parent, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    outputs = [run.communicate(timeout=300)[0] for run in runs]
    for run, output in zip(runs, outputs):
        assert run.returncode == 0, output
        assert "2 passed" in output, output
    pids = {str(run.pid) for run in runs}
    for url in (PG_URL, MYSQL_URL):
        assert not pids & _run_suffixes(url), "a run left its databases behind"


def _run_suffixes(url: str) -> set[str]:
    engine = sa.create_engine(server_url(url))
    try:
        with engine.connect() as conn:
            query = ("SELECT datname FROM pg_database" if engine.dialect.name == "postgresql" else "SHOW DATABASES")
            return {name.rsplit("_", 1)[-1] for name in conn.exec_driver_sql(query).scalars()}
    finally:
        engine.dispose()
