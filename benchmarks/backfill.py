"""Backfill: crossfade's batched migrate vs ONE set-based UPDATE, with a concurrent writer.

    python benchmarks/backfill.py [--rows 1000000] [--dialect sqlite postgresql mysql]
                                  [--batch-sizes 1000 5000 20000] [--reps 3]

Setup per measurement (untimed): release N's table with --rows rows, then
Runner(engine).expand(change) (new NULL-able column + crossfade's triggers).
Timed:
  set-based    UPDATE images SET visibility = <up(is_public)> WHERE visibility IS NULL
               (one statement, the same triggers installed, the same expression)
  batch=N      Runner(engine, batch_size=N).migrate(change)
Meanwhile a writer thread on its own connection loops (autocommit, ~1 statement / 2 ms):
INSERT a release-N row, UPDATE a random row's is_public. Reported: its worst single-statement
latency (stall) and p99 while the backfill runs. Variants are interleaved per repetition;
figures are medians. Ratios are within one run.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import threading
import time

import sqlalchemy as sa

from _common import (DIALECTS, SOURCE, TABLE, drop_all, images_table, maintain, make_engine,
                     make_source, markdown, out_of_sync, the_change)
from crossfade.runner import Runner

WRITER_PAUSE = 0.002
PAUSE = 0.0  # Runner(pause=...) between batches; --pause


class Writer(threading.Thread):
    """Release N's application: small autocommit writes in a loop, each one timed."""

    def __init__(self, engine: sa.Engine, rows: int):
        super().__init__(daemon=True)
        self.engine, self.rows = engine, rows
        self.samples: list[tuple[float, float]] = []  # (start, latency)
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        rng = random.Random(7)
        try:
            with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                if self.engine.dialect.name == "mysql":
                    conn.exec_driver_sql("SET SESSION innodb_lock_wait_timeout = 600")
                insert = sa.text(f"INSERT INTO {TABLE} (name, is_public) VALUES ('writer', TRUE)")
                update = sa.text(f"UPDATE {TABLE} SET is_public = NOT is_public WHERE id = :id")
                i = 0
                while not self.stop.is_set():
                    start = time.perf_counter()
                    if i % 2:
                        conn.execute(insert)
                    else:
                        conn.execute(update, {"id": rng.randint(1, self.rows)})
                    self.samples.append((start, time.perf_counter() - start))
                    i += 1
                    time.sleep(WRITER_PAUSE)
        except BaseException as exc:  # reported by the main thread
            self.error = exc

    def during(self, t0: float, t1: float) -> list[float]:
        return [lat for start, lat in self.samples if t0 <= start <= t1]


def setup(engine: sa.Engine, ddl_engine: sa.Engine, change_id: str) -> None:
    drop_all(engine)
    with engine.begin() as conn:
        images_table(engine.dialect.name, expanded=False).create(conn)
        conn.exec_driver_sql(f"INSERT INTO {TABLE} (id, name, is_public) SELECT id, name, is_public FROM {SOURCE}")
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql(f"SELECT setval('{TABLE}_id_seq', (SELECT max(id) FROM {TABLE}))")
    maintain(engine)
    Runner(ddl_engine).expand(the_change(change_id))
    maintain(engine)


def run_once(engine: sa.Engine, ddl_engine: sa.Engine, rows: int, variant: str | int, rep: int) -> dict:
    change_id = f"bench_backfill_{rep}_{variant}"
    setup(engine, ddl_engine, change_id)
    writer = Writer(engine, rows)
    writer.start()
    time.sleep(0.3)  # the writer is warm
    t0 = time.perf_counter()
    if variant == "set-based":
        with engine.begin() as conn:
            conn.exec_driver_sql(f"UPDATE {TABLE} SET visibility = CASE WHEN is_public THEN 'public' "
                                 "ELSE 'shared' END WHERE visibility IS NULL")
    else:
        Runner(ddl_engine, batch_size=int(variant), pause=PAUSE).migrate(the_change(change_id))
    t1 = time.perf_counter()
    time.sleep(0.1)
    writer.stop.set()
    writer.join()
    if writer.error is not None:
        raise writer.error
    with engine.connect() as conn:
        nulls = conn.exec_driver_sql(f"SELECT count(*) FROM {TABLE} WHERE visibility IS NULL").scalar()
    bad = out_of_sync(engine)
    if nulls or bad:
        raise SystemExit(f"{engine.dialect.name} {variant}: {nulls} NULL, {bad} out-of-sync rows after backfill")
    lat = sorted(writer.during(t0, t1))
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] if lat else float("nan")
    return {"seconds": t1 - t0, "stall": lat[-1] if lat else float("nan"), "p99": p99,
            "writes": len(lat)}


