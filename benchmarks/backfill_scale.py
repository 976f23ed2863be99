"""Backfill rows/s as the table grows: does crossfade's migrate stay flat from 100k to 5M rows?

    python benchmarks/backfill_scale.py [--sizes 100000 1000000 5000000] [--dialect postgresql mysql]
                                        [--reps 1] [--jobs 1]

pgroll's published figures fall from 53k to 9.4k rows/s between 10k and 300k rows: a batch that
finds its bounds by scanning from the table's start (OFFSET) costs more the deeper it is. crossfade
walks integer keys arithmetically (one index seek per batch), so every batch costs the same.

Setup per measurement (untimed): release N's images table with the first N rows of a source
table, then Runner(engine).expand(change). Timed: Runner(engine, jobs=--jobs).migrate(change) with
crossfade's defaults (batches adapting to 40 ms), no concurrent writer (rows/s of the backfill
alone; benchmarks/backfill.py measures it beside a writer), from the moment migrate recorded
"migrating" (after its fixed-cost verification) to its return. Sizes are interleaved per repetition
(smallest first, then rotated); figures are medians. Printed: rows/s per size and their spread,
(max - min) / max, against DESIGN 9's target (within 15%).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import sqlalchemy as sa
from _common import TABLE, drop_all, make_engine, make_source, markdown, the_change
from backfill import setup  # the same release N table, expanded, as beside a writer

from crossfade.runner import Runner

SPREAD_TARGET = 0.15


def run_once(engine: sa.Engine, rows: int, jobs: int, rep: int) -> tuple[float, float]:
    """Rows per second of one migrate of a `rows`-row table: over the migrate's wall time from
    'migrating' recorded, and as crossfade's progress reports it (from its first batch)."""
    change_id = f"bench_scale_{rep}"
    setup(engine, engine, change_id, rows)
    marks: list[float] = []
    rates: list[float] = []

    def mark_backfill_start(phase: str, step: str) -> None:
        if step == "record migrating":  # verified and recorded: the backfill starts
            marks.append(time.perf_counter())

    Runner(engine, jobs=jobs, on_step=mark_backfill_start,
           on_progress=lambda progress: rates.append(progress.rate)).migrate(the_change(change_id))
    seconds = time.perf_counter() - marks[0]
    with engine.connect() as conn:
        nulls = conn.exec_driver_sql(f"SELECT count(*) FROM {TABLE} WHERE visibility IS NULL").scalar()
    if nulls:
        raise SystemExit(f"{engine.dialect.name} {rows:,} rows: {nulls} NULL after the backfill")
    return rows / seconds, rates[-1]


def run_dialect(dialect: str, sizes: list[int], reps: int, jobs: int, log) -> dict[int, list[tuple[float, float]]]:
    engine = make_engine(dialect)
    make_source(engine, max(sizes))
    found: dict[int, list[tuple[float, float]]] = {size: [] for size in sizes}
    for rep in range(reps):
        order = sizes[rep % len(sizes):] + sizes[:rep % len(sizes)]
        for size in order:
            wall, reported = run_once(engine, size, jobs, rep)
            found[size].append((wall, reported))
            log(f"  {dialect} rep {rep + 1}/{reps} {size:>10,} rows: {wall:10,.0f} rows/s wall, "
                f"{reported:10,.0f} rows/s as crossfade reports")
    drop_all(engine)
    engine.dispose()
    return found


def spread(rates: list[float]) -> float:
    return (max(rates) - min(rates)) / max(rates)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", type=int, default=[100_000, 1_000_000, 5_000_000])
    parser.add_argument("--dialect", nargs="+", choices=["postgresql", "mysql", "sqlite"],
                        default=["postgresql", "mysql"])
    parser.add_argument("--reps", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    if any(size < 1 for size in args.sizes) or args.reps < 1 or args.jobs < 1:
        parser.error("--sizes, --reps and --jobs must be at least 1")
    sizes = sorted(set(args.sizes))
    log = (lambda m: None) if args.quiet else (lambda m: print(m, file=sys.stderr, flush=True))

    print(f"# crossfade backfill rows/s by table size, median of {args.reps} interleaved runs, jobs={args.jobs}, "
          "no concurrent writer")
    print(f"# python benchmarks/backfill_scale.py --sizes {' '.join(map(str, sizes))} "
          f"--dialect {' '.join(args.dialect)} --reps {args.reps} --jobs {args.jobs}")
    print()
    headers = ["dialect", "rows/s", *[f"{size:,} rows" for size in sizes], "spread (max-min)/max",
               f"target (within {SPREAD_TARGET:.0%})"]
    rows = []
    started = time.perf_counter()
    for dialect in args.dialect:
        found = run_dialect(dialect, sizes, args.reps, args.jobs, log)
        for which, label in ((0, "wall"), (1, "as reported")):
            medians = [statistics.median(r[which] for r in found[size]) for size in sizes]
            rows.append([dialect, label, *[f"{rate:,.0f}" for rate in medians], f"{spread(medians):.1%}",
                         "ok" if spread(medians) <= SPREAD_TARGET else "MISS"])
        print(markdown(headers, rows), file=sys.stderr, flush=True)
    print(markdown(headers, rows))
    print()
    print("(wall: the table's rows over the time from migrate's 'migrating' record to its return, which "
          "includes its fixed costs (reflection, planning the ranges); as reported: the rows/s crossfade's "
          f"progress line shows at the end, from its first batch; total run {time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
