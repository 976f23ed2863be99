"""Galera: the writes crossfade's phases abort, and the backfill against a single server's.

    python benchmarks/galera.py [--rows 1000] [--reps 3] [--part aborts backfill]
    PYTHONPATH=/work/main python benchmarks/galera.py --part aborts    # "before": another checkout

Glance's change (images.is_public -> images.visibility) on a 3-node Galera cluster
(CROSSFADE_BENCH_GALERA, three comma-separated URLs; default 127.0.0.1:3311-3313) and on the
single MariaDB server (CROSSFADE_BENCH_MYSQL_SINGLE), each in a database of its own (other
benchmarks running meanwhile are left alone). crossfade runs on node 1; two writers, one on node
2 and one on node 3 (both on the single server), each write one row per ~5 ms in its own
transaction (an ORM's BEGIN ... COMMIT: Galera's wsrep_retry_autocommit would hide aborts of
autocommit statements) and retry a write the cluster aborts with error 1213, as oslo.db does.

(a) aborts: per phase (expand, migrate, contract, each timed from its start to its end plus 0.2 s
    for the other nodes to apply its last statement), the writes aborted with 1213, and how many
    writes were made meanwhile. Release N's writers write during expand and migrate, release N+1's
    (visibility) during contract. Medians over --reps.
(b) backfill: Runner.migrate of --rows rows on the cluster against the same on the single
    server, under the same writers; the ratio of the medians. Repetitions alternate the two.
The crossfade imported is printed first: run it with PYTHONPATH=<checkout> for a before/after.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import threading
import time

import sqlalchemy as sa
from _common import TABLE, markdown, the_change

import crossfade
from crossfade.runner import Runner

GALERA = os.environ.get("CROSSFADE_BENCH_GALERA", ",".join(
    f"mysql+pymysql://root@127.0.0.1:{port}/crossfade_bench_galera" for port in (3311, 3312, 3313))).split(",")
SINGLE = os.environ.get("CROSSFADE_BENCH_MYSQL_SINGLE", "mysql+pymysql://root@127.0.0.1:3306/crossfade_bench_galera")
WRITE_PAUSE = 0.005
APPLY_GRACE = 0.2
DEADLOCK = 1213
PHASES = ("expand", "migrate", "contract")


class Writer(threading.Thread):
    """One application node: a write per ~5 ms, each in its own transaction, retried on 1213."""

    def __init__(self, engine: sa.Engine, rows: int, seed: int, pause: float = WRITE_PAUSE):
        super().__init__(daemon=True)
        self.pause = pause
        self.engine, self.rows, self.rng = engine, rows, random.Random(seed)
        self.release_n1 = False  # writes visibility instead of is_public (contract)
        self.writes: list[float] = []  # commit times
        self.aborts: list[float] = []  # times a write was aborted with 1213
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                self._write_retrying()
                time.sleep(self.pause)
        except BaseException as exc:  # noqa: BLE001 (reported by the main thread)
            self.error = exc

    def _write_retrying(self) -> None:
        for attempt in range(10):
            statement, params = self._statement()  # release N+1's, once contract has begun
            try:
                with self.engine.begin() as conn:
                    conn.execute(statement, params)
                self.writes.append(time.perf_counter())
                return
            except sa.exc.DBAPIError as exc:
                if getattr(exc.orig, "args", (None,))[0] != DEADLOCK:
                    raise
                self.aborts.append(time.perf_counter())
                time.sleep(random.uniform(0.005, 0.01) * (2 ** attempt))
        raise RuntimeError("a write lost 10 tries in a row")

    def _statement(self) -> tuple:
        column, value = ("visibility", "'public'") if self.release_n1 else ("is_public", "TRUE")
        if self.rng.random() < 0.5:
            return sa.text(f"INSERT INTO {TABLE} (name, {column}) VALUES ('writer', {value})"), {}
        return sa.text(f"UPDATE {TABLE} SET {column} = {value} WHERE id = :id"), {"id": self.rng.randint(1, self.rows)}

    def in_window(self, times: list[float], t0: float, t1: float) -> int:
        return sum(1 for t in list(times) if t0 <= t <= t1)


def create_database(url: str) -> None:
    parsed = sa.make_url(url)
    server = sa.URL.create(parsed.drivername, parsed.username, parsed.password, parsed.host, parsed.port)
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE IF NOT EXISTS `{parsed.database}`")
    admin.dispose()


def setup(engine: sa.Engine, rows: int) -> None:
    """Release N's table with `rows` rows, and no crossfade state."""
    with engine.begin() as conn:
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {TABLE}")
        conn.exec_driver_sql("DROP TABLE IF EXISTS crossfade_state")
        conn.exec_driver_sql("DROP TABLE IF EXISTS crossfade_lock")
        conn.exec_driver_sql(f"CREATE TABLE {TABLE} (id int AUTO_INCREMENT PRIMARY KEY, name varchar(50), "
                             "is_public tinyint(1) NOT NULL) ENGINE=InnoDB")
        conn.exec_driver_sql(f"INSERT INTO {TABLE} (name, is_public) SELECT CONCAT('image-', seq), MOD(seq, 2) = 0 "
                             f"FROM seq_1_to_{rows}")


class Database:
    def __init__(self, name: str, urls: list[str], per_node: int = 1, pause: float = WRITE_PAUSE):
        self.name, self.per_node, self.pause = name, per_node, pause
        for url in dict.fromkeys(urls):
            create_database(url)
        self.ddl = sa.create_engine(urls[0])
        self.apps = [sa.create_engine(urls[min(i, len(urls) - 1)]) for i in (1, 2)]

    def dispose(self) -> None:
        for engine in (self.ddl, *self.apps):
            engine.dispose()