def run_dialect(dialect: str, rows: int, reps: int, batch_sizes: list[int], log) -> dict:
    engine = make_engine(dialect)
    # crossfade's own engine: its DDL session settings must not leak into the writer's pool.
    ddl_engine = sa.create_engine(engine.url, poolclass=sa.pool.NullPool,
                                  connect_args={"timeout": 120} if dialect == "sqlite" else {})
    make_source(engine, rows)
    variants: list[str | int] = ["set-based", *batch_sizes]
    results: dict = {v: [] for v in variants}
    for rep in range(reps):
        order = variants[rep % len(variants):] + variants[:rep % len(variants)]
        for variant in order:
            r = run_once(engine, ddl_engine, rows, variant, rep)
            results[variant].append(r)
            log(f"  {dialect} rep {rep + 1}/{reps} {str(variant):>9}: {r['seconds']:7.2f} s, writer worst "
                f"{r['stall'] * 1000:8.1f} ms, p99 {r['p99'] * 1000:7.1f} ms, {r['writes']} writes")
    drop_all(engine)
    engine.dispose()
    ddl_engine.dispose()
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dialect", nargs="+", choices=DIALECTS, default=list(DIALECTS))
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[1000, 5000, 20000])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--pause", type=float, default=0.0, help="Runner(pause=...) between batches, seconds")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    global PAUSE
    PAUSE = args.pause
    log = (lambda m: None) if args.quiet else (lambda m: print(m, file=sys.stderr, flush=True))

    print(f"# crossfade backfill: {args.rows:,} rows, median of {args.reps} interleaved runs, "
          f"concurrent writer (1 autocommit INSERT/UPDATE every ~{WRITER_PAUSE * 1000:.0f} ms)")
    print(f"# python benchmarks/backfill.py --rows {args.rows} --reps {args.reps} "
          f"--batch-sizes {' '.join(map(str, args.batch_sizes))} --dialect {' '.join(args.dialect)}"
          + (f" --pause {args.pause}" if args.pause else ""))
    print()
    headers = ["dialect", "method", "seconds", "vs set-based", "writer worst stall ms", "writer p99 ms",
               "writes", "targets (<=2x; stall<100ms)"]
    rows = []
    started = time.perf_counter()
    for dialect in args.dialect:
        results = run_dialect(dialect, args.rows, args.reps, args.batch_sizes, log)
        base = statistics.median(r["seconds"] for r in results["set-based"])
        for variant, runs in results.items():
            seconds = statistics.median(r["seconds"] for r in runs)
            stall = statistics.median(r["stall"] for r in runs)
            worst = max(r["stall"] for r in runs)
            p99 = statistics.median(r["p99"] for r in runs)
            writes = int(statistics.median(r["writes"] for r in runs))
            ratio = seconds / base
            verdict = "-" if variant == "set-based" else (
                f"{'ok' if ratio <= 2 else 'MISS'} time; {'ok' if worst < 0.1 else 'MISS'} stall")
            rows.append([dialect, "set-based UPDATE" if variant == "set-based" else f"batch_size={variant}",
                         f"{seconds:.2f}", f"{ratio:.2f}", f"{stall * 1000:.0f} (max {worst * 1000:.0f})",
                         f"{p99 * 1000:.1f}", str(writes), verdict])
        print(markdown(headers, rows), file=sys.stderr, flush=True)
    print(markdown(headers, rows))
    print()
    print("(seconds: median wall time of the whole backfill; stall: median over runs of the writer's worst "
          f"single statement, max over runs in brackets; total run {time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
