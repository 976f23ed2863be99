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

from .backfill import AdaptiveBatches, BatchSizer, FixedBatches, _after, _batch_upper_bound, _key_range, batch_sizer
from .derived import DeriveRule, DeriveStatements
from .dialects.base import TriggerDialect
from .locking import LockPolicy, retry_when_busy
from .sync import LinkRule, MoveRule, SyncGroup, TableSync, all_null, any_distinct, conflict

SAMPLES = 3  # rows shown per broken law
FIRST_CHECK_ROWS = 10_000  # a read of 10,000 rows takes 5-20 ms here on all three databases
MAX_CHECK_ROWS = 1_000_000  # rows one batch of the check may read
BLOCKS_PER_ROW = 0.01  # a first guess where the check walks storage blocks (8 kB holds ~100 short rows)


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
            text += ". To fix them, " + "; or ".join(f"to keep {keeps}: {sql}" for keeps, sql in self.fixes)
        elif self.law.hint:
            text += f". {self.law.hint}"
        return text


# --- the laws -----------------------------------------------------------------------------------

def group_broken(group: SyncGroup, table: sa.Table, derived_only: bool = False) -> ColumnElement:
    """A row of `table` breaks the group's law: A is distinct from down(B), null-safely, as the
    triggers compare them. `derived_only`: rows whose B is all NULL are not derived yet (before
    migrate completes) and pass. Every comparison of the law goes through here, so a group that
    knowingly loses information (lossy) is relaxed in this one place: release N's finer value
    stays in A while B holds up(A), so such a row holds when B = up(A)."""
    broken = conflict(group, table)
    if group.lossy:
        broken = sa.and_(broken, any_distinct([table.c[n] for n in group.new], group.up_exprs(table)))
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


def derive_law(derive: DeriveStatements, derived_only: bool) -> Law:
    """derive_column: every target row holds the value its sources give it (none: NULL)."""
    t, rule = derive.t, derive.rule
    value = derive.value_for(t.c[rule.target_key])
    broken = derive.broken()
    if derived_only:  # before migrate completes, a NULL is a row the backfill has not reached
        broken = sa.and_(t.c[rule.column].is_not(None), broken)
    shown = [(f"{t.name}.{rule.column}", t.c[rule.column]), ("derived", value)]
    fixes = [("the sources' values", sa.update(t).where(broken).values({rule.column: value}))]
    return Law(f"the derived law {rule.describe()}", t, t, broken, shown, fixes)


def laws(dialect: TriggerDialect, syncs: dict[str, TableSync], links, tables: dict[str, sa.Table],
         derived_only: bool) -> list[Law]:
    """Every law a syncing change's rows must satisfy: each two-way sync group's (a one-way group's
    old columns stay) and each cross-table rule's."""
    found = [group_law(dialect, group, ts.table, derived_only)
             for _, ts in sorted(syncs.items()) for group in ts.groups if group.down is not None and group.old]
    for link in dialect.active_links(list(links)):
        if isinstance(link, DeriveRule):
            found.append(derive_law(DeriveStatements(link, tables.__getitem__), derived_only))
            continue
        source, target = tables[link.source], tables[link.target]
        law = move_law if isinstance(link, MoveRule) else link_law
        found.append(law(link, source, target, derived_only))
    return found


# --- the scan -------------------------------------------------------------------------------------

def check_batches(dialect: TriggerDialect, batch_size: int | None = None,
                  batch_seconds: float | None = None) -> BatchSizer:
    """The check's batches: `batch_size` rows each, or adapting to `batch_seconds` (default: the
    dialect's `check_batch_seconds`, longer than the backfill's where reads lock nothing)."""
    if batch_size is not None:
        return FixedBatches(batch_size)
    return AdaptiveBatches(batch_seconds or dialect.check_batch_seconds, rows=FIRST_CHECK_ROWS,
                           max_rows=MAX_CHECK_ROWS)


def check_rows(engine: sa.Engine, dialect: TriggerDialect, checked: list[Law], *,
               batches: BatchSizer | None = None) -> list[Finding]:
    """The laws some row breaks, each with its count, sample rows and fixes (empty: all hold)."""
    findings = []
    for law in checked:
        count, ranges = _scan(engine, dialect, law, batches if batches is not None else check_batches(dialect))
        if count:
            findings.append(Finding(law, count, _samples(engine, dialect, law, ranges),
                                    [(keeps, dialect.compile(u)) for keeps, u in law.fixes]))
    return findings


