"""crossfade on a 3-node MariaDB Galera cluster (scripts/galera-cluster; fixtures in tests/galera.py).

crossfade runs on node 1; release N and release N+1 write through nodes 2 and 3, and every
assertion reads the row back on a node other than the one that wrote it. Galera runs DDL in total
order on every node and replicates the triggers' effects as rows (ROW format: the appliers do not
fire triggers), so the sync law must hold wherever a write lands. Kept lean (a handful of cases
per test): these run in the suite's time budget. A test taking the `galera` fixture carries the
`galera` marker (tests/galera.py), so `-m "not galera"` leaves these out.
"""

from __future__ import annotations

import os
import re
import subprocess
import threading
from pathlib import Path

import glance_schema
import pytest
import sqlalchemy as sa
import test_cross_table_crashes as cross_table
import test_idempotency as idempotency
import test_triggers as triggers

from crossfade import Change, ops
from crossfade.errors import OperatorBusyError
from crossfade.oplock import LOCK_TABLE
from crossfade.runner import Runner
from crossfade.state import STATE_TABLE, Phase

CROSSFADE = Path(__file__).resolve().parents[1] / "crossfade"
SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "galera-cluster"

# --- the trigger decision table (tests/test_triggers.py), writes and reads on nodes 2 and 3 ------

DECISION_TABLE = [
    "test_insert_by_release_n_fills_new_column_with_up",
    "test_insert_by_release_n1_fills_old_column_with_down",
    "test_insert_of_both_consistent_keeps_both",
    "test_insert_of_both_conflicting_new_column_wins",
    "test_insert_with_new_column_explicitly_null_fills_it_from_old",
    "test_null_in_old_not_null_column_takes_the_value_up_and_down_give_it",
    "test_update_of_old_column_only_makes_new_follow_via_up",
    "test_update_of_old_column_overrides_a_finer_value_it_contradicts",
    "test_update_of_new_column_only_makes_old_follow_via_down",
    "test_update_of_both_columns_new_column_wins_a_conflict",
    "test_update_of_unrelated_column_leaves_a_finer_new_value_alone",
    # Two cases read seeded rows by ids 1, 2, ...; Galera steps auto-increment ids per node
    # (wsrep_auto_increment_control, not settable per session), so the phase tests below seed
    # rows with ids of their own and check these there: an unrelated update of a row not yet
    # backfilled, and the backfill beside both releases' writes.
]


def writers_on_nodes_2_and_3(galera) -> sa.Engine:
    """Each connection on the next of nodes 2 and 3, so a write and its read-back are on different
    nodes."""
    return galera.rotating((1, 2))


@pytest.mark.parametrize("case", DECISION_TABLE)
def test_decision_table_holds_with_crossfade_on_node_1_and_writes_on_nodes_2_and_3(galera, monkeypatch, case):
    # The cases build their Runner from the engine they write with; crossfade's goes to node 1,
    # causal there too: each case creates its table on node 2 or 3 just before expand.
    node1 = galera.rotating((0,))
    monkeypatch.setattr(triggers, "Runner", lambda _engine, **options: Runner(node1, **options))
    writers = writers_on_nodes_2_and_3(galera)
    try:
        getattr(triggers, case)(writers)
    finally:
        writers.dispose()
        node1.dispose()


# --- every phase of a single-table op (Glance's is_public -> visibility) ------------------------

images_n = glance_schema.images_table(sa.MetaData())
images_n1 = sa.Table("images", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True),
                     sa.Column("name", sa.String(50), nullable=False), sa.Column("visibility", sa.String(16)))
SEED = [{"id": i, "name": f"i{i}", "is_public": i % 2 == 0, "size": i} for i in range(1, 7)]


def rows(engine: sa.Engine, query: str) -> dict[int, tuple]:
    with engine.connect() as conn:
        return {r[0]: tuple(r[1:]) for r in conn.exec_driver_sql(query)}


def write(engine: sa.Engine, statement) -> None:
    with engine.begin() as conn:
        conn.execute(statement)


