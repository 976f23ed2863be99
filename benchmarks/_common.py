"""Shared helpers for the crossfade benchmarks (not a benchmark itself).

Every benchmark uses its own databases (never the test suite's):
  PostgreSQL  postgresql+psycopg://postgres@127.0.0.1:5432/crossfade_bench   (CROSSFADE_BENCH_PG)
  MariaDB     mysql+pymysql://root@127.0.0.1:3306/crossfade_bench           (CROSSFADE_BENCH_MYSQL)
  SQLite      a file in a fresh temporary directory
The databases are created when missing; the benchmark's tables are dropped and recreated per run.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time

import sqlalchemy as sa

from crossfade import Change, ops

DIALECTS = ("sqlite", "postgresql", "mysql")
URLS = {
    "postgresql": os.environ.get("CROSSFADE_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/crossfade_bench"),
    "mysql": os.environ.get("CROSSFADE_BENCH_MYSQL", "mysql+pymysql://root@127.0.0.1:3306/crossfade_bench"),
}
TABLE = "images"
SOURCE = "bench_src"
HAND_FUNCTION = "bench_hand_sync"

_tmpdir: str | None = None


def make_engine(dialect: str) -> sa.Engine:
    global _tmpdir
    if dialect == "sqlite":
        if _tmpdir is None:
            _tmpdir = tempfile.mkdtemp(prefix="crossfade-bench-")
        return sa.create_engine(f"sqlite:///{_tmpdir}/bench.db", connect_args={"timeout": 120})
    url = sa.engine.make_url(URLS[dialect])
    _create_database(url)
    return sa.create_engine(url, pool_pre_ping=True)


def _create_database(url: sa.URL) -> None:
    # URL.set() ignores database=None, so the server URL is built afresh.
    server = sa.URL.create(url.drivername, url.username, url.password, url.host, url.port,
                           "postgres" if url.get_backend_name() == "postgresql" else None, url.query)
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        if url.get_backend_name() == "postgresql":
            if not conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :d"), {"d": url.database}).first():
                conn.exec_driver_sql(f'CREATE DATABASE "{url.database}"')
        else:
            conn.exec_driver_sql(f"CREATE DATABASE IF NOT EXISTS `{url.database}`")
    admin.dispose()


# --- the change under test: Glance's images.is_public boolean -> images.visibility string ---

def the_change(change_id: str = "bench_visibility") -> Change:
    return Change(ops.replace_column(
        TABLE, "is_public", sa.Column("visibility", sa.String(16), nullable=False, server_default="shared"),
        up=lambda is_public: sa.case((is_public, "public"), else_="shared"),
        down=lambda visibility: visibility == "public",
    ), id=change_id)


def images_table(dialect: str, *, expanded: bool) -> sa.Table:
    """Release N's table; `expanded` adds the new nullable column as crossfade's expand leaves it
    (and, on SQLite, with is_public relaxed to NULL-able, as expand does there: DESIGN 2)."""
    md = sa.MetaData()
    columns = [
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(50)),
        sa.Column("is_public", sa.Boolean, nullable=expanded and dialect == "sqlite"),
    ]
    if expanded:
        columns.append(sa.Column("visibility", sa.String(16), nullable=True))
    return sa.Table(TABLE, md, *columns)


def autocommit(engine: sa.Engine) -> sa.Connection:
    return engine.connect().execution_options(isolation_level="AUTOCOMMIT")


def drop_all(engine: sa.Engine) -> None:
    with autocommit(engine) as conn:
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {TABLE}")
        conn.exec_driver_sql("DROP TABLE IF EXISTS crossfade_state")
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql(f"DROP FUNCTION IF EXISTS {HAND_FUNCTION}() CASCADE")
            conn.exec_driver_sql("DROP FUNCTION IF EXISTS crossfade_images_sync() CASCADE")


def drop_tables(engine: sa.Engine, tables: tuple[str, ...], functions: tuple[str, ...] = ()) -> None:
    """Drop `tables` (in this order: referencing tables first) and, on PostgreSQL, the trigger
    `functions` (DROP TABLE takes the triggers, not their functions)."""
    with autocommit(engine) as conn:
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS {', '.join(tables)} CASCADE")
            if functions:
                conn.exec_driver_sql(f"DROP FUNCTION IF EXISTS {', '.join(f + '()' for f in functions)} CASCADE")
            return
        for table in tables:
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS {table}")


# --- SQL that differs per dialect ---------------------------------------------------------------

def concat(dialect: str, *parts: str) -> str:
    """String concatenation (`||` is OR on MariaDB)."""
    return f"CONCAT({', '.join(parts)})" if dialect == "mysql" else " || ".join(parts)


def label(dialect: str, prefix: str, value: str, suffix: str = "") -> str:
    """'prefix' || value || 'suffix': text values, one per row."""
    return concat(dialect, f"'{prefix}'", value, *([f"'{suffix}'"] if suffix else []))


def distinct(dialect: str, left: str, right: str) -> str:
    """Null-safe inequality, exact bytes on MariaDB (as crossfade compares)."""
    if dialect == "mysql":
        return f"NOT (BINARY {left} <=> BINARY {right})"
    return f"{left} IS NOT {right}" if dialect == "sqlite" else f"{left} IS DISTINCT FROM {right}"


def series(dialect: str, n: int) -> str:
    """A FROM item with one column i = 1..n, built server-side."""
    if dialect == "postgresql":
        return f"generate_series(1, {n}) AS s(i)"
    if dialect == "mysql":
        return f"(SELECT seq AS i FROM seq_1_to_{n}) AS s"
    return f"(WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {n}) SELECT i FROM s) AS s"


def make_source(engine: sa.Engine, rows: int) -> None:
    """bench_src(id, name, is_public): the rows every load and bulk INSERT copies, built server-side."""
    name = engine.dialect.name
    with autocommit(engine) as conn:
        if name == "postgresql":
            have = conn.exec_driver_sql(
                f"SELECT count(*) FROM pg_class WHERE relname = '{SOURCE}' AND relkind = 'r'").scalar()
        elif name == "sqlite":
            have = conn.exec_driver_sql(
                f"SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '{SOURCE}'").scalar()
        else:
            have = conn.exec_driver_sql(
                f"SELECT count(*) FROM information_schema.tables WHERE table_schema = DATABASE() "
                f"AND table_name = '{SOURCE}'").scalar()
        if have and conn.exec_driver_sql(f"SELECT count(*) FROM {SOURCE}").scalar() == rows:
            return
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {SOURCE}")
        if name == "postgresql":
            conn.exec_driver_sql(f"CREATE TABLE {SOURCE} (id int PRIMARY KEY, name varchar(50), is_public boolean NOT NULL)")
            conn.exec_driver_sql(f"INSERT INTO {SOURCE} SELECT i, 'image-' || i, mod(i, 2) = 0 "
                                 f"FROM generate_series(1, {rows}) AS i")
            conn.exec_driver_sql(f"VACUUM ANALYZE {SOURCE}")
        elif name == "sqlite":
            conn.exec_driver_sql(f"CREATE TABLE {SOURCE} (id INTEGER PRIMARY KEY, name VARCHAR(50), is_public BOOLEAN NOT NULL)")
            conn.exec_driver_sql(
                f"INSERT INTO {SOURCE} WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s "
                f"WHERE i < {rows}) SELECT i, 'image-' || i, i % 2 = 0 FROM s")
        else:
            conn.exec_driver_sql(f"CREATE TABLE {SOURCE} (id int PRIMARY KEY, name varchar(50), "
                                 "is_public tinyint(1) NOT NULL) ENGINE=InnoDB")
            conn.exec_driver_sql(f"INSERT INTO {SOURCE} SELECT seq, CONCAT('image-', seq), MOD(seq, 2) = 0 "
                                 f"FROM seq_1_to_{rows}")


def maintain(engine: sa.Engine, tables: tuple[str, ...] = (TABLE,), *, statistics: bool = True) -> None:
    """Untimed: fresh statistics, and (PostgreSQL) a clean visibility map, before a measurement.
    Without `statistics`, only PostgreSQL's CHECKPOINT (VACUUM and ANALYZE would refresh them)."""
    with autocommit(engine) as conn:
        if not statistics:
            if engine.dialect.name == "postgresql":
                conn.exec_driver_sql("CHECKPOINT")
        elif engine.dialect.name == "postgresql":
            conn.exec_driver_sql(f"VACUUM ANALYZE {', '.join(tables)}")
            conn.exec_driver_sql("CHECKPOINT")
        elif engine.dialect.name == "mysql":
            conn.exec_driver_sql(f"ANALYZE TABLE {', '.join(tables)}").all()
        else:
            conn.exec_driver_sql("ANALYZE")


