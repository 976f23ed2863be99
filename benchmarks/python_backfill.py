"""Python backfill (compute_column): crossfade's batched migrate vs the same callable in ONE loop.

    python benchmarks/python_backfill.py [--rows 100000] [--dialect sqlite postgresql mysql] [--reps 3]
                                         [--batch-size N]

The change is Keystone 003 (examples/keystone/k003_credential_encryption): `credential.blob`
encrypted in Python into `encrypted_blob` + `key_hash`, writes blocked meanwhile. Setup per
measurement (untimed): release N's `credential` table with --rows rows, then Runner.expand (the
new nullable columns, the blob relaxed, the blocking triggers).
Timed, interleaved per repetition:
  loop       one plain loop over the table: SELECT id, blob of every row, the same callable over
             all of them, then one executemany UPDATE ... WHERE id = ?, in one transaction (no
             batches, no checkpoint, no lock released until the end: what a one-off script does)
  crossfade  Runner(engine).migrate(change): keyed batches (default: sized to ~40 ms each, or
             --batch-size rows), each one transaction with its checkpoint, past the block
Reported: rows/s of each (median over --reps) and the ratio crossfade / loop (1.0 = as fast as
the loop; higher is faster), per dialect. Every row is checked encrypted after each run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import sqlalchemy as sa
from _common import DIALECTS, URLS, _create_database, make_engine, markdown

from crossfade.loader import import_file
from crossfade.runner import Runner

K003 = import_file(Path(__file__).resolve().parents[1] / "examples" / "keystone" / "k003_credential_encryption"
                   / "change.py")
CREDENTIAL = K003.metadata.tables["credential"]


def fresh(engine: sa.Engine, rows: int) -> None:
    """Release N's table with `rows` credentials, then expand (untimed)."""
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE IF EXISTS credential")
        conn.exec_driver_sql("DROP TABLE IF EXISTS crossfade_state")
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql("DROP FUNCTION IF EXISTS crossfade_credential_sync() CASCADE")
        K003.metadata.create_all(conn)
        chunk = 10_000
        for start in range(0, rows, chunk):
            conn.execute(CREDENTIAL.insert(), [
                {"id": f"{i:064d}"[-16:], "user_id": f"user{i % 97}", "project_id": None,
                 "blob": f'{{"access": "a{i}", "secret": "s{i * 7919}"}}', "type": "ec2", "extra": None}
                for i in range(start, min(rows, start + chunk))])
    Runner(engine).expand(K003.change)


def one_loop(engine: sa.Engine) -> None:
    """The same callable over every row in one pass, as a one-off script would."""
    credential = sa.Table("credential", sa.MetaData(), autoload_with=engine)
    with engine.begin() as conn:
        writing, _ = Runner(engine).dialect.writing_guard()  # the same way past the block as crossfade
        for statement in writing:
            conn.exec_driver_sql(statement)
        if engine.dialect.name == "sqlite":  # SQLite: no session mark; the loop drops the block, as a script would
            for name in ("crossfade_credential_insert", "crossfade_credential_update"):
                conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {name}")
        rows = conn.execute(sa.select(credential.c.id, credential.c.blob)).all()
        values = K003.encryption.encrypt_rows(rows)
        conn.execute(credential.update().where(credential.c.id == sa.bindparam("key"))
                     .values(encrypted_blob=sa.bindparam("e"), key_hash=sa.bindparam("h")),
                     [{"key": r.id, "e": e, "h": h} for r, (e, h) in zip(rows, values)])
        if engine.dialect.name == "mysql":
            conn.exec_driver_sql("SET @crossfade_writer = NULL")


def with_crossfade(engine: sa.Engine, batch_size: int | None) -> None:
    Runner(engine, batch_size=batch_size).migrate(K003.change)


def check_encrypted(engine: sa.Engine, rows: int) -> None:
    with engine.connect() as conn:
        done = conn.execute(sa.text("SELECT count(*) FROM credential WHERE encrypted_blob IS NOT NULL "
                                    "AND key_hash IS NOT NULL")).scalar()
    if done != rows:
        raise SystemExit(f"only {done} of {rows} rows encrypted")


def own_engine(dialect: str) -> sa.Engine:
    """A database of this benchmark's own (its name + _python_backfill): other benchmarks drop
    crossfade_state in theirs."""
    if dialect == "sqlite":
        return make_engine(dialect)
    base = sa.make_url(URLS[dialect])
    url = base.set(database=f"{base.database}_python_backfill")
    _create_database(url)
    return sa.create_engine(url)


def measure(dialect: str, rows: int, reps: int, batch_size: int | None) -> dict[str, float]:
    engine = own_engine(dialect)
    times: dict[str, list[float]] = {"loop": [], "crossfade": []}
    try:
        for _ in range(reps):
            for name in ("loop", "crossfade"):
                fresh(engine, rows)
                started = time.perf_counter()
                one_loop(engine) if name == "loop" else with_crossfade(engine, batch_size)
                times[name].append(time.perf_counter() - started)
                check_encrypted(engine, rows)
    finally:
        engine.dispose()
    return {name: rows / statistics.median(seconds) for name, seconds in times.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--dialect", nargs="+", default=list(DIALECTS), choices=DIALECTS)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=None)
    args = parser.parse_args(argv)
    table = []
    for dialect in args.dialect:
        rates = measure(dialect, args.rows, args.reps, args.batch_size)
        table.append([dialect, f"{args.rows:,}", f"{rates['loop']:,.0f}", f"{rates['crossfade']:,.0f}",
                      f"{rates['crossfade'] / rates['loop']:.2f}"])
        print(f"{dialect}: loop {rates['loop']:,.0f} rows/s, crossfade {rates['crossfade']:,.0f} rows/s, "
              f"ratio {rates['crossfade'] / rates['loop']:.2f}", file=sys.stderr)
    print(markdown(["dialect", "rows", "one loop rows/s", "crossfade rows/s", "crossfade / loop"], table))


if __name__ == "__main__":
    main()
