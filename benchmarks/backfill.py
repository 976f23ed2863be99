"""Backfill: crossfade's batched migrate vs ONE set-based UPDATE, with a concurrent writer.

    python benchmarks/backfill.py [--rows 1000000] [--dialect sqlite postgresql mysql] [--reps 3]
                                  [--variants default jobs=2 jobs=4 batch_size=20000]

Setup per measurement (untimed): release N's table with --rows rows, then
Runner(engine).expand(change) (new NULL-able column + crossfade's triggers).
Timed:
  set-based    UPDATE images SET visibility = <up(is_public)> WHERE visibility IS NULL
               (one statement, the same triggers installed, the same expression)
  default      Runner(engine).migrate(change): crossfade's defaults (batches adapting to
               DEFAULT_BATCH_SECONDS; on SQLite a rest after each batch)
  K=V[,K=V]    Runner(engine, K=V, ...).migrate(change), e.g. jobs=2 (two workers over
               disjoint key ranges, each with its own connection), batch_size=5000,
               batch_seconds=0.1, pause=0
crossfade runs on its own pooled engine, as under the crossfade command. Meanwhile a writer
thread on its own connection loops (autocommit, ~1 statement / 2 ms): INSERT a release-N row,
UPDATE a random row's is_public. Reported: its worst single-statement latency (stall) and p99
while the backfill runs, and the batches' count and median size. Variants are interleaved per
repetition; figures are medians. Ratios are within one run. Each variant gets a verdict against
DESIGN 9's targets (time <= 1.0x the set-based UPDATE on PostgreSQL and MariaDB, <= 1.5x on
SQLite; the writer's worst stall over all runs < 50 ms), and a last line per dialect says whether
crossfade's default and its best --jobs variant meet both.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import threading
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
    out_of_sync,
    the_change,
)

from crossfade import backfill
from crossfade.runner import Runner

WRITER_PAUSE = 0.002
SET_BASED = "set-based"
DEFAULT = "default"
TIME_TARGETS = {"postgresql": 1.0, "mysql": 1.0, "sqlite": 1.5}  # x the set-based UPDATE's time (DESIGN 9)
STALL_TARGET = 0.050  # the writer's worst stall


def runner_options(variant: str) -> dict:
    """`default` -> {}; `batch_size=5000,pause=0` -> {"batch_size": 5000, "pause": 0.0}."""
    if variant == DEFAULT:
        return {}
    options = {}
    for item in variant.split(","):
        name, _, value = item.partition("=")
        options[name] = int(value) if name in ("batch_size", "jobs") else float(value)
    backfill.check_options(**options)
    return options


def describe(variant: str) -> str:
    if variant == SET_BASED:
        return "set-based UPDATE"
    if variant == DEFAULT:
        return f"default (adaptive, {backfill.DEFAULT_BATCH_SECONDS} s)"
    return variant


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
        except BaseException as exc:  # noqa: BLE001 (reported by the main thread)
            self.error = exc

    def during(self, t0: float, t1: float) -> list[float]:
        return [lat for start, lat in self.samples if t0 <= start <= t1]


def setup(engine: sa.Engine, ddl_engine: sa.Engine, change_id: str, rows: int | None = None) -> None:
    """Release N's table afresh from the source rows (the first `rows` of them), expanded."""
    drop_all(engine)
    upto = "" if rows is None else f" WHERE id <= {int(rows)}"
    with engine.begin() as conn:
        images_table(engine.dialect.name, expanded=False).create(conn)
        conn.exec_driver_sql(f"INSERT INTO {TABLE} (id, name, is_public) SELECT id, name, is_public FROM {SOURCE}"
                             + upto)
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql(f"SELECT setval('{TABLE}_id_seq', (SELECT max(id) FROM {TABLE}))")
    maintain(engine)
    Runner(ddl_engine).expand(the_change(change_id))
    maintain(engine)


def run_once(engine: sa.Engine, ddl_engine: sa.Engine, rows: int, variant: str, rep: int) -> dict:
    change_id = f"bench_backfill_{rep}"
    setup(engine, ddl_engine, change_id)
    sizes: list[int] = []
    writer = Writer(engine, rows)
    writer.start()
    time.sleep(0.3)  # the writer is warm
    t0 = time.perf_counter()
    if variant == SET_BASED:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"UPDATE {TABLE} SET visibility = CASE WHEN is_public THEN 'public' "
                                 "ELSE 'shared' END WHERE visibility IS NULL")
    else:
        runner = Runner(ddl_engine, **runner_options(variant),
                        on_progress=lambda progress: sizes.append(progress.batch_size))
        runner.migrate(the_change(change_id))
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
            "writes": len(lat), "batches": len(sizes), "rows": statistics.median(sizes) if sizes else 0}


