"""crossfade's whole change vs Percona's pt-online-schema-change, on one MariaDB table, with a writer.

    python benchmarks/vs_pt_osc.py [--rows 1000000] [--reps 2] [--variants ...] [--quiet]

Needs pt-online-schema-change, from the Debian package percona-toolkit:
    apt-get install -y percona-toolkit
(without it the benchmark says so and exits 2). MariaDB at CROSSFADE_BENCH_MYSQL
(default mysql+pymysql://root@127.0.0.1:3306/crossfade_bench).

Setup per measurement (untimed): release N's Glance images table (id, name, is_public) with
--rows rows, statistics fresh. Timed, one variant after the other, interleaved per repetition:
  crossfade-cli     `crossfade expand`, `crossfade migrate`, `crossfade contract`, each its own
                    command (as an operator runs them; each pays Python's start-up), the whole
                    change: new column, triggers, backfill, old column dropped, NOT NULL
  crossfade-lib     the same three phases in this process (Runner), no start-up
  pt-osc            pt-online-schema-change --alter "ADD COLUMN visibility ..." (a table copy
                    kept in step by triggers, then an atomic rename), its defaults
  pt-osc-chunk0.04  the same with --chunk-time 0.04 (smaller chunks, kinder to the writer)
  instant           ALTER TABLE ... ADD COLUMN ..., ALGORITHM=INSTANT: the floor, no data moved
Meanwhile a writer thread (release N's application; autocommit; one statement, then 2 ms of
sleep) alternates INSERT INTO images (name) and UPDATE images SET name of a random row: both
are valid before, during and after every variant, so its errors are the tools' doing. It counts
errors (deadlocks, error 1213, apart) and keeps going. A crossfade phase that gives up on a lock
after losing a table rebuild to the writer 3 times is run again (at most 3 times), as an operator
would; its reruns are shown and their time counted. Reported per variant: the median time,
each phase's for crossfade, the ratio to pt-osc's default, and the writer's p50 / p99 / max
latency and errors while the variant ran. Targets (issue 12): crossfade's whole change within
2x pt-osc's time, the writer's p99 under 15 ms.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import sqlalchemy as sa
from _common import SOURCE, TABLE, URLS, autocommit, drop_all, maintain, make_engine, make_source, the_change

from crossfade.errors import LockTimeoutError
from crossfade.runner import Runner

VARIANTS = ("crossfade-cli", "crossfade-lib", "pt-osc", "pt-osc-chunk0.04", "instant")
CHANGE_ID = "bench_vs_pt_osc"
# A phase that gives up on its lock (a rebuild that lost its final metadata lock to the writer
# three times) is run again, as an operator would; the reruns are counted in its time.
RERUNS = 3
WRITER_PAUSE = 0.002
# The crossfade command of this checkout (an editable install may point at another one).
_THIS_CHECKOUT = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
DEADLOCK = 1213
_CHANGE_FILE = f'''
import sys
sys.path.insert(0, {str(Path(__file__).resolve().parent)!r})
from _common import the_change
change = the_change({CHANGE_ID!r})
'''


class Writer(threading.Thread):
    """Release N's application: small autocommit writes every 2 ms, each timed; errors counted."""

    def __init__(self, engine: sa.Engine, rows: int):
        super().__init__(daemon=True)
        self.engine, self.rows = engine, rows
        self.samples: list[tuple[float, float]] = []  # (start, latency)
        self.errors: list[tuple[float, int]] = []  # (start, MariaDB error code)
        self.stop = threading.Event()

    def run(self) -> None:
        rng = random.Random(7)
        insert = sa.text(f"INSERT INTO {TABLE} (name) VALUES ('writer')")
        update = sa.text(f"UPDATE {TABLE} SET name = 'writer' WHERE id = :id")
        with autocommit(self.engine) as conn:
            i = 0
            while not self.stop.is_set():
                start = time.perf_counter()
                try:
                    conn.execute(insert if i % 2 else update, {} if i % 2 else {"id": rng.randint(1, self.rows)})
                except sa.exc.DBAPIError as exc:
                    self.errors.append((start, (getattr(exc.orig, "args", ()) or (0,))[0]))
                self.samples.append((start, time.perf_counter() - start))
                i += 1
                time.sleep(WRITER_PAUSE)

    def during(self, t0: float, t1: float) -> tuple[list[float], list[int]]:
        return ([lat for start, lat in self.samples if t0 <= start <= t1],
                [code for start, code in self.errors if t0 <= start <= t1])