def freeze_statistics(engine: sa.Engine, tables: tuple[str, ...]) -> None:
    """Untimed, on tables just created: statistics of empty tables, and the database told not to
    refresh them by itself (PostgreSQL autovacuum, MariaDB STATS_AUTO_RECALC), so the rows loaded
    next are planned for with statistics that do not know them, whenever the measurement runs."""
    with autocommit(engine) as conn:
        if engine.dialect.name == "postgresql":
            for table in tables:
                conn.exec_driver_sql(f"ALTER TABLE {table} SET (autovacuum_enabled = off)")
            conn.exec_driver_sql(f"ANALYZE {', '.join(tables)}")
        elif engine.dialect.name == "mysql":
            for table in tables:
                conn.exec_driver_sql(f"ALTER TABLE {table} STATS_AUTO_RECALC = 0")
            conn.exec_driver_sql(f"ANALYZE TABLE {', '.join(tables)}").all()
        else:
            conn.exec_driver_sql("ANALYZE")


def timed(engine: sa.Engine, sql: str, *, before: tuple[str, ...] = (), after: tuple[str, ...] = ()) -> float:
    """Seconds for one statement and its commit. `before` runs untimed in its transaction (e.g. a
    transaction-local setting), `after` untimed once it committed (e.g. clearing a session variable)."""
    with engine.connect() as conn:
        conn.exec_driver_sql("SELECT 1").all()  # connection warm, transaction open on the same footing
        for statement in before:
            conn.exec_driver_sql(statement)
        start = time.perf_counter()
        conn.exec_driver_sql(sql)
        conn.commit()
        seconds = time.perf_counter() - start
        if after:
            for statement in after:
                conn.exec_driver_sql(statement)
            conn.commit()
        return seconds


def up_sql(dialect: str, prefix: str = "") -> str:
    """up(is_public) exactly as crossfade compiles it for this dialect."""
    return f"CASE WHEN {prefix}is_public THEN 'public' ELSE 'shared' END"


def out_of_sync(engine: sa.Engine) -> int:
    """Rows breaking the invariant is_public = down(visibility) (backfilled rows only)."""
    with engine.connect() as conn:
        if engine.dialect.name == "mysql":
            cond = "NOT (is_public <=> (visibility = 'public'))"
        elif engine.dialect.name == "sqlite":
            cond = "is_public IS NOT (visibility = 'public')"
        else:
            cond = "is_public IS DISTINCT FROM (visibility = 'public')"
        return conn.exec_driver_sql(f"SELECT count(*) FROM {TABLE} WHERE visibility IS NOT NULL AND {cond}").scalar()


def median(values: list[float]) -> float:
    return statistics.median(values)


def markdown(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows)]
    def line(cells):
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(headers), sep, *[line(r) for r in rows]])
