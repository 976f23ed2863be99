"""Trigger write overhead: crossfade's sync triggers vs no trigger vs a hand-written trigger.

    python benchmarks/triggers.py [--rows 200000] [--dialect sqlite postgresql mysql] [--reps 5]

Workloads (one statement each, over every row, timed with its commit):
  insert            INSERT INTO images (name, is_public) SELECT ... (release N: old column only)
  update synced     UPDATE images SET is_public = NOT is_public      (the synced old column)
  update unrelated  UPDATE images SET name = '...'                   (a column no trigger cares about)
Variants (same table shape: release N's table plus the new NULL-able column):
  none         no trigger at all
  hand-written the same sync law written the most straightforward way per dialect
  crossfade    installed by crossfade.runner.Runner(engine).expand(change)
  floor        PostgreSQL only: a BEFORE UPDATE trigger whose WHEN is false, so it never runs. It
               is the least any BEFORE UPDATE row trigger costs: PostgreSQL locks the row first.
Every workload gets a freshly built table per variant and repetition; variants are interleaved
(rotated each repetition) and the figure reported is the median. Ratios are within one run.
"""

from __future__ import annotations

import argparse
import sys
import time

import sqlalchemy as sa
from _common import (
    DIALECTS,
    HAND_FUNCTION,
    SOURCE,
    TABLE,
    drop_all,
    images_table,
    maintain,
    make_engine,
    make_source,
    markdown,
    median,
    out_of_sync,
    the_change,
    timed,
)

from crossfade.runner import Runner

VARIANTS = ("none", "hand", "crossfade")
WORKLOADS = ("insert", "update synced", "update unrelated")

# --- hand-written triggers: the same law, the most straightforward way per dialect ----------

HAND = {
    # One plpgsql BEFORE INSERT OR UPDATE trigger, no WHEN clause.
    "postgresql": [
        f"""CREATE FUNCTION {HAND_FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    IF NEW.visibility IS NULL THEN
      NEW.visibility := CASE WHEN NEW.is_public THEN 'public' ELSE 'shared' END;
    ELSIF NEW.is_public IS DISTINCT FROM (NEW.visibility = 'public') THEN
      NEW.is_public := NEW.visibility = 'public';
    END IF;
  ELSIF NEW.visibility IS DISTINCT FROM OLD.visibility THEN
    IF NEW.is_public IS DISTINCT FROM (NEW.visibility = 'public') THEN
      NEW.is_public := NEW.visibility = 'public';
    END IF;
  ELSIF NEW.is_public IS DISTINCT FROM OLD.is_public THEN
    IF NEW.is_public IS DISTINCT FROM (NEW.visibility = 'public') THEN
      NEW.visibility := CASE WHEN NEW.is_public THEN 'public' ELSE 'shared' END;
    END IF;
  END IF;
  RETURN NEW;
END $$""",
        f"CREATE TRIGGER bench_hand BEFORE INSERT OR UPDATE ON {TABLE} FOR EACH ROW EXECUTE FUNCTION {HAND_FUNCTION}()",
    ],
    # BEFORE INSERT + BEFORE UPDATE with SET NEW.
    "mysql": [
        f"""CREATE TRIGGER bench_hand_ins BEFORE INSERT ON {TABLE} FOR EACH ROW
BEGIN
  IF NEW.visibility IS NULL THEN
    SET NEW.visibility = CASE WHEN NEW.is_public THEN 'public' ELSE 'shared' END;
  ELSEIF NOT (NEW.is_public <=> (NEW.visibility = 'public')) THEN
    SET NEW.is_public = (NEW.visibility = 'public');
  END IF;
END""",
        f"""CREATE TRIGGER bench_hand_upd BEFORE UPDATE ON {TABLE} FOR EACH ROW
BEGIN
  IF NOT (NEW.visibility <=> OLD.visibility) THEN
    IF NOT (NEW.is_public <=> (NEW.visibility = 'public')) THEN
      SET NEW.is_public = (NEW.visibility = 'public');
    END IF;
  ELSEIF NOT (NEW.is_public <=> OLD.is_public) THEN
    IF NOT (NEW.is_public <=> (NEW.visibility = 'public')) THEN
      SET NEW.visibility = CASE WHEN NEW.is_public THEN 'public' ELSE 'shared' END;
    END IF;
  END IF;
END""",
    ],
    # AFTER INSERT / AFTER UPDATE, each rule an UPDATE ... WHERE rowid = NEW.rowid (no WHEN clause).
    "sqlite": [
        f"""CREATE TRIGGER bench_hand_ins AFTER INSERT ON {TABLE} FOR EACH ROW
BEGIN
  UPDATE {TABLE} SET visibility = CASE WHEN NEW.is_public THEN 'public' ELSE 'shared' END
    WHERE rowid = NEW.rowid AND NEW.visibility IS NULL;
  UPDATE {TABLE} SET is_public = (NEW.visibility = 'public')
    WHERE rowid = NEW.rowid AND NEW.visibility IS NOT NULL AND NEW.is_public IS NOT (NEW.visibility = 'public');
END""",
        f"""CREATE TRIGGER bench_hand_upd AFTER UPDATE ON {TABLE} FOR EACH ROW
BEGIN
  UPDATE {TABLE} SET is_public = (NEW.visibility = 'public')
    WHERE rowid = NEW.rowid AND NEW.visibility IS NOT OLD.visibility
      AND NEW.is_public IS NOT (NEW.visibility = 'public');
  UPDATE {TABLE} SET visibility = CASE WHEN NEW.is_public THEN 'public' ELSE 'shared' END
    WHERE rowid = NEW.rowid AND NEW.visibility IS OLD.visibility AND NEW.is_public IS NOT OLD.is_public
      AND NEW.is_public IS NOT (NEW.visibility = 'public');
END""",
    ],
}

