"""Run by tests/test_isolation.py in two pytest processes at once (never collected on its own):
each writes into its databases, waits while the other does the same, and finds only its own row."""

from __future__ import annotations

import os
import time

import pytest
import sqlalchemy as sa


@pytest.mark.parametrize("dialect_name", ["postgresql", "mysql"])
def test_a_run_keeps_its_own_database(engine):
    assert engine.url.database.endswith(f"_{os.getpid()}")
    marks = sa.Table("marks", sa.MetaData(), sa.Column("pid", sa.Integer))
    with engine.begin() as conn:
        marks.create(conn)
        conn.execute(marks.insert().values(pid=os.getpid()))
    time.sleep(float(os.environ.get("CROSSFADE_PROBE_SECONDS", "2")))
    with engine.connect() as conn:
        assert conn.execute(sa.select(marks.c.pid)).scalars().all() == [os.getpid()]
