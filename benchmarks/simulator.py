"""The simulator's own speed: one change, three databases, 2,000 concurrent writes per phase.

    python benchmarks/simulator.py [--writes 2000] [--dialect sqlite postgresql mysql] [--old-sqlite-writers]

Runs `crossfade verify` on Glance's images.is_public -> visibility change (examples/glance) and
prints the wall time per database and in all (target: under 30 s for the three), beside a baseline
measured in the same run: the same number of writes by release N's two writers alone, on release
N's table, without crossfade (the writes' own cost on this machine at this moment; the ratio is
what the simulation adds: phases, crossfade's steps, the oracle's checks).

--old-sqlite-writers also runs SQLite with the simulated applications as they were before
issue 14 (rollback journal, pysqlite's BEGIN, a 60 s busy timeout whose handler sleeps up to
100 ms between tries), to compare the writers' stalls.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from _common import DIALECTS, URLS, _create_database, markdown

from crossfade.loader import load_changes
from crossfade.testing import Settings, simulator, verify
from crossfade.testing.journal import LiveRows, Stage
from crossfade.testing.model import RELEASE_N, plan_tables
from crossfade.testing.workers import Worker

GLANCE = Path(__file__).resolve().parents[1] / "examples" / "glance" / "changes"
TARGET_SECONDS = 30.0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--writes", type=int, default=2000, help="writes per phase")
    parser.add_argument("--dialect", nargs="+", choices=DIALECTS, default=list(DIALECTS))
    parser.add_argument("--old-sqlite-writers", action="store_true",
                        help="also run SQLite with the simulated applications' old SQLite set-up")
    args = parser.parse_args(argv)
    loaded = load_changes(GLANCE)
    [change], [simulated] = loaded.changes, loaded.simulations
    settings = Settings(writes_per_phase=args.writes, values=simulated.values)
    print(f"# simulator: {change.id}, {args.writes} writes per phase, 2 workers per release; "
          f"load average {os.getloadavg()[0]:.1f} at the start")
    print(f"# python benchmarks/simulator.py --writes {args.writes} --dialect {' '.join(args.dialect)}"
          + (" --old-sqlite-writers" if args.old_sqlite_writers else ""))
    print()
    rows, total = [], 0.0
    runs = [(d, False) for d in args.dialect] + ([("sqlite", True)] if args.old_sqlite_writers else [])
    for dialect, old in runs:
        url = _scratch_url(dialect)
        with _old_sqlite_writers() if old else _nothing():
            alone = writes_alone(change, simulated, url, writes=6 * args.writes)
            report = verify(change, simulated.release_n, simulated.release_n1, [url], settings)
        [result] = report.results
        if not old:
            total += result.seconds
        rows.append([dialect + (" (old writers)" if old else ""), f"{result.seconds:.1f}", f"{alone:.1f}",
                     f"{result.seconds / alone:.2f}x", str(result.writes), "ok" if result.ok else "FAIL",
                     result.checks["latency"].summary])
    rows.append(["all", f"{total:.1f}", "", "", "", "", ("ok" if total < TARGET_SECONDS else "MISS")
                 + f" < {TARGET_SECONDS:.0f} s"])
    print(markdown(["database", "verify s", "writes alone s", "ratio", "writes", "checks", "note"], rows))
    return 0


def writes_alone(change, simulated, url: str, *, writes: int) -> float:
    """Seconds release N's two writers take for `writes` writes on release N's table, no crossfade."""
    plans = plan_tables(change, simulated.release_n, simulated.release_n1)
    values = simulator.value_source(plans, simulated.values)
    engine = simulator.application_engine(sa.make_url(url), 8)
    try:
        seeded = simulator.build_release_n(engine, change, plans, simulated.release_n, simulated.release_n1,
                                           values, seed_rows=200, seed=0)
        rows, stage = LiveRows(), Stage("alone")
        for write in seeded:
            rows.add(write.table, write.key)
        workers = [Worker(f"N-{i}", RELEASE_N, engine, list(plans.values()), values, rows, stage, seed=i,
                          busy_budget=simulator.busy_budget(engine.url)) for i in range(2)]
        started = time.perf_counter()
        for worker in workers:
            worker.start()
        while stage.writes_in("alone", RELEASE_N) < writes and any(w.is_alive() for w in workers):
            time.sleep(0.01)
        took = time.perf_counter() - started
        for worker in workers:
            worker.stop()
        for worker in workers:
            worker.join()
        return took
    finally:
        engine.dispose()


def _scratch_url(dialect: str) -> str:
    # Databases of its own: the simulator rebuilds `images`, which the other benchmarks use too.
    if dialect == "sqlite":
        return f"sqlite:///{tempfile.mkdtemp(prefix='crossfade-sim-')}/sim.db"
    url = sa.make_url(URLS[dialect]).set(database="crossfade_bench_sim")
    _create_database(url)  # a fresh server has none
    return url.render_as_string(hide_password=False)


@contextmanager
def _old_sqlite_writers():
    """The simulated SQLite applications as they were: pysqlite's defaults and a 60 s busy timeout."""
    saved = simulator.application_engine, simulator.busy_budget
    simulator.application_engine = lambda url, workers, **options: sa.create_engine(
        url, pool_size=workers, max_overflow=workers, connect_args={"timeout": 60}, **options)
    simulator.busy_budget = lambda url: 0.0
    try:
        yield
    finally:
        simulator.application_engine, simulator.busy_budget = saved


@contextmanager
def _nothing():
    yield


if __name__ == "__main__":
    sys.exit(main())