def run_once(db: Database, rows: int, rep: int, phases: tuple[str, ...]) -> dict:
    setup(db.ddl, rows)
    time.sleep(0.2)  # the other nodes have the table
    change = the_change(f"bench_galera_{rep}")
    runner = Runner(db.ddl)
    writers = [Writer(engine, rows, seed=rep * 10 + i, pause=db.pause) for i, engine in enumerate(db.apps * db.per_node)]
    for writer in writers:
        writer.start()
    time.sleep(0.3)
    figures = {}
    try:
        for phase in PHASES[:max(PHASES.index(p) for p in phases) + 1]:
            if phase == "contract":
                for writer in writers:
                    writer.release_n1 = True  # release N is drained; release N+1 writes
                time.sleep(0.1)
            t0 = time.perf_counter()
            reruns = run_phase(runner, phase, change)
            t1 = time.perf_counter()
            time.sleep(APPLY_GRACE)
            if phase in phases:
                figures[phase] = {"seconds": t1 - t0,
                                  "aborts": sum(w.in_window(w.aborts, t0, t1 + APPLY_GRACE) for w in writers),
                                  "writes": sum(w.in_window(w.writes, t0, t1 + APPLY_GRACE) for w in writers),
                                  "reruns": reruns}
    finally:
        for writer in writers:
            writer.stop.set()
        for writer in writers:
            writer.join()
    for writer in writers:
        if writer.error is not None:
            raise writer.error
    return figures


def run_phase(runner: Runner, phase: str, change) -> int:
    """Run the phase, again when crossfade's own session on node 1 was aborted with 1213 (an
    operator reruns it; crossfade resumes). Returns the reruns."""
    for rerun in range(5):
        try:
            getattr(runner, phase)(change)
            return rerun
        except sa.exc.DBAPIError as exc:
            if getattr(exc.orig, "args", (None,))[0] != DEADLOCK:
                raise
            print(f"  {phase} aborted with 1213 on crossfade's node: rerun ({str(exc.orig)[:60]})", file=sys.stderr)
    raise RuntimeError(f"{phase} aborted 5 times")


def aborts(galera: Database, reps: int, rows: int, log) -> list[list[str]]:
    runs = []
    for rep in range(reps):
        figures = run_once(galera, rows, rep, PHASES)
        runs.append(figures)
        log(f"  rep {rep + 1}: " + "; ".join(
            f"{p} {f['aborts']} aborted of {f['writes']} writes in {f['seconds']:.2f} s"
            + (f" ({f['reruns']} reruns)" if f["reruns"] else "") for p, f in figures.items()))
    table = []
    for phase in PHASES:
        med = {k: statistics.median(r[phase][k] for r in runs) for k in ("aborts", "writes", "seconds")}
        table.append([phase, f"{med['aborts']:g}", str([r[phase]["aborts"] for r in runs]),
                      f"{med['writes']:g}", f"{med['seconds']:.2f}"])
    return table


def backfill(galera: Database, single: Database, reps: int, rows: int, log) -> tuple[list[list[str]], float]:
    seconds: dict[str, list[float]] = {"single server": [], "galera": []}
    for rep in range(reps):
        order = [("single server", single), ("galera", galera)]
        for name, db in order if rep % 2 == 0 else order[::-1]:
            figures = run_once(db, rows, 100 + rep, ("migrate",))["migrate"]
            seconds[name].append(figures["seconds"])
            log(f"  rep {rep + 1} {name}: migrate {figures['seconds']:.3f} s, {figures['aborts']} aborted writes"
                + (f", {figures['reruns']} reruns" if figures["reruns"] else ""))
    base = statistics.median(seconds["single server"])
    table = [[name, f"{statistics.median(s):.3f}", f"{statistics.median(s) / base:.2f}",
              ", ".join(f"{x:.3f}" for x in s)] for name, s in seconds.items()]
    return table, statistics.median(seconds["galera"]) / base


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--writers-per-node", type=int, default=1)
    parser.add_argument("--pause-ms", type=float, default=WRITE_PAUSE * 1000, help="each writer's rest between writes")
    parser.add_argument("--part", nargs="+", choices=("aborts", "backfill"), default=["aborts", "backfill"])
    args = parser.parse_args(argv)

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    print(f"crossfade from {os.path.dirname(crossfade.__file__)}; {args.rows} rows; {args.reps} reps; "
          f"{args.writers_per_node} writer(s) on each of nodes 2 and 3, one write per ~{args.pause_ms:g} ms each")
    load = {"per_node": args.writers_per_node, "pause": args.pause_ms / 1000}
    galera = Database("galera", GALERA, **load)
    if "aborts" in args.part:
        table = aborts(galera, args.reps, args.rows, log)
        print("\n(a) writes aborted with 1213 per phase, crossfade on node 1 (medians)\n")
        print(markdown(["phase", "aborted writes", "per rep", "writes meanwhile", "phase seconds"], table))
    if "backfill" in args.part:
        single = Database("single", [SINGLE], **load)
        table, ratio = backfill(galera, single, args.reps, args.rows, log)
        print(f"\n(b) backfill of {args.rows} rows under the same writers (medians)\n")
        print(markdown(["database", "migrate seconds", "ratio", "per rep"], table))
        print(f"\nGalera backfill / single server: {ratio:.2f}x (target <= 2x)")
        single.dispose()
    galera.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