# What PostgreSQL charges for having any BEFORE UPDATE row trigger, before deciding not to run it.
FLOOR = [
    f"CREATE FUNCTION {HAND_FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$",
    (f"CREATE TRIGGER bench_floor BEFORE UPDATE ON {TABLE} FOR EACH ROW WHEN (false) "
     f"EXECUTE FUNCTION {HAND_FUNCTION}()"),
]


def variants_for(dialect: str) -> tuple[str, ...]:
    return VARIANTS + (("floor",) if dialect == "postgresql" else ())


def setup(engine: sa.Engine, variant: str, loaded: bool) -> None:
    """A fresh table for `variant`; `loaded` fills it with every source row, already in sync."""
    dialect = engine.dialect.name
    drop_all(engine)
    if variant == "crossfade":
        with engine.begin() as conn:
            images_table(dialect, expanded=False).create(conn)
        # A separate engine: crossfade sets session lock timeouts (MariaDB: lock_wait_timeout = 0)
        # on its DDL connection, which must not leak into the benchmark's pooled connections.
        ddl_engine = sa.create_engine(engine.url, poolclass=sa.pool.NullPool)
        Runner(ddl_engine).expand(the_change())
        ddl_engine.dispose()
    else:
        with engine.begin() as conn:
            images_table(dialect, expanded=True).create(conn)
            for sql in {"hand": HAND[dialect], "floor": FLOOR}.get(variant, []):
                conn.exec_driver_sql(sql)
    if loaded:
        with engine.begin() as conn:
            conn.exec_driver_sql(
                f"INSERT INTO {TABLE} (id, name, is_public, visibility) SELECT id, name, is_public, "
                f"CASE WHEN is_public THEN 'public' ELSE 'shared' END FROM {SOURCE}")
    maintain(engine)


