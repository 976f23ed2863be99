"""The data check: every row against the sync law and the link laws, in online batches.

Triggers keep `A = down(B)` after every statement they see. Writes they do not see break it
silently: PostgreSQL's `session_replication_role = replica`, `ALTER TABLE ... DISABLE TRIGGER`, a
trigger dropped and recreated by hand, a SQLite table rebuilt without them (Alembic batch mode).
Contract would then drop the only copy of such a write, so before contract's first DDL (and on
demand, `status --deep` / `check --deep`) every row is read once, walking the primary key in
batches sized as the backfill's are: one short read per batch, each an indexed range scan of the
table (joined to the other table for cross-table rules), no long transaction.

When expand finds triggers missing and reinstalls them, `reconcile` repairs the rows written
meanwhile where the row itself shows which side was written, and the check names the rest.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from .backfill import BatchSizer, _after, _batch_upper_bound, _key_range, batch_sizer
from .dialects.base import TriggerDialect
from .locking import LockPolicy, retry_when_busy
from .sync import LinkRule, MoveRule, SyncGroup, TableSync, all_null, any_distinct, conflict

SAMPLES = 3  # rows shown per broken law


@dataclass
class Law:
    """One law every row of `table` must satisfy. `broken` is true for a row that breaks it,
    over `source` (the table, or the table joined to the other side of a cross-table rule);
    `shown` is what a sample row displays next to its key; `fixes` are SQL statements that
    re-establish the law, each named by the side it keeps."""

    name: str
    table: sa.Table
    source: sa.FromClause
    broken: ColumnElement
    shown: list[tuple[str, ColumnElement]]
    fixes: list[tuple[str, sa.Update]] = field(default_factory=list)
    hint: str = ""


@dataclass
class Finding:
    """The rows of one law that break it: their count and the first few, as text."""

    law: Law
    count: int
    samples: list[str]
    fixes: list[tuple[str, str]]  # (what it keeps, SQL)

    def describe(self) -> str:
        text = (f"{self.count} row(s) of {self.law.table.name} break {self.law.name}, "
                f"e.g. {'; '.join(self.samples)}")
        if self.fixes:
            text += ". " + "; or ".join(f"to keep {keeps}: {sql}" for keeps, sql in self.fixes)
        elif self.law.hint:
            text += f". {self.law.hint}"
        return text


# --- the laws -----------------------------------------------------------------------------------

def group_broken(group: SyncGroup, table: sa.Table, derived_only: bool = False) -> ColumnElement:
    """A row of `table` breaks the group's law: A is distinct from down(B), null-safely, as the
    triggers compare them. `derived_only`: rows whose B is all NULL are not derived yet (before
    migrate completes) and pass. Every comparison of the law goes through here, so a group that
    knowingly loses information (lossy) can be relaxed in this one place."""
    broken = conflict(group, table)
    if derived_only:
        return sa.and_(sa.not_(all_null([table.c[n] for n in group.new])), broken)
    return broken


def group_law(dialect: TriggerDialect, group: SyncGroup, table: sa.Table, derived_only: bool) -> Law:
    broken = group_broken(group, table, derived_only)
    old, new = ", ".join(group.old), ", ".join(group.new)
    shown = [(c, table.c[c]) for c in group.old]
    shown += [(f"down({new})" if len(group.old) == 1 else f"down({new})[{c}]", e)
              for c, e in zip(group.old, group.down_exprs(table))]
    fixes = [
        ("release N's values", sa.update(table).where(broken).values(dict(zip(group.new, group.up_exprs(table))))),
        ("release N+1's values",
         sa.update(table).where(broken).values(dict(zip(group.old, group.down_exprs(table))))),
    ]
    return Law(f"the sync law {old} = down({new})", table, table, broken, shown, fixes)


def link_law(link: LinkRule, source: sa.Table, target: sa.Table, derived_only: bool) -> Law:
    """split_table (and rename_table's stand-in): a source row and the target row of its key hold
    the same values; a missing target row reads as NULL (a mirror must have one)."""
    joined = source.outerjoin(target, target.c[link.key] == source.c[link.key])
    missing = target.c[link.key].is_(None)
    broken = any_distinct([source.c[c] for c in link.columns], [target.c[c] for c in link.columns])
    if link.mirror:
        broken = sa.or_(missing, broken)
    if derived_only:
        broken = sa.and_(sa.not_(missing), broken)
    shown = [(f"{source.name}.{c}", source.c[c]) for c in link.columns]
    shown += [(f"{target.name}.{c}", target.c[c]) for c in link.columns]
    cols = ", ".join(link.columns)
    return Law(f"the link law {source.name}.({cols}) = {target.name}.({cols})", source, joined, broken, shown,
               hint=f"Give each of those {target.name} rows the values its {source.name} row holds (or the "
                    "other way round), then run the phase again")


def move_law(move: MoveRule, source: sa.Table, target: sa.Table, derived_only: bool) -> Law:
    """move_column: a source row holds the values of the target row it matches (none: NULL)."""
    joined = source.outerjoin(target, target.c[move.target_key] == source.c[move.source_key])
    targets = [target.c[c] for c in move.target_columns]
    broken = any_distinct([source.c[c] for c in move.source_columns], targets)
    if derived_only:
        broken = sa.and_(sa.not_(all_null(targets)), broken)
    shown = [(f"{source.name}.{s}", source.c[s]) for s in move.source_columns]
    shown += [(f"{target.name}.{t}", target.c[t]) for t in move.target_columns]
    return Law(f"the move law {source.name}.({', '.join(move.source_columns)}) = "
               f"{target.name}.({', '.join(move.target_columns)}) via {move.source_key}", source, joined, broken,
               shown, hint=f"Make those {source.name} rows hold their {target.name} row's values (or the other "
                           "way round), then run the phase again")


def laws(dialect: TriggerDialect, syncs: dict[str, TableSync], links, tables: dict[str, sa.Table],
         derived_only: bool) -> list[Law]:
    """Every law a syncing change's rows must satisfy: each two-way sync group's (a one-way group's
    old columns stay) and each cross-table rule's."""
    found = [group_law(dialect, group, ts.table, derived_only)
             for _, ts in sorted(syncs.items()) for group in ts.groups if group.down is not None and group.old]
    for link in dialect.active_links(list(links)):
        source, target = tables[link.source], tables[link.target]
        law = move_law if isinstance(link, MoveRule) else link_law
        found.append(law(link, source, target, derived_only))
    return found


# --- the scan -------------------------------------------------------------------------------------

def check_rows(engine: sa.Engine, dialect: TriggerDialect, checked: list[Law], *,
               batches: BatchSizer | None = None) -> list[Finding]:
    """The laws some row breaks, each with its count, sample rows and fixes (empty: all hold)."""
    findings = []
    for law in checked:
        count, ranges = _scan(engine, dialect, law, batches if batches is not None else batch_sizer())
        if count:
            findings.append(Finding(law, count, _samples(engine, dialect, law, ranges),
                                    [(keeps, dialect.compile(u)) for keeps, u in law.fixes]))
    return findings


def _scan(engine: sa.Engine, dialect: TriggerDialect, law: Law, batches: BatchSizer) -> tuple[int, list]:
    """Walk the table's key in batches; the count of rows breaking the law, and the key ranges
    (lower bound exclusive, upper inclusive) of the first batches that held some."""
    key = dialect.batch_key(law.table)
    walk = _IntegerRanges(engine, key[0]) if _integer_key(key) else _RowBatches(key)
    count, ranges = 0, []
    while not walk.done:
        started = time.perf_counter()

        def one_batch():
            with engine.connect() as conn, conn.begin():
                return walk.batch(conn, law, batches.rows)

        last, upper, bad = retry_when_busy(dialect, LockPolicy(), one_batch)
        took = time.perf_counter() - started
        batches.record(took)
        if bad and sum(n for *_, n in ranges) < SAMPLES:
            ranges.append((last, upper, bad))
        count += bad
        rest = dialect.backfill_rest(took)  # SQLite: a reader's lock keeps a writer from committing
        if rest > 0 and not walk.done:
            time.sleep(rest)
    return count, ranges


def _integer_key(key: list) -> bool:
    return len(key) == 1 and (isinstance(key[0].type, sa.Integer) or str(key[0]) == "rowid")


class _IntegerRanges:
    """An integer key walked by arithmetic: each batch is the key range (last, last + width], one
    range scan with no search for its end. `width` follows the batch sizer (rows on a dense key);
    on a sparse key it is scaled by the rows the last range held, so a batch still reads about as
    many rows as the sizer asks for. Rows inserted beyond the key's maximum once the walk began
    were written through the triggers."""

    def __init__(self, engine: sa.Engine, key):
        self.key = key
        with engine.connect() as conn:
            self.last, self.high = conn.execute(sa.select(sa.func.min(key) - 1, sa.func.max(key))).one()
        self.done = self.high is None
        self.spread = 1.0  # key values per row, as the last batch found them

    def batch(self, conn: sa.Connection, law: Law, rows: int) -> tuple:
        last, upper = self.last, self.last + max(1, round(rows * self.spread))
        bad = sa.case((law.broken, 1), else_=0)
        query = (sa.select(sa.func.count(), sa.func.sum(bad)).select_from(law.source)
                 .where(self.key > last, self.key <= upper))
        found, broken = conn.execute(query).one()
        self.spread = (upper - last) / found if found else self.spread * 2
        self.last, self.done = upper, upper >= self.high
        return (last,), (upper,), int(broken or 0)


class _RowBatches:
    """Any other key: each batch is the next `rows` rows in key order, in one statement for a
    single-column key (an aggregate over them, which also gives the batch's last key), after a
    search for the batch's upper bound for a composite one."""

    def __init__(self, key: list):
        self.key, self.last, self.done = key, None, False

    def batch(self, conn: sa.Connection, law: Law, rows: int) -> tuple:
        key, last = self.key, self.last
        bad = sa.case((law.broken, 1), else_=0)
        if len(key) == 1:
            inner = sa.select(key[0].label("k"), bad.label("bad")).select_from(law.source).order_by(key[0]).limit(rows)
            if last is not None:
                inner = inner.where(_after(key, last))
            inner = inner.subquery("crossfade_batch")
            found, broken, high = conn.execute(
                sa.select(sa.func.count(), sa.func.sum(inner.c.bad), sa.func.max(inner.c.k))).one()
            upper = (high,) if found == rows else None
        else:
            upper = _batch_upper_bound(conn, law.table, key, last, rows)
            query = sa.select(sa.func.sum(bad)).select_from(law.source).where(_key_range(key, last, upper))
            broken = conn.execute(query).scalar()
        self.last, self.done = upper, upper is None
        return last, upper, int(broken or 0)


def _samples(engine: sa.Engine, dialect: TriggerDialect, law: Law, ranges: list) -> list[str]:
    key = dialect.batch_key(law.table)
    shown = []
    with engine.connect() as conn:
        for last, upper, _ in ranges:
            query = (sa.select(*key, *[e for _, e in law.shown]).select_from(law.source)
                     .where(_key_range(key, last, upper), law.broken).order_by(*key).limit(SAMPLES - len(shown)))
            for found in conn.execute(query):
                keys = ", ".join(f"{k.name}={v!r}" for k, v in zip(key, found[:len(key)]))
                values = ", ".join(f"{name}={v!r}" for (name, _), v in zip(law.shown, found[len(key):]))
                shown.append(f"{keys}: {values}")
    return shown


# --- reconciling after the triggers were missing --------------------------------------------------

def reconcile(engine: sa.Engine, dialect: TriggerDialect, syncs: dict[str, TableSync],
              required: set[tuple[str, str]], *, batches: BatchSizer | None = None) -> int:
    """Repair the rows that break a sync group's law where the row shows which release wrote it:
    B all NULL (release N wrote A; release N+1 writes B) takes B := up(A); A all NULL although
    release N cannot store NULL there (`required`: NOT NULL in release N) takes A := down(B).
    In batches over the key, with the triggers installed (they find nothing to do: the values
    round-trip). Returns the rows changed; what is left is ambiguous, for `check_rows` to name."""
    changed = 0
    for _, ts in sorted(syncs.items()):
        for group in ts.groups:
            if group.down is not None and group.old:
                changed += _reconcile_group(engine, dialect, group, ts.table, required, batches or batch_sizer())
    return changed


def _reconcile_group(engine: sa.Engine, dialect: TriggerDialect, group: SyncGroup, table: sa.Table,
                     required: set[tuple[str, str]], batches: BatchSizer) -> int:
    broken = group_broken(group, table)
    old, new = [table.c[c] for c in group.old], [table.c[c] for c in group.new]
    statements = [lambda where: sa.update(table).where(where, all_null(new), broken)
                  .values(dict(zip(group.new, group.up_exprs(table))))]
    if all((table.name, c) in required for c in group.old):
        statements.append(lambda where: sa.update(table).where(where, all_null(old), sa.not_(all_null(new)), broken)
                          .values(dict(zip(group.old, group.down_exprs(table)))))
    key = dialect.batch_key(table)
    last, changed = None, 0
    while True:
        size = batches.rows
        started = time.perf_counter()

        def one_batch(last=last, size=size):
            with engine.connect() as conn, conn.begin():
                upper = _batch_upper_bound(conn, table, key, last, size)
                where = _key_range(key, last, upper)
                return upper, sum(conn.execute(make(where)).rowcount for make in statements)

        upper, count = retry_when_busy(dialect, LockPolicy(), one_batch)
        changed += count
        took = time.perf_counter() - started
        batches.record(took)
        if upper is None:
            return changed
        last = upper
        rest = dialect.backfill_rest(took)
        if rest > 0:
            time.sleep(rest)
