"""The throttle (crossfade/throttle.py) on real replication pairs (scripts/replicas start):
what looking costs, and how fast a wait starts and ends.

    python benchmarks/throttle.py [--rows 300000] [--reps 3] [--pair postgresql mysql]

Pairs: PostgreSQL primary 127.0.0.1:5434 -> replica 5433, MariaDB 3321 -> 3322 (database
crossfade_bench on each primary). Per pair, interleaved per repetition, medians:
  off        migrate with max_lag=None: no look at all (the baseline of this run)
  watching   migrate with the default max_lag (1 s; on MariaDB with --replica the replica): a look
             at most every LOOK_EVERY seconds; reported as a ratio to `off` (alternating which runs first),
             and the median time of one look (200 looks) as a share of LOOK_EVERY
  pause      migrate while the replica is paused (PostgreSQL pg_wal_replay_pause, MariaDB STOP
             REPLICA SQL_THREAD) from the start; resumed 2 s after the first wait. Reported:
             seconds from the pause to the first wait (PostgreSQL must see replay stand still for
             max_lag), and from the resume to the next committed batch.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time

import sqlalchemy as sa
from _common import SOURCE, TABLE, drop_all, images_table, make_source, the_change

from crossfade.runner import Runner
from crossfade.throttle import LOOK_EVERY, Throttle, ThrottleOptions

PAIRS = {
    "postgresql": ("postgresql+psycopg://postgres@127.0.0.1:5434/crossfade_bench", 5433,
                   "SELECT pg_wal_replay_pause()", "SELECT pg_wal_replay_resume()"),
    "mysql": ("mysql+pymysql://root@127.0.0.1:3321/crossfade_bench", 3322,
              "STOP REPLICA SQL_THREAD", "START REPLICA SQL_THREAD"),
}
HOLD = 2.0  # seconds the replica stays paused after the first wait


def engines(pair: str) -> tuple[sa.Engine, sa.Engine, str]:
    url, replica_port, _, _ = PAIRS[pair]
    parsed = sa.make_url(url)
    server = sa.URL.create(parsed.drivername, parsed.username, host=parsed.host, port=parsed.port,
                           database="postgres" if pair == "postgresql" else None)
    with sa.create_engine(server, isolation_level="AUTOCOMMIT").connect() as conn:
        if pair == "postgresql":
            if not conn.exec_driver_sql("SELECT 1 FROM pg_database WHERE datname = 'crossfade_bench'").first():
                conn.exec_driver_sql("CREATE DATABASE crossfade_bench")
        else:
            conn.exec_driver_sql("CREATE DATABASE IF NOT EXISTS crossfade_bench")
    replica_url = parsed.set(port=replica_port).render_as_string(hide_password=False)
    return sa.create_engine(url), sa.create_engine(replica_url), replica_url


def sql(engine: sa.Engine, statement: str) -> None:
    with engine.connect() as conn:
        conn.exec_driver_sql(statement)
        conn.commit()


def setup(primary: sa.Engine, change_id: str) -> None:
    drop_all(primary)
    with primary.begin() as conn:
        images_table(primary.dialect.name, expanded=False).create(conn)
        conn.exec_driver_sql(f"INSERT INTO {TABLE} (id, name, is_public) SELECT id, name, is_public FROM {SOURCE}")
    Runner(primary, throttle=ThrottleOptions(max_lag=None)).expand(the_change(change_id))


def caught_up(pair: str, primary: sa.Engine, replica: sa.Engine) -> None:
    for _ in range(600):
        with primary.connect() as conn:
            if pair == "postgresql":
                done = conn.exec_driver_sql("SELECT bool_and(replay_lsn >= pg_current_wal_lsn()) "
                                            "FROM pg_stat_replication").scalar()
            else:
                target = conn.exec_driver_sql("SELECT @@gtid_binlog_pos").scalar()
                with replica.connect() as r:
                    done = r.exec_driver_sql("SELECT @@gtid_slave_pos").scalar() == target
        if done:
            return
        time.sleep(0.1)
    raise SystemExit("the replica did not catch up")


def migrate(pair: str, primary: sa.Engine, replica: sa.Engine, options: ThrottleOptions, rep: int,
            on_progress=None) -> float:
    change_id = f"bench_throttle_{rep}"
    setup(primary, change_id)
    caught_up(pair, primary, replica)  # the setup's own writes are no lag of the migrate timed
    started = time.perf_counter()
    Runner(primary, throttle=options, on_progress=lambda p: on_progress and p.waiting and on_progress(p.waiting)
           ).migrate(the_change(change_id))
    return time.perf_counter() - started


def paused_run(pair: str, primary: sa.Engine, replica: sa.Engine, options: ThrottleOptions, rep: int) -> dict:
    _, _, pause, resume = PAIRS[pair]
    seen: dict[str, float] = {}

    def on_progress(progress) -> None:
        now = time.perf_counter()
        if progress.waiting and "wait" not in seen:
            seen["wait"] = now
            threading.Timer(HOLD, lambda: (seen.setdefault("resume", time.perf_counter()), sql(replica, resume))).start()
        elif not progress.waiting and "resume" in seen and "batch" not in seen:
            seen["batch"] = now

    change_id = f"bench_throttle_{rep}"
    setup(primary, change_id)
    caught_up(pair, primary, replica)
    sql(replica, pause)
    seen["pause"] = time.perf_counter()
    Runner(primary, throttle=options, on_progress=on_progress).migrate(the_change(change_id))
    sql(replica, resume)
    if "batch" not in seen:
        raise SystemExit(f"{pair}: the backfill ended before it waited for the paused replica: give it more --rows")
    return {"to_wait": seen["wait"] - seen["pause"], "to_resume": seen["batch"] - seen["resume"]}


def look_seconds(primary: sa.Engine, options: ThrottleOptions) -> float:
    """The median time of one look at every source (Throttle.reason)."""
    throttle = Throttle(primary, options).check_ready()
    try:
        took = []
        for _ in range(200):
            started = time.perf_counter()
            throttle.reason()
            took.append(time.perf_counter() - started)
        return statistics.median(took)
    finally:
        throttle.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--pair", nargs="+", default=list(PAIRS), choices=list(PAIRS))
    args = parser.parse_args()
    for pair in args.pair:
        primary, replica, replica_url = engines(pair)
        make_source(primary, args.rows)
        watching = ThrottleOptions(replicas=(replica_url,) if pair == "mysql" else ())
        times: dict[str, list[float]] = {"off": [], "watching": []}
        pauses: list[dict] = []
        waits: list[str] = []
        for rep in range(args.reps):
            order = ["off", "watching"] if rep % 2 == 0 else ["watching", "off"]  # no order effect
            for variant in order:
                options = watching if variant == "watching" else ThrottleOptions(max_lag=None)
                times[variant].append(migrate(pair, primary, replica, options, rep, waits.append))
            pauses.append(paused_run(pair, primary, replica, watching, rep))
        look = look_seconds(primary, watching)
        off, on = statistics.median(times["off"]), statistics.median(times["watching"])
        print(f"{pair}: {args.rows} rows, median of {args.reps}: migrate {off:.2f} s unthrottled, "
              f"{on:.2f} s watching the replica = {on / off:.3f}x ({len(waits)} looks found it lagging"
              + (f", e.g. {waits[0]})" if waits else ")"))
        print(f"{pair}: one look at every source {look * 1000:.2f} ms (median of 200), at most one per "
              f"{LOOK_EVERY} s of backfill = {look / LOOK_EVERY:.2%} of its time")
        print(f"{pair}: paused replica: first wait {statistics.median(p['to_wait'] for p in pauses):.2f} s "
              f"after the pause (max lag 1 s); next batch {statistics.median(p['to_resume'] for p in pauses):.3f} s "
              "after the resume")
        drop_all(primary)
        primary.dispose()
        replica.dispose()


if __name__ == "__main__":
    main()
