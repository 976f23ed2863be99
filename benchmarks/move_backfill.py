"""Move backfill: crossfade's batched backfill of ops.move_column vs ONE set-based statement.

    python benchmarks/move_backfill.py [--rows 200000] [--dialect sqlite postgresql mysql] [--reps 3]
                                       [--shape many-to-one one-to-one] [--stats fresh stale]

Shapes (release N's tables, loaded server-side, every source row holding its value):
  many-to-one  orgs(id, title) with 1,000 orgs; users(id, login, org_id -> orgs.id indexed, org_name)
               with --rows users, each org's users consecutive (so every batch has orgs to fill: were
               they spread out, the first batch would fill every org), every user of an org holding
               the same org_name ('org-<org_id>');
               Change(ops.move_column("users", "org_name", to="orgs", via="org_id", new="name"))
  one-to-one   users(id, login, password) and local_users(id, user_id -> users.id unique NOT NULL),
               --rows rows in each, local_users.id running the other way from user_id;
               Change(ops.move_column("users", "password", to="local_users", via="user_id"))
Setup per measurement (untimed): the tables dropped, created and loaded, then
Runner(engine).expand(change) (the target's new NULL-able column, crossfade's triggers on both
tables). Statistics, both ways for each shape:
  fresh  refreshed after the load and after expand (ANALYZE; PostgreSQL VACUUM ANALYZE, CHECKPOINT)
  stale  taken on the empty tables, the database's own refresh switched off (PostgreSQL autovacuum,
         MariaDB STATS_AUTO_RECALC): the planner does not know the rows, as after a bulk load it
         has not caught up with. A plan that holds only with good statistics shows here: MariaDB's
         former correlated IN (...) took 28 s for 100,000 users over 1,000 orgs with stale
         statistics, 0.2 s with fresh ones.
Timed:
  set-based  ONE hand-written UPDATE per dialect giving every target row its value (set_based()
             below: UPDATE ... FROM on PostgreSQL and SQLite, a multi-table UPDATE on MariaDB;
             many-to-one through a derived table of each org's first user with a value, one-to-one
             a plain join), with crossfade's triggers installed and switched off for its session as
             crossfade's own batches switch them off (the dialect's link_guard; without it MariaDB
             refuses the statement, error 1442: a trigger may not write the table its statement
             reads), timed with its commit
  default    Runner(engine).migrate(change): crossfade's defaults (batches over users adapting to
             DEFAULT_BATCH_SECONDS, each filling the target rows of its users, then its users left
             empty; on SQLite a rest after each batch)
crossfade runs on its own pooled engine, as under the crossfade command, its connections fresh for
every measurement (nothing prepared or cached by the last one). After every timed run the
tables are checked: every target row holds the value its source rows hold, and the source rows
still hold what was loaded; a wrong backfill stops the run. Variants are interleaved per repetition
(their order rotating); figures are medians, ratios within one run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import sqlalchemy as sa
from _common import (
    DIALECTS,
    distinct,
    drop_tables,
    freeze_statistics,
    label,
    maintain,
    make_engine,
    markdown,
    series,
    timed,
)

from crossfade import Change, backfill, ops
from crossfade.dialects import for_dialect
from crossfade.runner import Runner

SET_BASED = "set-based"
DEFAULT = "default"
VARIANTS = (SET_BASED, DEFAULT)
FRESH, STALE = "fresh", "stale"
STATS = (FRESH, STALE)
ORGS = 1_000
TABLES = ("local_users", "users", "orgs", "crossfade_state")  # dropped in this order (foreign keys)
FUNCTIONS = ("crossfade_users_move", "crossfade_orgs_move", "crossfade_local_users_move")


def per_org(rows: int) -> int:
    return -(-rows // ORGS)


def org_of(dialect: str, i: str, rows: int) -> str:
    """User i's org: each org's users are consecutive, so every batch reaches orgs no batch before
    it filled (spread out, the first batch would fill every org and leave the rest nothing to do)."""
    return f"(({i} - 1) {'DIV' if dialect == 'mysql' else '/'} {per_org(rows)} + 1)"


class Shape:
    name: str
    target: str  # the table the column moves to
    tables: tuple[str, ...]

    def change(self) -> Change:
        raise NotImplementedError

    def release_n(self) -> sa.MetaData:
        raise NotImplementedError

    def load(self, dialect: str, rows: int) -> list[str]:
        raise NotImplementedError

    def set_based(self, dialect: str) -> str:
        raise NotImplementedError

    def problems(self, dialect: str, rows: int) -> dict[str, str]:
        """Queries counting rows a finished backfill got wrong: each must return 0."""
        raise NotImplementedError


class ManyToOne(Shape):
    name = "many-to-one"
    target = "orgs"
    tables = ("users", "orgs")

    def change(self) -> Change:
        return Change(ops.move_column("users", "org_name", to="orgs", via="org_id", new="name"), id="bench_move_org")

    def release_n(self) -> sa.MetaData:
        md = sa.MetaData()
        sa.Table("orgs", md, sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
                 sa.Column("title", sa.String(40)))
        sa.Table("users", md, sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
                 sa.Column("login", sa.String(40)),
                 sa.Column("org_id", sa.Integer, sa.ForeignKey("orgs.id"), index=True),
                 sa.Column("org_name", sa.String(40)))
        return md

    def load(self, dialect: str, rows: int) -> list[str]:
        return [f"INSERT INTO orgs (id, title) SELECT i, {label(dialect, 'title-', 'i')} FROM {series(dialect, ORGS)}",
                (f"INSERT INTO users (id, login, org_id, org_name) SELECT i, {label(dialect, 'user-', 'i')}, "
                 f"{org_of(dialect, 'i', rows)}, {label(dialect, 'org-', org_of(dialect, 'i', rows))} FROM {series(dialect, rows)}")]

    def set_based(self, dialect: str) -> str:
        firsts = "(SELECT org_id, min(id) AS first FROM users WHERE org_name IS NOT NULL GROUP BY org_id) d"
        if dialect == "mysql":
            return (f"UPDATE orgs JOIN {firsts} ON d.org_id = orgs.id JOIN users u ON u.id = d.first "
                    "SET orgs.name = u.org_name WHERE orgs.name IS NULL")
        return (f"UPDATE orgs SET name = u.org_name FROM {firsts} JOIN users u ON u.id = d.first "
                "WHERE orgs.id = d.org_id AND orgs.name IS NULL")

    def problems(self, dialect: str, rows: int) -> dict[str, str]:
        with_users = -(-rows // per_org(rows))  # orgs 1..with_users have users
        loaded = label(dialect, "org-", org_of(dialect, "id", rows))
        expected = f"CASE WHEN id <= {with_users} THEN {label(dialect, 'org-', 'id')} END"
        return {
            "users whose org's name is not their org_name": "SELECT count(*) FROM users u JOIN orgs o "
            f"ON o.id = u.org_id WHERE {distinct(dialect, 'o.name', 'u.org_name')}",
            "orgs without their users' name (or with one and no user)": "SELECT count(*) FROM orgs WHERE "
            f"{distinct(dialect, 'name', expected)}",
            "users whose org_name is not the one loaded": f"SELECT count(*) FROM users WHERE "
            f"{distinct(dialect, 'org_name', loaded)}",
            f"users missing (of {rows})": f"SELECT {rows} - count(*) FROM users",
        }


class OneToOne(Shape):
    name = "one-to-one"
    target = "local_users"
    tables = ("users", "local_users")

    def change(self) -> Change:
        return Change(ops.move_column("users", "password", to="local_users", via="user_id"), id="bench_move_password")

    def release_n(self) -> sa.MetaData:
        md = sa.MetaData()
        sa.Table("users", md, sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
                 sa.Column("login", sa.String(40)), sa.Column("password", sa.String(60)))
        sa.Table("local_users", md, sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
                 sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id"), unique=True, nullable=False))
        return md

    def load(self, dialect: str, rows: int) -> list[str]:
        return [(f"INSERT INTO users (id, login, password) SELECT i, {label(dialect, 'user-', 'i')}, "
                 f"{label(dialect, 'secret-', 'i')} FROM {series(dialect, rows)}"),
                f"INSERT INTO local_users (id, user_id) SELECT i, {rows + 1} - i FROM {series(dialect, rows)}"]

    def set_based(self, dialect: str) -> str:
        if dialect == "mysql":
            return ("UPDATE local_users JOIN users u ON u.id = local_users.user_id SET local_users.password = u.password "
                    "WHERE u.password IS NOT NULL AND local_users.password IS NULL")
        return ("UPDATE local_users SET password = u.password FROM users u WHERE u.id = local_users.user_id "
                "AND u.password IS NOT NULL AND local_users.password IS NULL")

    def problems(self, dialect: str, rows: int) -> dict[str, str]:
        return {
            "local_users whose password is not their user's": "SELECT count(*) FROM local_users l JOIN users u "
            f"ON u.id = l.user_id WHERE {distinct(dialect, 'l.password', 'u.password')}",
            "local_users without the password loaded for their user": "SELECT count(*) FROM local_users WHERE "
            f"{distinct(dialect, 'password', label(dialect, 'secret-', 'user_id'))}",
            "users whose password is not the one loaded": "SELECT count(*) FROM users WHERE "
            f"{distinct(dialect, 'password', label(dialect, 'secret-', 'id'))}",
            f"local_users missing (of {rows})": f"SELECT {rows} - count(*) FROM local_users",
        }


SHAPES = {s.name: s for s in (ManyToOne(), OneToOne())}


def describe(variant: str) -> str:
    if variant == SET_BASED:
        return "set-based UPDATE"
    return f"default (adaptive, {backfill.DEFAULT_BATCH_SECONDS} s)"


def setup(engine: sa.Engine, ddl_engine: sa.Engine, shape: Shape, rows: int, stats: str) -> None:
    drop_tables(engine, TABLES, FUNCTIONS)
    with engine.begin() as conn:
        shape.release_n().create_all(conn)
    if stats == STALE:
        freeze_statistics(engine, shape.tables)
    with engine.begin() as conn:
        for sql in shape.load(engine.dialect.name, rows):
            conn.exec_driver_sql(sql)
    maintain(engine, shape.tables, statistics=stats == FRESH)
    Runner(ddl_engine).expand(shape.change())
    maintain(engine, shape.tables, statistics=stats == FRESH)


def check(engine: sa.Engine, shape: Shape, rows: int, variant: str) -> None:
    found = []
    with engine.connect() as conn:
        for what, sql in shape.problems(engine.dialect.name, rows).items():
            count = conn.exec_driver_sql(sql).scalar()
            if count:
                found.append(f"{count} {what}")
    if found:
        raise SystemExit(f"{engine.dialect.name} {shape.name} {variant}: wrong after the backfill: " + "; ".join(found))


def run_once(engine: sa.Engine, ddl_engine: sa.Engine, shape: Shape, rows: int, stats: str, variant: str) -> dict:
    ddl_engine.dispose()  # fresh connections, as a fresh crossfade command has (no plans cached by the last run)
    setup(engine, ddl_engine, shape, rows, stats)
    sizes: list[int] = []
    if variant == SET_BASED:
        on, off = for_dialect(engine.dialect).link_guard()
        seconds = timed(engine, shape.set_based(engine.dialect.name), before=on, after=off)
    else:
        runner = Runner(ddl_engine, on_progress=lambda progress: sizes.append(progress.batch_size))
        start = time.perf_counter()
        runner.migrate(shape.change())
        seconds = time.perf_counter() - start
    check(engine, shape, rows, f"{stats} statistics, {variant}")
    return {"seconds": seconds, "batches": len(sizes), "rows": statistics.median(sizes) if sizes else 0}


def run_dialect(dialect: str, shapes: list[Shape], stats: list[str], rows: int, reps: int, log) -> dict:
    engine = make_engine(dialect)
    # crossfade's own engine with its own pool, as the crossfade command has: its DDL session
    # settings must not leak into the benchmark's pool.
    ddl_engine = sa.create_engine(engine.url, connect_args={"timeout": 120} if dialect == "sqlite" else {})
    results: dict = {(s.name, st, v): [] for s in shapes for st in stats for v in VARIANTS}
    for rep in range(reps):
        order = VARIANTS[rep % len(VARIANTS):] + VARIANTS[:rep % len(VARIANTS)]
        for shape in shapes:
            for st in stats:
                for variant in order:
                    r = run_once(engine, ddl_engine, shape, rows, st, variant)
                    results[shape.name, st, variant].append(r)
                    log(f"  {dialect} rep {rep + 1}/{reps} {shape.name:>11} {st:>5} {variant:>9}: "
                        f"{r['seconds']:8.3f} s, {r['batches']} batches of median {r['rows']:.0f} rows")
    drop_tables(engine, TABLES, FUNCTIONS)
    engine.dispose()
    ddl_engine.dispose()
    return results


def table_rows(dialect: str, shapes: list[Shape], stats: list[str], results: dict) -> list[list[str]]:
    rows = []
    for shape in shapes:
        for st in stats:
            base = statistics.median(r["seconds"] for r in results[shape.name, st, SET_BASED])
            best_base = min(r["seconds"] for r in results[shape.name, st, SET_BASED])
            for variant in VARIANTS:
                runs = results[shape.name, st, variant]
                seconds = statistics.median(r["seconds"] for r in runs)
                batches = "-" if variant == SET_BASED else (
                    f"{statistics.median(r['batches'] for r in runs):.0f} x "
                    f"{statistics.median(r['rows'] for r in runs):,.0f}")
                rows.append([dialect, shape.name, st, describe(variant), f"{seconds:.3f}", f"{seconds / base:.2f}",
                             f"{min(r['seconds'] for r in runs) / best_base:.2f}", batches])
    return rows


HEADERS = ["dialect", "shape", "statistics", "method", "seconds", "vs set-based", "vs set-based (min)",
           "batches x rows"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200_000, help="users (and, one-to-one, local_users)")
    parser.add_argument("--dialect", nargs="+", choices=DIALECTS, default=list(DIALECTS))
    parser.add_argument("--shape", nargs="+", choices=list(SHAPES), default=list(SHAPES))
    parser.add_argument("--stats", nargs="+", choices=STATS, default=list(STATS),
                        help="fresh: ANALYZE before the measurement; stale: statistics of the empty tables")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--quiet", action="store_true", help="no per-measurement progress lines")
    args = parser.parse_args(argv)
    log = (lambda m: None) if args.quiet else (lambda m: print(m, file=sys.stderr, flush=True))
    shapes = [SHAPES[name] for name in args.shape]

    print(f"# crossfade move_column backfill: {args.rows:,} users ({ORGS:,} orgs many-to-one), "
          f"median of {args.reps} interleaved runs")
    print(f"# python benchmarks/move_backfill.py --rows {args.rows} --reps {args.reps} "
          f"--dialect {' '.join(args.dialect)} --shape {' '.join(args.shape)} --stats {' '.join(args.stats)}")
    print()
    rows = []
    started = time.perf_counter()
    for dialect in args.dialect:
        rows += table_rows(dialect, shapes, args.stats,
                           run_dialect(dialect, shapes, args.stats, args.rows, args.reps, log))
        print(markdown(HEADERS, rows), file=sys.stderr, flush=True)
    print(markdown(HEADERS, rows))
    print()
    print("(seconds: median wall time of the whole backfill, commit included; vs set-based (min): best run over "
          f"best run; batches x rows: medians, rows per batch; total run {time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