def _scan(engine: sa.Engine, dialect: TriggerDialect, law: Law, batches: BatchSizer) -> tuple[int, list]:
    """Walk the table in batches; the count of rows breaking the law, and the conditions picking
    the first batches that held some (for the samples)."""
    walk = _walk(engine, dialect, law.table)
    count, ranges = 0, []
    while not walk.done:
        started = time.perf_counter()

        def one_batch():
            with engine.connect() as conn, conn.begin():
                return walk.batch(conn, law, batches.rows)

        where, bad = retry_when_busy(dialect, LockPolicy(), one_batch)
        took = time.perf_counter() - started
        batches.record(took)
        if bad and sum(n for _, n in ranges) < SAMPLES:
            ranges.append((where, bad))
        count += bad
        rest = dialect.backfill_rest(took)  # SQLite: a reader's lock keeps a writer from committing
        if rest > 0 and not walk.done:
            time.sleep(rest)
    return count, ranges


def _walk(engine: sa.Engine, dialect: TriggerDialect, table: sa.Table):
    """How the check walks the table: storage blocks where the database scans a range of them
    directly, else an integer key by arithmetic, else any key row by row."""
    with engine.connect() as conn:
        blocks = dialect.block_count(conn, table)
    if blocks is not None:
        return _Ranges(lambda first, end: dialect.block_range(table, first, end), 0, blocks, spread=BLOCKS_PER_ROW)
    key = dialect.batch_key(table)
    if len(key) == 1 and (isinstance(key[0].type, sa.Integer) or str(key[0]) == "rowid"):
        with engine.connect() as conn:
            low, high = conn.execute(sa.select(sa.func.min(key[0]), sa.func.max(key[0]))).one()
        return _Ranges(lambda first, end: sa.and_(key[0] >= first, key[0] < end), low, None if high is None else high + 1)
    return _RowBatches(key)


def _counted(law: Law) -> ColumnElement:
    """1 for a row that breaks the law, else NULL: count() of it counts them (a sum of 0s and 1s
    is a DECIMAL sum on MariaDB, measured 1.6x slower)."""
    return sa.case((law.broken, 1))


class _Ranges:
    """An integer range [low, high) walked by arithmetic: each batch is the range [first, first +
    width), one range scan with no search for its end (storage blocks, or an integer key).
    `width` follows the batch sizer's rows, scaled by the values per row the last range held, so
    a batch reads about as many rows as the sizer asks for on a sparse key too. Rows added beyond
    `high` once the walk began were written through the triggers."""

    def __init__(self, condition, low: int | None, high: int | None, spread: float = 1.0):
        self.condition, self.next, self.high = condition, low, high
        self.done = high is None or low is None or low >= high
        self.spread = spread  # values per row, as the last batch found them

    def batch(self, conn: sa.Connection, law: Law, rows: int) -> tuple:
        first = self.next
        end = min(self.high, first + max(1, round(rows * self.spread)))
        where = self.condition(first, end)
        query = sa.select(sa.func.count(), sa.func.count(_counted(law))).select_from(law.source).where(where)
        found, broken = conn.execute(query).one()
        if found:  # an empty range says nothing of the next one (the sizer grows after a fast batch)
            self.spread = (end - first) / found
        self.next, self.done = end, end >= self.high
        return where, int(broken or 0)


class _RowBatches:
    """Any other key: each batch is the next `rows` rows in key order, in one statement for a
    single-column key (an aggregate over them, which also gives the batch's last key), after a
    search for the batch's upper bound for a composite one."""

    def __init__(self, key: list):
        self.key, self.last, self.done = key, None, False

    def batch(self, conn: sa.Connection, law: Law, rows: int) -> tuple:
        key, last = self.key, self.last
        bad = _counted(law)
        if len(key) == 1:
            inner = sa.select(key[0].label("k"), bad.label("bad")).select_from(law.source).order_by(key[0]).limit(rows)
            if last is not None:
                inner = inner.where(_after(key, last))
            inner = inner.subquery("crossfade_batch")
            found, broken, high = conn.execute(
                sa.select(sa.func.count(), sa.func.count(inner.c.bad), sa.func.max(inner.c.k))).one()
            upper = (high,) if found == rows else None
        else:
            upper = _batch_upper_bound(conn, law.table, key, last, rows)
            query = sa.select(sa.func.count(bad)).select_from(law.source).where(_key_range(key, last, upper))
            broken = conn.execute(query).scalar()
        self.last, self.done = upper, upper is None
        return _key_range(key, last, upper), int(broken or 0)


def _samples(engine: sa.Engine, dialect: TriggerDialect, law: Law, ranges: list) -> list[str]:
    key = dialect.batch_key(law.table)
    shown = []
    with engine.connect() as conn:
        for where, _ in ranges:
            query = (sa.select(*key, *[e for _, e in law.shown]).select_from(law.source)
                     .where(where, law.broken).order_by(*key).limit(SAMPLES - len(shown)))
            for found in conn.execute(query):
                keys = ", ".join(f"{k.name}={v!r}" for k, v in zip(key, found[:len(key)]))
                values = ", ".join(f"{name}={v!r}" for (name, _), v in zip(law.shown, found[len(key):]))
                shown.append(f"{keys}: {values}")
    return shown[:SAMPLES]


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