def setup(engine: sa.Engine) -> None:
    """Release N's table: is_public NOT NULL with a default, so release N's writer may leave it out."""
    drop_all(engine)
    with autocommit(engine) as conn:
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS _{TABLE}_new, _{TABLE}_old")
        conn.exec_driver_sql(f"CREATE TABLE {TABLE} (id INT PRIMARY KEY AUTO_INCREMENT, name VARCHAR(50), "
                             "is_public BOOL NOT NULL DEFAULT 0) ENGINE=InnoDB")
        conn.exec_driver_sql(f"INSERT INTO {TABLE} (id, name, is_public) SELECT id, name, is_public FROM {SOURCE}")
    maintain(engine)


def crossfade_cli(url: str, changes: Path, lock_timeout: float) -> dict[str, float]:
    phases = {}
    for phase in ("expand", "migrate", "contract"):
        t = time.perf_counter()
        for rerun in range(RERUNS + 1):
            done = subprocess.run([sys.executable, "-m", "crossfade.cli", phase, str(changes), "--url", url,
                                   "--lock-timeout", str(lock_timeout)],
                                  check=False, capture_output=True, text=True, env=_THIS_CHECKOUT)
            if done.returncode == 0:
                break
            if "could not take the lock" not in done.stdout + done.stderr or rerun == RERUNS:
                raise SystemExit(f"crossfade {phase} failed:\n{done.stdout}{done.stderr}")
            phases[f"{phase} reruns"] = rerun + 1
        phases[phase] = time.perf_counter() - t
    return phases


def crossfade_lib(engine: sa.Engine, lock_timeout: float) -> dict[str, float]:
    runner, change, phases = Runner(engine, lock_timeout=lock_timeout), the_change(CHANGE_ID), {}
    for phase in ("expand", "migrate", "contract"):
        t = time.perf_counter()
        for rerun in range(RERUNS + 1):
            try:
                getattr(runner, phase)(change)
                break
            except LockTimeoutError:
                if rerun == RERUNS:
                    raise
                phases[f"{phase} reruns"] = rerun + 1
        phases[phase] = time.perf_counter() - t
    return phases


def pt_osc(url: sa.URL, *options: str) -> dict[str, float]:
    dsn = f"h={url.host},P={url.port or 3306},u={url.username},D={url.database},t={TABLE}"
    if url.password:
        dsn += f",p={url.password}"
    subprocess.run(["pt-online-schema-change", "--alter", "ADD COLUMN visibility VARCHAR(16) NOT NULL DEFAULT 'shared'",
                    "--execute", "--recursion-method=none", "--no-check-unique-key-change", *options, dsn],
                   check=True, capture_output=True, text=True)
    return {}


def instant(engine: sa.Engine) -> dict[str, float]:
    with autocommit(engine) as conn:
        conn.exec_driver_sql(f"ALTER TABLE {TABLE} ADD COLUMN visibility VARCHAR(16), ALGORITHM=INSTANT")
    return {}