def statement(workload: str, rep: int) -> str:
    if workload == "insert":
        return f"INSERT INTO {TABLE} (name, is_public) SELECT name, is_public FROM {SOURCE}"
    if workload == "update synced":
        return f"UPDATE {TABLE} SET is_public = NOT is_public"
    return f"UPDATE {TABLE} SET name = 'renamed-{rep}'"


def run_dialect(dialect: str, rows: int, reps: int, log) -> dict:
    variants = variants_for(dialect)
    engine = make_engine(dialect)
    make_source(engine, rows)
    times = {(w, v): [] for w in WORKLOADS for v in variants}
    for rep in range(reps):
        order = variants[rep % len(variants):] + variants[:rep % len(variants)]
        for workload in WORKLOADS:
            for variant in order:
                setup(engine, variant, loaded=workload != "insert")
                seconds = timed(engine, statement(workload, rep))
                times[workload, variant].append(seconds)
                if variant in ("hand", "crossfade"):
                    bad = out_of_sync(engine)
                    if bad:
                        raise SystemExit(f"{dialect} {variant} {workload}: {bad} rows out of sync")
                    with engine.connect() as conn:
                        nulls = conn.exec_driver_sql(f"SELECT count(*) FROM {TABLE} WHERE visibility IS NULL").scalar()
                    if nulls:
                        raise SystemExit(f"{dialect} {variant} {workload}: {nulls} rows without visibility")
                log(f"  {dialect} rep {rep + 1}/{reps} {workload:<16} {variant:<10} {seconds * 1000:9.1f} ms")
    drop_all(engine)
    engine.dispose()
    return {k: median(v) for k, v in times.items()} | {("spread",) + k: (min(v), max(v)) for k, v in times.items()}


def _floor(result: dict, workload: str, none: float) -> str:
    floor = result.get((workload, "floor"))
    return "-" if floor is None or workload == "insert" else f"{floor / none:.2f}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--dialect", nargs="+", choices=DIALECTS, default=list(DIALECTS))
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--quiet", action="store_true", help="no per-measurement progress lines")
    args = parser.parse_args(argv)
    log = (lambda m: None) if args.quiet else (lambda m: print(m, file=sys.stderr, flush=True))

    print(f"# crossfade trigger overhead: {args.rows:,} rows, median of {args.reps} interleaved runs")
    print(f"# python benchmarks/triggers.py --rows {args.rows} --reps {args.reps} --dialect {' '.join(args.dialect)}")
    print()
    headers = ["dialect", "workload", "none ms", "hand ms", "crossfade ms",
               "crossfade/none", "crossfade/hand", "cf/hand (min)", "hand/none", "floor/none", "targets"]
    rows = []
    started = time.perf_counter()
    for dialect in args.dialect:
        result = run_dialect(dialect, args.rows, args.reps, log)
        for workload in WORKLOADS:
            none, hand, cf = (result[workload, v] for v in ("none", "hand", "crossfade"))
            verdicts = [("ok" if cf / hand <= 1.05 else "MISS") + " cf/hand<=1.05"]
            if dialect == "postgresql" and workload == "update unrelated":
                verdicts.append(("ok" if cf / none <= 1.10 else "MISS") + " cf/none<=1.10")
                floor = result[workload, "floor"]
                verdicts.append(("ok" if cf <= floor * 1.05 else "MISS") + " cf/floor<=1.05")
            rows.append([dialect, workload, f"{none * 1000:.0f}", f"{hand * 1000:.0f}", f"{cf * 1000:.0f}",
                         f"{cf / none:.2f}", f"{cf / hand:.2f}",
                         f"{result['spread', workload, 'crossfade'][0] / result['spread', workload, 'hand'][0]:.2f}",
                         f"{hand / none:.2f}", _floor(result, workload, none), "; ".join(verdicts)])
        print(markdown(headers, rows), file=sys.stderr, flush=True)
    print(markdown(headers, rows))
    print()
    print(f"(ms: median wall time of one statement over all {args.rows:,} rows, commit included; "
          f"total run {time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