def expanded_glance(galera) -> tuple[Runner, Change]:
    node1, node2, node3 = galera.nodes
    glance_schema.create_images(node1, SEED)
    runner, change = Runner(node1, batch_size=2), glance_schema.visibility_change()
    runner.expand(change)
    write(node2, images_n.insert().values(id=101, name="n", is_public=True))  # release N on node 2
    write(node3, images_n1.insert().values(id=102, name="n1", visibility="community"))  # N+1 on node 3
    write(node2, images_n.update().where(images_n.c.id == 1).values(is_public=True))
    write(node3, images_n1.update().where(images_n1.c.id == 2).values(visibility="shared"))
    write(node2, images_n.update().where(images_n.c.id == 3).values(name="renamed"))  # an unrelated column
    return runner, change


def test_single_table_op_expand_migrate_contract_with_writes_on_other_nodes(galera):
    _, node2, node3 = galera.nodes
    runner, change = expanded_glance(galera)
    both = "SELECT id, is_public, visibility FROM images WHERE id IN (1, 2, 101, 102) ORDER BY id"
    assert rows(node3, both) == {1: (1, "public"), 2: (0, "shared"), 101: (1, "public"), 102: (0, "community")}
    assert rows(node3, "SELECT id, name, visibility FROM images WHERE id = 3") == {3: ("renamed", None)}
    runner.migrate(change)
    expected = {i: ("public" if i % 2 == 0 or i == 1 else "shared") for i in range(1, 7)}
    assert {i: v for i, (v,) in rows(node2, "SELECT id, visibility FROM images WHERE id <= 6").items()} == {
        **expected, 2: "shared"}
    runner.contract(change)
    assert runner.load(change).phase is Phase.CONTRACTED and runner.problems(change) == []
    write(node3, images_n1.insert().values(id=103, name="after"))  # the final default, on node 3
    with node2.connect() as conn:
        assert {c["name"] for c in sa.inspect(conn).get_columns("images")} == {"id", "name", "visibility", "size"}
    assert rows(node2, "SELECT id, visibility FROM images WHERE id IN (102, 103)") == {
        102: ("community",), 103: ("shared",)}


def test_single_table_op_rollback_with_writes_on_other_nodes(galera):
    _, node2, node3 = galera.nodes
    runner, change = expanded_glance(galera)
    runner.migrate(change)
    runner.rollback(change)
    assert runner.load(change).phase is Phase.ROLLED_BACK and runner.problems(change) == []
    with node3.connect() as conn:
        assert [c["name"] for c in sa.inspect(conn).get_columns("images")] == ["id", "name", "is_public", "size"]
        assert conn.exec_driver_sql("SELECT COUNT(*) FROM information_schema.TRIGGERS "
                                    "WHERE TRIGGER_SCHEMA = DATABASE()").scalar() == 0
    assert rows(node3, "SELECT id, is_public FROM images WHERE id IN (1, 2, 101, 102)") == {
        1: (1,), 2: (0,), 101: (1,), 102: (0,)}
    write(node2, images_n.insert().values(id=104, name="back", is_public=True))  # release N as before


# --- every phase of a cross-table op (split_table), writes on other nodes -------------------------

users_n = sa.Table("users", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True),
                   sa.Column("name", sa.String(20), nullable=False), sa.Column("bio", sa.String(20)))
profiles_n1 = sa.Table("profiles", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True),
                       sa.Column("bio", sa.String(20)))
SPLIT = Change(ops.split_table("users", "profiles", ["bio"]), id="galera-split")


def expanded_split(galera) -> Runner:
    node1, node2, node3 = galera.nodes
    cross_table.build_users(node1)
    runner = Runner(node1, batch_size=3)
    runner.expand(SPLIT)
    write(node2, users_n.insert().values(id=101, name="n", bio="from-n"))  # release N on node 2
    write(node3, sa.insert(users_n).values(id=102, name="n1"))  # release N+1 on node 3: both tables
    write(node3, profiles_n1.insert().values(id=102, bio="from-n1"))
    write(node2, users_n.update().where(users_n.c.id == 1).values(bio="edited"))
    return runner