def run_variant(variant: str, engine: sa.Engine, ddl_engine: sa.Engine, rows: int, changes: Path,
                lock_timeout: float) -> dict:
    setup(engine)
    with autocommit(engine) as conn:
        conn.exec_driver_sql("DELETE FROM crossfade_state") if sa.inspect(conn).has_table("crossfade_state") else None
    url = ddl_engine.url
    work = {"crossfade-cli": lambda: crossfade_cli(url.render_as_string(hide_password=False), changes, lock_timeout),
            "crossfade-lib": lambda: crossfade_lib(ddl_engine, lock_timeout),
            "pt-osc": lambda: pt_osc(url),
            "pt-osc-chunk0.04": lambda: pt_osc(url, "--chunk-time", "0.04"),
            "instant": lambda: instant(ddl_engine)}[variant]
    writer = Writer(engine, rows)
    writer.start()
    time.sleep(0.3)  # the writer is warm
    t0 = time.perf_counter()
    phases = work()
    t1 = time.perf_counter()
    writer.stop.set()
    writer.join()
    latencies, errors = writer.during(t0, t1)
    latencies.sort()
    return {"seconds": t1 - t0, "phases": phases, "latencies": latencies, "errors": errors}


def percentile(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(len(values) * q))] if values else float("nan")


def summarize(results: dict[str, list[dict]]) -> list[str]:
    base = statistics.median(r["seconds"] for r in results["pt-osc"]) if results.get("pt-osc") else None
    lines = [(f"{'variant':<18} {'time s':>7} {'/pt-osc':>7} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>8} "
             f"{'errors':>6} {'1213':>5}  phases (s)")]
    for variant, runs in results.items():
        seconds = statistics.median(r["seconds"] for r in runs)
        latencies = sorted(lat for r in runs for lat in r["latencies"])
        errors = [code for r in runs for code in r["errors"]]
        phases = {p: statistics.median(r["phases"].get(p, 0) for r in runs)
                  for p in dict.fromkeys(p for r in runs for p in r["phases"])}
        ratio = f"{seconds / base:.2f}" if base else "-"
        lines.append(f"{variant:<18} {seconds:>7.2f} {ratio:>7} {percentile(latencies, 0.5) * 1000:>7.1f} "
                     f"{percentile(latencies, 0.99) * 1000:>7.1f} {latencies[-1] * 1000 if latencies else 0:>8.1f} "
                     f"{len(errors):>6} {errors.count(DEADLOCK):>5}  "
                     + " ".join(f"{p} {s:.2f}" for p, s in phases.items()))
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--lock-timeout", type=float, default=0.05,
                        help="crossfade's --lock-timeout (MariaDB counts whole seconds: below 1 is NOWAIT)")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    if shutil.which("pt-online-schema-change") is None and any(v.startswith("pt-osc") for v in args.variants):
        print("pt-online-schema-change is missing: apt-get install -y percona-toolkit", file=sys.stderr)
        return 2
    engine = make_engine("mysql")
    # crossfade's own engine and pool, as the crossfade command has: its DDL session settings
    # must not leak into the writer's pool.
    ddl_engine = sa.create_engine(URLS["mysql"], pool_pre_ping=True)
    make_source(engine, args.rows)
    with tempfile.TemporaryDirectory(prefix="crossfade-vs-pt-osc-") as tmp:
        changes = Path(tmp) / "changes"
        changes.mkdir()
        (changes / "0001_visibility.py").write_text(_CHANGE_FILE)
        results: dict[str, list[dict]] = {v: [] for v in args.variants}
        for rep in range(args.reps):
            for variant in args.variants:
                found = run_variant(variant, engine, ddl_engine, args.rows, changes, args.lock_timeout)
                results[variant].append(found)
                if not args.quiet:
                    print(f"rep {rep + 1} {variant}: {found['seconds']:.2f} s, "
                          f"{len(found['errors'])} writer errors", file=sys.stderr, flush=True)
    print(f"MariaDB, {args.rows} rows, writer every {WRITER_PAUSE * 1000:.0f} ms, medians of {args.reps} "
          f"interleaved runs")
    print("\n".join(summarize(results)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
