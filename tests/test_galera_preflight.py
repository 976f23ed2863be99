"""Preflight on Galera (crossfade/dialects/mysql_galera.py), on the real 3-node cluster.

Each setting or table that would keep crossfade's DDL or the triggers' writes on one node is
refused before any DDL, with one sentence naming the variable or table and the fix, and every
node's database is left as it was: no new column, no trigger, no crossfade table.
"""

from __future__ import annotations

import glance_schema
import pytest
import sqlalchemy as sa

from crossfade.dialects.mysql_galera import galera_problems
from crossfade.errors import PreflightError
from crossfade.runner import Runner
from crossfade.state import Phase

SEED = [{"id": i, "name": f"i{i}", "is_public": i % 2 == 0} for i in range(1, 5)]


def with_session(engine: sa.Engine, setting: str) -> sa.Engine:
    """`engine`'s URL with `setting` (SET SESSION ...) on every connection, as an operator's
    init_command or a pooled session left behind would have it."""
    session = sa.create_engine(engine.url)

    @sa.event.listens_for(session, "connect")
    def _set(dbapi_connection, _record):
        with dbapi_connection.cursor() as cursor:
            cursor.execute(f"SET SESSION {setting}")
    return session


def untouched_on_every_node(galera) -> None:
    for node in galera.nodes:
        with node.connect() as conn:
            inspector = sa.inspect(conn)
            assert set(inspector.get_table_names()) == {"images"}
            assert [c["name"] for c in inspector.get_columns("images")] == ["id", "name", "is_public", "size"]
            assert conn.exec_driver_sql("SELECT COUNT(*) FROM information_schema.TRIGGERS "
                                        "WHERE TRIGGER_SCHEMA = DATABASE()").scalar() == 0


def refused_expand(engine: sa.Engine) -> str:
    with pytest.raises(PreflightError) as refused:
        Runner(engine).expand(glance_schema.visibility_change())
    problems = [line.removeprefix("  - ") for line in str(refused.value).splitlines()[1:]]
    assert len(problems) == 1, problems  # exactly the one problem, in one line
    return problems[0]


def test_rsu_is_refused_before_any_ddl(galera):
    glance_schema.create_images(galera.nodes[0], SEED)
    rsu = with_session(galera.nodes[0], "wsrep_OSU_method = 'RSU'")
    problem = refused_expand(rsu)
    assert "wsrep_OSU_method is RSU" in problem and "runs on this node only" in problem
    assert "SET SESSION wsrep_OSU_method=TOI" in problem
    untouched_on_every_node(galera)


@pytest.mark.parametrize("binlog_format", ["STATEMENT", "MIXED"])
def test_binlog_format_other_than_row_is_refused_before_any_ddl(galera, binlog_format):
    glance_schema.create_images(galera.nodes[0], SEED)
    problem = refused_expand(with_session(galera.nodes[0], f"binlog_format = '{binlog_format}'"))
    assert f"binlog_format is {binlog_format}" in problem and "set binlog_format=ROW" in problem
    untouched_on_every_node(galera)


def test_a_myisam_table_is_refused_before_any_ddl(galera):
    glance_schema.create_images(galera.nodes[0], SEED)
    with galera.nodes[0].begin() as conn:
        conn.exec_driver_sql("ALTER TABLE images ENGINE=MyISAM")
    problem = refused_expand(galera.nodes[0])
    assert problem == ("Galera: table 'images' uses the MyISAM engine; Galera replicates only InnoDB tables, so "
                       "its rows would stay on this node: ALTER TABLE `images` ENGINE=InnoDB")
    untouched_on_every_node(galera)


def test_a_table_without_primary_key_is_refused_before_any_ddl(galera):
    with galera.nodes[0].begin() as conn:
        conn.exec_driver_sql("CREATE TABLE images (id INT NOT NULL, name VARCHAR(50) NOT NULL, "
                             "is_public BOOL NOT NULL, size INT NULL)")
    problem = refused_expand(galera.nodes[0])
    assert problem.startswith("table 'images' has no primary key") and "ADD PRIMARY KEY" in problem
    untouched_on_every_node(galera)


def test_contract_and_rollback_under_rsu_are_refused_and_leave_the_change_migrated(galera):
    glance_schema.create_images(galera.nodes[0], SEED)
    change = glance_schema.visibility_change()
    runner = Runner(galera.nodes[0])
    runner.expand(change)
    runner.migrate(change)
    rsu = Runner(with_session(galera.nodes[0], "wsrep_OSU_method = 'RSU'"))
    for phase in (rsu.contract, rsu.rollback):
        with pytest.raises(PreflightError, match="wsrep_OSU_method is RSU"):
            phase(change)
    assert runner.load(change).phase is Phase.MIGRATED and runner.problems(change) == []
    runner.contract(change)  # under TOI it goes on
    assert runner.load(change).phase is Phase.CONTRACTED


def test_the_cluster_as_configured_passes(galera):
    glance_schema.create_images(galera.nodes[0], SEED)
    with galera.nodes[1].connect() as conn:
        assert galera_problems(conn, ["images"]) == []


@pytest.mark.parametrize("dialect_name", ["mysql"])
def test_a_server_without_galera_has_no_galera_problems(engine):
    with engine.connect() as conn:
        conn.exec_driver_sql("SET SESSION binlog_format = 'STATEMENT'")
        conn.exec_driver_sql("CREATE TABLE t (id INT) ENGINE=MyISAM")
        assert galera_problems(conn, ["t"]) == []
