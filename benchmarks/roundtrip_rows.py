"""The existing-rows round-trip check at expand vs a plain full scan of the same table.

    python benchmarks/roundtrip_rows.py [--rows 1000000] [--dialect sqlite postgresql mysql] [--reps 3]

Setup (untimed): a table bench_amounts(id, amount NUMERIC(12, 2)) with --rows rows, and the new
column `cents BIGINT` added as expand would. Timed, interleaved per repetition:
  full scan   SELECT count(amount) FROM bench_amounts  (reads every row once)
  one query   the same count written by hand as one statement over the whole table (what the
              check costs without batches: evaluating the transforms on every row)
  check rows  crossfade.roundtrip.check_rows for amount -> cents with scaled/unscaled by 100:
              the count of rows where amount IS DISTINCT FROM down(up(amount)), one query per
              ROWS_PER_BATCH keys
Reported: medians, and the ratios check rows / full scan and check rows / one query, each within
the same run.
"""

from __future__ import annotations

import argparse
import time

import sqlalchemy as sa
from _common import DIALECTS, autocommit, distinct, make_engine, markdown, median, series

from crossfade import transforms as tf
from crossfade.dialects import for_dialect
from crossfade.roundtrip import ROWS_PER_BATCH, check_rows
from crossfade.schema import Schema
from crossfade.sync import SyncGroup

TABLE = "bench_amounts"


def setup(engine: sa.Engine, rows: int) -> None:
    dialect = engine.dialect.name

    def modulo(n: int) -> str:
        return f"i % {n}" if dialect == "sqlite" else f"MOD(i, {n})"  # psycopg reads % as a placeholder

    amount = f"{modulo(100000)} * 1.25 - {modulo(7)} / 100.0"
    with autocommit(engine) as conn:
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {TABLE}")
        conn.exec_driver_sql(f"CREATE TABLE {TABLE} (id INTEGER PRIMARY KEY, amount NUMERIC(12, 2), cents BIGINT)")
        conn.exec_driver_sql(f"INSERT INTO {TABLE} (id, amount) SELECT i, {amount} FROM {series(dialect, rows)}")
        if dialect == "postgresql":
            conn.exec_driver_sql(f"VACUUM ANALYZE {TABLE}")
        elif dialect == "mysql":
            conn.exec_driver_sql(f"ANALYZE TABLE {TABLE}")


def full_scan(engine: sa.Engine) -> float:
    with engine.connect() as conn:
        start = time.perf_counter()
        conn.exec_driver_sql(f"SELECT count(amount) FROM {TABLE}").scalar()
        return time.perf_counter() - start


def one_query(engine: sa.Engine) -> float:
    dialect = engine.dialect.name
    cents = {
        "postgresql": "CAST(round(amount * 100) AS BIGINT)",
        "mysql": "CAST(round(amount * 100) AS SIGNED)",
        "sqlite": "CAST(round(amount * 100) AS INTEGER)",
    }[dialect]
    back = f"CAST({cents} AS REAL) / 100" if dialect == "sqlite" else f"{cents} * 0.01"
    with engine.connect() as conn:
        start = time.perf_counter()
        conn.exec_driver_sql(f"SELECT count(*) FROM {TABLE} WHERE {distinct(dialect, 'amount', back)}").scalar()
        return time.perf_counter() - start


def checked(engine: sa.Engine, rows: int) -> float:
    group = SyncGroup(TABLE, ("amount",), ("cents",), lambda x: tf.scaled(x, 100), lambda n: tf.unscaled(n, 100))
    with engine.connect() as conn:
        schema = Schema.reflect(conn, {TABLE})
        start = time.perf_counter()
        read = check_rows(conn, for_dialect(engine.dialect), schema, group)
        took = time.perf_counter() - start
    assert read == rows, (read, rows)
    return took


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dialect", nargs="+", default=list(DIALECTS), choices=DIALECTS)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args(argv)
    results = []
    for dialect in args.dialect:
        engine = make_engine(dialect)
        setup(engine, args.rows)
        full_scan(engine)  # warm the cache for both
        scans, ones, checks = [], [], []
        for _ in range(args.reps):
            scans.append(full_scan(engine))
            ones.append(one_query(engine))
            checks.append(checked(engine, args.rows))
        with autocommit(engine) as conn:
            conn.exec_driver_sql(f"DROP TABLE {TABLE}")
        engine.dispose()
        scan, one, check = median(scans), median(ones), median(checks)
        results.append(
            [
                dialect,
                f"{args.rows:,}",
                f"{scan * 1000:.0f} ms",
                f"{one * 1000:.0f} ms",
                f"{check * 1000:.0f} ms",
                f"{check / scan:.2f}x",
                f"{check / one:.2f}x",
            ]
        )
    print(
        f"existing-rows round-trip check (batches of {ROWS_PER_BATCH:,} keys) vs a plain full scan, "
        f"median of {args.reps}"
    )
    print(
        markdown(
            ["dialect", "rows", "full scan", "one query", "check rows", "check / scan", "check / one query"], results
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