def test_cross_table_op_expand_migrate_contract_with_writes_on_other_nodes(galera):
    _, node2, node3 = galera.nodes
    runner = expanded_split(galera)
    assert rows(node2, "SELECT id, bio FROM users WHERE id IN (101, 102)") == {101: ("from-n",), 102: ("from-n1",)}
    assert rows(node3, "SELECT id, bio FROM profiles WHERE id IN (1, 101)") == {1: ("edited",), 101: ("from-n",)}
    runner.migrate(SPLIT)
    expected = {i: (b,) for i, _, b in cross_table.USERS if b is not None}
    assert rows(node2, "SELECT id, bio FROM profiles") == {**expected, 1: ("edited",), 101: ("from-n",),
                                                           102: ("from-n1",)}
    runner.contract(SPLIT)
    assert runner.load(SPLIT).phase is Phase.CONTRACTED and runner.problems(SPLIT) == []
    with node3.connect() as conn:
        assert [c["name"] for c in sa.inspect(conn).get_columns("users")] == ["id", "name"]


def test_cross_table_op_rollback_with_writes_on_other_nodes(galera):
    node3 = galera.nodes[2]
    runner = expanded_split(galera)
    runner.rollback(SPLIT)
    assert runner.load(SPLIT).phase is Phase.ROLLED_BACK and runner.problems(SPLIT) == []
    with node3.connect() as conn:
        assert not sa.inspect(conn).has_table("profiles")
    assert rows(node3, "SELECT id, bio FROM users WHERE id IN (1, 101, 102)") == {
        1: ("edited",), 101: ("from-n",), 102: ("from-n1",)}


# --- kill and rerun: a phase interrupted on node 1 after any step finishes on rerun from node 2 ----

@pytest.mark.parametrize("phase", idempotency.PHASES)
def test_single_table_phase_killed_after_any_step_on_node_1_finishes_on_rerun_from_node_2(galera, phase):
    node1, node2, _ = galera.nodes
    steps = idempotency.recorded_steps(node1, phase)
    assert len(steps) >= 3, steps
    for k, (_, name) in enumerate(steps, start=1):
        change = idempotency.prepare(node1, phase)
        with pytest.raises(idempotency.Crash):
            idempotency.run(node1, phase, change, hook=idempotency.crash_after(k))
        try:
            runner = idempotency.run(node2, phase, change)
            idempotency.CHECKS[phase](runner, change, node2)
        except Exception as exc:
            raise AssertionError(f"{phase} crashed on node 1 after step {k} ({name!r}), then rerun on node 2: "
                                 f"{exc!r}") from exc


@pytest.mark.parametrize("phase", ["expand", "contract", "rollback"])  # migrate: batches, as single-table's
def test_cross_table_phase_killed_after_any_step_on_node_1_finishes_on_rerun_from_node_2(galera, phase):
    node1, node2, _ = galera.nodes
    case = cross_table.CASES["split_table"]
    steps = cross_table.steps_of(node1, case, phase)
    assert len(steps) >= 2, steps
    for k, step in enumerate(steps, start=1):
        cross_table.prepare(node1, case, phase)
        with pytest.raises(idempotency.Crash):
            cross_table.run(node1, case, phase, hook=idempotency.crash_after(k))
        try:
            cross_table.run(node2, case, phase)
            cross_table.check(node2, case, phase)
        except Exception as exc:
            raise AssertionError(f"split_table: {phase} crashed on node 1 after step {k} ({step!r}), then rerun "
                                 f"on node 2: {exc!r}") from exc


# --- one operator at a time, across nodes -----------------------------------------------------

def test_crossfade_lock_and_state_are_innodb_rows_on_every_node(galera):
    expanded_glance(galera)
    for node in galera.nodes:
        with node.connect() as conn:
            engines = dict(conn.exec_driver_sql(
                "SELECT TABLE_NAME, ENGINE FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() "
                f"AND TABLE_NAME IN ('{LOCK_TABLE}', '{STATE_TABLE}')").all())
            phase = conn.exec_driver_sql(f"SELECT phase FROM {STATE_TABLE}").scalar()
        assert engines == {LOCK_TABLE: "InnoDB", STATE_TABLE: "InnoDB"}
        assert phase == "expanded"


def test_crossfade_takes_no_lock_galera_does_not_replicate():
    """GET_LOCK and LOCK TABLES hold on one node only: crossfade's code names neither."""
    node_local = re.compile(r"GET_LOCK\s*\(|LOCK\s+TABLES?\s+[`\w]+\s+(READ|WRITE)", re.IGNORECASE)
    for source in CROSSFADE.rglob("*.py"):
        assert not node_local.search(source.read_text()), source


