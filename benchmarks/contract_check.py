"""The pre-contract data check: every row against the sync law, vs ONE full-table scan.

    python benchmarks/contract_check.py [--rows 1000000] [--dialect sqlite postgresql mysql] [--reps 3]

Setup (untimed, once per dialect): release N's images table with --rows rows, Runner(engine).expand
of Glance's is_public -> visibility change (new NULL-able column, crossfade's triggers), every
row's visibility set to up(is_public) in one statement (as migrate leaves it), fresh statistics.
Timed, interleaved per repetition (order rotating), medians:
  full scan   SELECT count(*), count(is_public), count(visibility) FROM images: one statement
              reading every row's two synced columns, the least any check of every row can cost
              (PostgreSQL runs it with parallel workers)
  serial scan the same on PostgreSQL with max_parallel_workers_per_gather = 0: one process reading
              the table, as the check does (elsewhere the full scan is serial already)
  check       what contract runs before its first DDL (Runner.data_findings on a migrated change):
              datacheck.check_rows over datacheck.laws, in batches along the primary key sized
              as the backfill's are (adapting to DEFAULT_BATCH_SECONDS, on SQLite a rest after
              each batch), each batch one statement over the next rows in key order
The check must find every row in order (0 broken rows; a wrong count stops the run). Reported:
the times and the check's ratio to the full scan (target <= 2x) and to the serial scan, per
dialect, within one run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import sqlalchemy as sa
from _common import (
    DIALECTS,
    SOURCE,
    TABLE,
    drop_all,
    images_table,
    maintain,
    make_engine,
    make_source,
    markdown,
    the_change,
    up_sql,
)

from crossfade import datacheck
from crossfade.dialects import for_dialect
from crossfade.runner import Runner
from crossfade.schema import Schema

TARGET = 2.0
FULL_SCAN = f"SELECT count(*), count(is_public), count(visibility) FROM {TABLE}"


def prepare(engine: sa.Engine, rows: int) -> None:
    dialect = engine.dialect.name
    drop_all(engine)
    make_source(engine, rows)
    table = images_table(dialect, expanded=False)
    with engine.begin() as conn:
        table.create(conn)
        conn.exec_driver_sql(f"INSERT INTO {TABLE} (id, name, is_public) SELECT id, name, is_public FROM {SOURCE}")
    Runner(engine).expand(the_change())
    with engine.begin() as conn:
        conn.exec_driver_sql(f"UPDATE {TABLE} SET visibility = {up_sql(dialect)}")
    maintain(engine)


def full_scan(engine: sa.Engine, rows: int, serial: bool = False) -> float:
    with engine.connect() as conn:
        if serial and engine.dialect.name == "postgresql":
            conn.exec_driver_sql("SET LOCAL max_parallel_workers_per_gather = 0")
        start = time.perf_counter()
        counted = conn.exec_driver_sql(FULL_SCAN).one()
        seconds = time.perf_counter() - start
    if tuple(counted) != (rows, rows, rows):
        raise SystemExit(f"full scan counted {tuple(counted)}, expected {rows} rows")
    return seconds


def check(engine: sa.Engine, rows: int) -> float:
    change, dialect = the_change(), for_dialect(engine.dialect)
    with engine.connect() as conn:
        schema = Schema.reflect(conn, change.tables())
    laws = datacheck.laws(dialect, change.table_syncs(schema), change.links(schema),
                          {TABLE: schema.table(TABLE)}, derived_only=False)
    start = time.perf_counter()
    findings = datacheck.check_rows(engine, dialect, laws)
    seconds = time.perf_counter() - start
    if findings:
        raise SystemExit(f"the check found broken rows in a consistent table: {findings[0].describe()}")
    return seconds


def measure(dialect: str, rows: int, reps: int, quiet: bool) -> list[str]:
    engine = make_engine(dialect)
    try:
        prepare(engine, rows)
        variants = {"full scan": full_scan, "check": check,
                    "serial scan": lambda engine, rows: full_scan(engine, rows, serial=True)}
        times: dict[str, list[float]] = {name: [] for name in variants}
        for rep in range(reps):
            order = list(variants)[rep % 3:] + list(variants)[:rep % 3]
            for name in order:
                times[name].append(variants[name](engine, rows))
                if not quiet:
                    print(f"  {dialect} rep {rep + 1}: {name} {times[name][-1]:.3f} s", file=sys.stderr)
        scan, serial, checked = (statistics.median(times[name]) for name in ("full scan", "serial scan", "check"))
        ratio = checked / scan
        verdict = "meets" if ratio <= TARGET else "MISSES"
        return [dialect, f"{rows:,}", f"{scan:.3f}", f"{serial:.3f}", f"{checked:.3f}", f"{ratio:.2f}x",
                f"{checked / serial:.2f}x", f"{verdict} <= {TARGET:g}x"]
    finally:
        drop_all(engine)
        engine.dispose()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dialect", nargs="+", choices=DIALECTS, default=["postgresql", "mysql", "sqlite"])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    results = [measure(dialect, args.rows, args.reps, args.quiet) for dialect in args.dialect]
    print(markdown(["dialect", "rows", "full scan s", "serial scan s", "check s", "check / scan", "check / serial",
                    "target (check / scan)"], results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