def run_dialect(dialect: str, rows: int, reps: int, variants: list[str], log) -> dict:
    engine = make_engine(dialect)
    # crossfade's own engine with its own pool, as the crossfade command has: its DDL session
    # settings must not leak into the writer's pool.
    ddl_engine = sa.create_engine(engine.url, connect_args={"timeout": 120} if dialect == "sqlite" else {})
    make_source(engine, rows)
    variants = [SET_BASED, *variants]
    results: dict = {v: [] for v in variants}
    for rep in range(reps):
        order = variants[rep % len(variants):] + variants[:rep % len(variants)]
        for variant in order:
            r = run_once(engine, ddl_engine, rows, variant, rep)
            results[variant].append(r)
            log(f"  {dialect} rep {rep + 1}/{reps} {variant:>28}: {r['seconds']:7.2f} s, writer worst "
                f"{r['stall'] * 1000:8.1f} ms, p99 {r['p99'] * 1000:7.1f} ms, {r['writes']} writes, "
                f"{r['batches']} batches of median {r['rows']:.0f} rows")
    drop_all(engine)
    engine.dispose()
    ddl_engine.dispose()
    return results


def summarize(dialect: str, results: dict) -> tuple[list[list[str]], str]:
    """Table rows for one dialect, and the verdict lines for its default and best jobs variant."""
    time_target = TIME_TARGETS[dialect]
    base = statistics.median(r["seconds"] for r in results[SET_BASED])
    rows, verdicts = [], {}
    for variant, runs in results.items():
        seconds = statistics.median(r["seconds"] for r in runs)
        stall = statistics.median(r["stall"] for r in runs)
        worst = max(r["stall"] for r in runs)
        ratio = seconds / base
        verdicts[variant] = (ratio, worst)
        verdict = "-" if variant == SET_BASED else (f"{'ok' if ratio <= time_target else 'MISS'} time; "
                                                   f"{'ok' if worst < STALL_TARGET else 'MISS'} stall")
        batches = "-" if variant == SET_BASED else (
            f"{statistics.median(r['batches'] for r in runs):.0f} x {statistics.median(r['rows'] for r in runs):,.0f}")
        rows.append([dialect, describe(variant), f"{seconds:.2f}", f"{ratio:.2f}",
                     f"{stall * 1000:.0f} (max {worst * 1000:.0f})",
                     f"{statistics.median(r['p99'] for r in runs) * 1000:.1f}",
                     str(int(statistics.median(r["writes"] for r in runs))), batches, verdict])
    lines = []
    parallel = [v for v in verdicts if v.startswith("jobs=")]
    best = min(parallel, key=lambda v: verdicts[v][0]) if parallel else None
    for variant in filter(None, [DEFAULT if DEFAULT in verdicts else None, best]):
        ratio, worst = verdicts[variant]
        met = ratio <= time_target and worst < STALL_TARGET
        lines.append(f"{dialect}: {describe(variant)} {'MEETS' if met else 'MISSES'} the targets: {ratio:.2f}x "
                     f"set-based (target <= {time_target:g}x), writer's worst stall {worst * 1000:.0f} ms "
                     f"(target < {STALL_TARGET * 1000:.0f} ms)")
    return rows, "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dialect", nargs="+", choices=DIALECTS, default=list(DIALECTS))
    parser.add_argument("--variants", nargs="+", default=[DEFAULT, "jobs=2", "jobs=4", "batch_size=20000"],
                        help="'default' or Runner options as K=V[,K=V] (jobs, batch_size, batch_seconds, pause)")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    for variant in args.variants:
        try:
            runner_options(variant)
        except (ValueError, TypeError) as exc:
            parser.error(f"variant {variant!r}: {exc}")
    log = (lambda m: None) if args.quiet else (lambda m: print(m, file=sys.stderr, flush=True))

    print(f"# crossfade backfill: {args.rows:,} rows, median of {args.reps} interleaved runs, "
          f"concurrent writer (1 autocommit INSERT/UPDATE every ~{WRITER_PAUSE * 1000:.0f} ms)")
    print(f"# python benchmarks/backfill.py --rows {args.rows} --reps {args.reps} "
          f"--dialect {' '.join(args.dialect)} --variants {' '.join(args.variants)}")
    print()
    headers = ["dialect", "method", "seconds", "vs set-based", "writer worst stall ms", "writer p99 ms",
               "writes", "batches x rows", f"targets (<=1x, SQLite 1.5x; stall<{STALL_TARGET * 1000:.0f}ms)"]
    rows, verdicts = [], []
    started = time.perf_counter()
    for dialect in args.dialect:
        dialect_rows, verdict = summarize(dialect, run_dialect(dialect, args.rows, args.reps, args.variants, log))
        rows += dialect_rows
        verdicts.append(verdict)
        print(markdown(headers, rows), file=sys.stderr, flush=True)
    print(markdown(headers, rows))
    print()
    print("(seconds: median wall time of the whole backfill; stall: median over runs of the writer's worst "
          "single statement, max over runs in brackets, which the verdict uses; batches x rows: medians, "
          f"rows per batch; total run {time.perf_counter() - started:.0f} s)")
    for verdict in filter(None, verdicts):
        print(verdict)
    return 0


if __name__ == "__main__":
    sys.exit(main())
