"""What a MariaDB Galera cluster (or Percona XtraDB Cluster) needs before crossfade's DDL runs.

Galera replicates row events of InnoDB tables and runs DDL in total order on every node (TOI).
Statement-based events, another engine's rows, or DDL under rolling schema upgrade (RSU, which
runs it on this node only) would leave the other nodes without the new columns or without the
triggers, and release N's writes there unsynced. Detected by `wsrep_on`, read in the session
crossfade's phase uses, since binlog_format and wsrep_OSU_method are session-settable.
"""

from __future__ import annotations

import sqlalchemy as sa


def is_galera(conn: sa.Connection) -> bool:
    """wsrep_on=ON: this server is a node of a Galera cluster (a server without the wsrep
    patch, MySQL proper, has no such variable)."""
    found = conn.exec_driver_sql("SHOW SESSION VARIABLES LIKE 'wsrep\\_on'").first()
    return found is not None and str(found[1]).upper() == "ON"


def galera_problems(conn: sa.Connection, tables: list[str]) -> list[str]:
    """One sentence per setting or table that would keep crossfade's work on one node."""
    if not is_galera(conn):
        return []
    binlog_format, osu_method, engine = conn.exec_driver_sql(
        "SELECT @@SESSION.binlog_format, @@SESSION.wsrep_OSU_method, @@SESSION.default_storage_engine").one()
    problems = []
    if str(binlog_format).upper() != "ROW":
        problems.append(
            f"Galera: binlog_format is {binlog_format} in this session; Galera replicates only row events, so "
            "the triggers' writes would not reach the other nodes: set binlog_format=ROW (server "
            "configuration, and no SET SESSION binlog_format on crossfade's connections)")
    if str(osu_method).upper() != "TOI":
        problems.append(
            f"Galera: wsrep_OSU_method is {osu_method}; DDL under {osu_method} runs on this node only, so the "
            "other nodes would keep the old schema and no triggers: SET SESSION wsrep_OSU_method=TOI (the "
            "default) on crossfade's connections")
    if str(engine).lower() != "innodb":
        problems.append(
            f"Galera: default_storage_engine is {engine}; the tables crossfade creates (its state, its lock, "
            "new tables) would not replicate: set default_storage_engine=InnoDB")
    problems += _non_innodb_tables(conn, tables)
    return problems


def _non_innodb_tables(conn: sa.Connection, tables: list[str]) -> list[str]:
    if not tables:
        return []
    rows = conn.execute(sa.text(
        "SELECT TABLE_NAME, ENGINE FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() "
        "AND TABLE_TYPE = 'BASE TABLE' AND TABLE_NAME IN :tables ORDER BY TABLE_NAME"
    ).bindparams(sa.bindparam("tables", expanding=True)), {"tables": tables})
    return [f"Galera: table {name!r} uses the {engine} engine; Galera replicates only InnoDB tables, so its rows "
            f"would stay on this node: ALTER TABLE `{name.replace('`', '``')}` ENGINE=InnoDB"
            for name, engine in rows if str(engine).lower() != "innodb"]
