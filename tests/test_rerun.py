"""Work a deadlock aborted runs again (crossfade/rerun.py), a bounded number of times, saying why;
other errors go straight to the operator. Shown with real deadlocks: the work's transaction
locks row 1, a heavier transaction locks row 2 and waits for row 1, and the work then asks for
row 2, so the database fails the work (the lighter side).
"""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa

from crossfade import rerun
from crossfade.dialects import for_dialect

pytestmark = pytest.mark.parametrize("dialect_name", ["postgresql", "mysql"])


@pytest.fixture
def rows(engine):
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE IF EXISTS rerun_rows")
        conn.exec_driver_sql("CREATE TABLE rerun_rows (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)")
        conn.execute(sa.text("INSERT INTO rerun_rows (id, n) VALUES (:id, 0)"), [{"id": i} for i in range(1, 202)])
    return engine


def deadlocked_work(engine: sa.Engine, deadlocks: int, calls: list[int]):
    """Work that loses a deadlock on its first `deadlocks` runs, then bumps row 1."""
    def work() -> str:
        calls.append(1)
        with engine.begin() as conn:
            patience(conn, "100ms")  # PostgreSQL fails the side whose check finds the cycle: this one
            conn.exec_driver_sql("UPDATE rerun_rows SET n = n + 1 WHERE id = 1")
            if len(calls) <= deadlocks:
                other = threading.Thread(target=heavier_transaction_waiting_for_row_1, args=(engine,))
                other.start()
                waiting_for_row_1(engine)
                conn.exec_driver_sql("UPDATE rerun_rows SET n = n + 1 WHERE id = 2")  # the cycle
        return "done"
    return work


heavy_locked = threading.Event()


def patience(conn: sa.Connection, deadlock_timeout: str) -> None:
    """PostgreSQL: how long this transaction waits before looking for a cycle (MariaDB's InnoDB
    finds it at once and fails the lighter transaction)."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"SET LOCAL deadlock_timeout = '{deadlock_timeout}'")


def heavier_transaction_waiting_for_row_1(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        patience(conn, "10s")
        conn.exec_driver_sql("UPDATE rerun_rows SET n = n + 1 WHERE id >= 2")  # 200 rows: the heavier side
        heavy_locked.set()
        conn.exec_driver_sql("UPDATE rerun_rows SET n = n + 1 WHERE id = 1")


def waiting_for_row_1(engine: sa.Engine) -> None:
    assert heavy_locked.wait(10)
    heavy_locked.clear()
    threading.Event().wait(0.3)  # the heavier side is now queued for row 1


def test_work_a_deadlock_aborted_runs_again_and_the_log_says_why(rows):
    said, calls = [], []
    result = rerun.again_after_deadlock(for_dialect(rows.dialect), said.append, "status",
                                        deadlocked_work(rows, 2, calls))
    assert result == "done"
    assert len(calls) == 3
    assert len(said) == 2 and all(line.startswith("status was aborted by a deadlock (") for line in said), said
    with rows.connect() as conn:
        assert conn.exec_driver_sql("SELECT n FROM rerun_rows WHERE id = 1").scalar() == 3  # the work's once, the others' twice


def test_deadlocks_beyond_the_reruns_reach_the_operator(rows, monkeypatch):
    monkeypatch.setattr(rerun, "RERUNS", 1)
    calls: list[int] = []
    with pytest.raises(sa.exc.DBAPIError) as failed:
        rerun.again_after_deadlock(for_dialect(rows.dialect), lambda line: None, "status",
                                   deadlocked_work(rows, 5, calls))
    assert for_dialect(rows.dialect).is_deadlock(failed.value)
    assert len(calls) == 2


def test_an_error_that_is_no_deadlock_is_not_run_again(rows):
    calls: list[int] = []

    def work():
        calls.append(1)
        with rows.connect() as conn:
            conn.exec_driver_sql("SELECT * FROM no_such_table")

    with pytest.raises(sa.exc.DBAPIError):
        rerun.again_after_deadlock(for_dialect(rows.dialect), lambda line: None, "status", work)
    assert calls == [1]
