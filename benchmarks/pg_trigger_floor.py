"""PostgreSQL: what any BEFORE UPDATE row trigger costs an UPDATE of an unrelated column.

    python benchmarks/pg_trigger_floor.py [reps]

Measures time and WAL bytes of UPDATE images SET name = ... on 200,000 rows for: no trigger,
crossfade, hand-written, a BEFORE UPDATE trigger WHEN (false), BEFORE UPDATE OF is_public, visibility,
and an AFTER UPDATE trigger WHEN (false)."""
import sys, time, statistics
sys.path.insert(0, __import__("os").path.dirname(__file__))
import sqlalchemy as sa
from _common import *
from triggers import setup, HAND, EXTRA
from crossfade.runner import Runner
eng = make_engine("postgresql")
ROWS = 200000
make_source(eng, ROWS)
EXTRA["before_when_false"] = {"postgresql": [
 "CREATE FUNCTION bench_noop() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$",
 "CREATE TRIGGER bench_noop BEFORE UPDATE ON images FOR EACH ROW WHEN (false) EXECUTE FUNCTION bench_noop()"]}
EXTRA["before_of_cols"] = {"postgresql": [
 "CREATE FUNCTION bench_noop() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$",
 "CREATE TRIGGER bench_noop BEFORE UPDATE OF is_public, visibility ON images FOR EACH ROW EXECUTE FUNCTION bench_noop()"]}
EXTRA["after_when_false"] = {"postgresql": [
 "CREATE FUNCTION bench_noop() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$",
 "CREATE TRIGGER bench_noop AFTER UPDATE ON images FOR EACH ROW WHEN (false) EXECUTE FUNCTION bench_noop()"]}
import _common
orig_drop = _common.drop_all
def drop_all2(engine):
    orig_drop(engine)
    with autocommit(engine) as c: c.exec_driver_sql("DROP FUNCTION IF EXISTS bench_noop() CASCADE")
import triggers; triggers.drop_all = drop_all2
variants = ["none", "crossfade", "hand", "before_when_false", "before_of_cols", "after_when_false"]
res = {v: [] for v in variants}; wal = {v: [] for v in variants}
for rep in range(int(sys.argv[1]) if len(sys.argv) > 1 else 5):
    order = variants[rep % len(variants):] + variants[:rep % len(variants)]
    for v in order:
        triggers.setup(eng, v, loaded=True)
        with eng.connect() as c:
            lsn0 = c.exec_driver_sql("select pg_current_wal_insert_lsn()").scalar(); c.commit()
            t = time.perf_counter(); c.exec_driver_sql(f"UPDATE images SET name = 'renamed-{rep}'"); c.commit(); dt = time.perf_counter() - t
            w = c.exec_driver_sql(f"select pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '{lsn0}')").scalar(); c.commit()
        res[v].append(dt); wal[v].append(float(w))
base = statistics.median(res["none"])
for v in variants:
    print(f"{v:20s} {statistics.median(res[v])*1000:7.0f} ms  x{statistics.median(res[v])/base:.2f}  WAL {statistics.median(wal[v])/1e6:6.1f} MB")