def test_a_second_operator_on_another_node_is_refused_while_the_first_holds_the_lock(galera):
    node1, node2, _ = galera.nodes
    glance_schema.create_images(node1, SEED)
    change = glance_schema.visibility_change()
    holding, release = threading.Event(), threading.Event()

    def pause_after_first_step(_phase: str, _step: str) -> None:
        if not holding.is_set():
            holding.set()
            release.wait(60)

    first = threading.Thread(target=Runner(node1, on_step=pause_after_first_step).expand, args=(change,))
    first.start()
    try:
        assert holding.wait(60)
        with pytest.raises(OperatorBusyError, match="another crossfade is running on this database"):
            Runner(node2).expand(change)
    finally:
        release.set()
        first.join(60)
    assert Runner(node1).load(change).phase is Phase.EXPANDED
    Runner(node2).migrate(change)  # the lock is free again, on every node
    assert Runner(node2).load(change).phase is Phase.MIGRATED


def test_two_operators_started_together_on_two_nodes_do_not_interleave(galera):
    node1, node2, _ = galera.nodes
    glance_schema.create_images(node1, SEED)
    change = glance_schema.visibility_change()
    outcomes: list[str] = []
    go = threading.Barrier(2)

    def operate(engine: sa.Engine) -> None:
        go.wait()
        try:
            Runner(engine, operator_wait=60).expand(change)
            outcomes.append("ran")
        except OperatorBusyError:
            outcomes.append("refused")

    threads = [threading.Thread(target=operate, args=(node,)) for node in (node1, node2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert outcomes == ["ran", "ran"]  # one waited for the other, whose expand it then found done
    runner = Runner(node1)
    assert runner.load(change).phase is Phase.EXPANDED and runner.problems(change) == []


# --- scripts/galera-cluster ------------------------------------------------------------------

def test_galera_cluster_start_leaves_a_running_cluster_alone(galera):
    """`start` on the running cluster (as every scripts/test run does) restarts no node."""
    node = sa.make_url(galera.urls[0])
    if node.host not in ("127.0.0.1", "localhost"):
        pytest.skip("the cluster is not this machine's scripts/galera-cluster")
    uptime = "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'UPTIME'"
    with galera.nodes[0].connect() as conn:
        before = int(conn.exec_driver_sql(uptime).scalar())
    env = {**os.environ, "CROSSFADE_GALERA_BASE_PORT": str(node.port)}
    started = subprocess.run([str(SCRIPT), "start"], check=False, env=env, capture_output=True, text=True, timeout=120)
    assert started.returncode == 0, started.stderr
    status = subprocess.run([str(SCRIPT), "status"], check=False, env=env, capture_output=True, text=True, timeout=60)
    assert status.returncode == 0 and status.stdout.count("cluster_size=3 ready=ON state=Synced") == 3
    with galera.nodes[0].connect() as conn:
        assert int(conn.exec_driver_sql(uptime).scalar()) >= before


# --- other services' DDL on the same cluster ----------------------------------------------------

def test_phases_finish_while_another_database_on_the_cluster_runs_ddl(galera):
    """DDL anywhere in a Galera cluster, even in another database, aborts reads of
    information_schema.TRIGGERS on every node with error 1213 (crossfade/rerun.py); OpenStack puts
    several services' databases on one cluster. crossfade's phases and reads run again and finish."""
    node2 = sa.make_url(galera.urls[1])
    storm = sa.create_engine(node2.set(database=None), isolation_level="AUTOCOMMIT")
    other = f"{node2.database}_other"
    stop = threading.Event()

    def other_service_ddl() -> None:
        with storm.connect() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE IF NOT EXISTS {other}")
            while not stop.is_set():
                conn.exec_driver_sql(f"CREATE TABLE {other}.t (id INT PRIMARY KEY)")
                conn.exec_driver_sql(f"DROP TABLE {other}.t")

    glance_schema.create_images(galera.nodes[0], SEED)
    change, log = glance_schema.visibility_change(), []
    runner = Runner(galera.nodes[0], batch_size=2, log=log.append)
    ddl = threading.Thread(target=other_service_ddl)
    ddl.start()
    try:
        runner.expand(change)
        runner.migrate(change)
        for _ in range(40):
            assert runner.problems(change) == []
        runner.contract(change)
        assert runner.status(change).phase is Phase.CONTRACTED and runner.problems(change) == []
    finally:
        stop.set()
        ddl.join(30)
        with storm.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {other}")
        storm.dispose()
