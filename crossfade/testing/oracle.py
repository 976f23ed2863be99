"""The simulator's checks, computed from the database and the journals, never from the triggers.

The transforms are compiled here afresh over the live (reflected) table, so a trigger that does
something other than the declared law cannot vouch for itself.
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from .. import state
from ..change import Change
from ..derived import DeriveRule, DeriveStatements
from ..dialects.base import TriggerDialect
from ..schema import inspect
from ..sync import LinkRule, MoveRule, all_null, any_distinct
from .journal import Write
from .model import RELEASE_N, RELEASE_N1, SHARED, TablePlan, other_release, release_names

UNVIEWABLE = object()  # a release's column that the live schema cannot show (dropped, no down)


@dataclass(frozen=True)
class Finding:
    """One thing wrong: which table and row, what, and the writes that led there."""

    table: str
    key: object
    what: str
    history: tuple[str, ...] = ()

    def describe(self) -> str:
        lines = [f"{self.table} row {self.key}: {self.what}"]
        lines += [f"    {step}" for step in self.history]
        return "\n".join(lines)


# --- the live tables ---------------------------------------------------------------------------

def live_tables(conn: sa.Connection, names: Iterable[str]) -> dict[str, sa.Table]:
    """The tables and views among `names` as the database has them now (a rename_table
    stand-in is a view on PostgreSQL and MariaDB)."""
    inspector = inspect(conn)
    existing = (set(inspector.get_table_names()) | set(inspector.get_view_names())) & set(names)
    metadata = sa.MetaData()
    with warnings.catch_warnings():
        # As Schema.reflect: PostgreSQL's NOT VALID checks (add_check between its two steps).
        warnings.filterwarnings("ignore", "Can't validate argument 'dialect_options'", sa.exc.SAWarning)
        return {name: sa.Table(name, metadata, autoload_with=conn) for name in sorted(existing)}


def _plans_tables(plans: Mapping[str, TablePlan]) -> set[str]:
    return release_names(plans, RELEASE_N) | release_names(plans, RELEASE_N1)


# --- the sync law ------------------------------------------------------------------------------

@dataclass
class Derived:
    """The rows that must satisfy the sync law even with all of B NULL before the backfill is
    done: the rows inserted once the triggers existed, and the new columns release N+1 wrote
    (a NULL included: DESIGN 2 has no "not derived yet" for release N+1's writes)."""

    inserted: dict[str, set] = field(default_factory=lambda: defaultdict(set))  # table -> keys
    written: dict[tuple[str, str], set] = field(default_factory=lambda: defaultdict(set))  # (table, column) -> keys
    writes: list[Write] = field(default_factory=list)  # every committed write (derive_column's scope)
    since: float | None = None  # when the triggers were all in

    def derived_targets(self, rule: DeriveRule) -> set:
        """derive_column: the target rows a source row was written for (inserted, its value or
        target updated, moved to or from, deleted) once the triggers were in. Their value must be the derived one then,
        NULL or not: that is the whole law, with no wait for the backfill."""
        vias = {(s.table, s.via) for s in rule.sources}
        parent: dict[tuple[str, object], object] = {}  # (source table, key) -> its target key
        touched = set()
        for write in sorted(self.writes, key=lambda w: w.start):
            for table, via in vias:
                if write.table != table:
                    continue
                before = parent.get((table, write.key))
                now = write.values.get(via, before) if write.kind != "delete" else before
                parent[table, write.key] = now
                # An update of neither the value nor the row's target fires no trigger: the
                # target waits for the backfill, as for a row never written.
                watched = {via} | {s.column for s in rule.sources if s.table == table}
                if write.kind == "update" and not watched & write.values.keys():
                    continue
                if self.since is not None and write.start >= self.since:
                    touched.update(k for k in (before, now) if k is not None)
        return touched

    def keys(self, table: str, columns: Iterable[str]) -> set:
        keys = set(self.inserted.get(table, ()))
        for column in columns:
            keys |= self.written.get((table, column), set())
        return keys


def row_history(writes: Iterable[Write], plans: Mapping[str, TablePlan], table: str, key) -> tuple[str, ...]:
    """The writes of one row, in order; for a derived value's target row, also those of every
    source row that named it (the target's own writes rarely explain its value)."""
    vias = {(s.table, s.via) for plan in plans.values() for rule in plan.derives if rule.target == table
            for s in rule.sources}
    writes = sorted(writes, key=lambda w: w.start)
    sources = {(w.table, w.key) for w in writes for t, via in vias if w.table == t and w.values.get(via) == key}
    return tuple(w.describe() for w in writes if (w.table, w.key) == (table, key) or (w.table, w.key) in sources)


def derived_rows(writes: Iterable[Write], triggers_since: float | None) -> Derived:
    """Which rows are derived, from the journals: `triggers_since` is when the first trigger was
    installed (perf_counter; None: not yet)."""
    writes = list(writes)
    derived = Derived(writes=writes, since=triggers_since)
    for write in writes:
        if write.kind == "insert" and triggers_since is not None and write.start >= triggers_since:
            derived.inserted[write.table].add(write.key)
        if write.release == RELEASE_N1 and write.kind != "delete":
            for column in write.values:
                derived.written[write.table, column].add(write.key)
    return derived


def law_violations(conn: sa.Connection, plans: dict[str, TablePlan], *, backfilled: bool,
                   limit: int = 20, derived: Derived | None = None) -> list[tuple[str, object, str]]:
    """Rows breaking A = down(B) (two-way), B = up(A) (one-way), a due fill, or a link between
    two tables (the rows of both hold equal values), as committed now.

    Before the backfill has finished, rows whose new columns are all NULL (unless `derived` says
    the row is: inserted under the triggers, or written there by release N+1), or whose row in
    a link's target is missing, are not yet in scope.
    """
    live = live_tables(conn, _plans_tables(plans))
    found = []
    for name, plan in plans.items():
        for rule, shown, query, keyed in _law_queries(plan, live, backfilled, derived or Derived()):
            width = len(plan.keys) if keyed else 1
            for row in conn.execute(query.limit(limit)):
                k = tuple(row[:width]) if width > 1 else row[0]
                values = row[width:]
                reads = ", ".join(f"{c}={v!r}" for c, v in zip(shown, values))
                found.append((name, k, f"{rule} (reads {reads})" if reads else rule))
    return found


def _law_queries(plan: TablePlan, live: dict[str, sa.Table], backfilled: bool, derived: Derived):
    """(rule, what each selected column shows, a query of the key and those columns, whether
    the query selects every column of the plan's key first (else one key column))."""
    if plan.name in live:
        table = live[plan.name]
        keys = plan.key_columns(table)
        for rule, columns, condition in _law_conditions(plan, table, backfilled, derived):
            yield (rule, columns, sa.select(*keys, *[table.c[c] for c in columns]).where(condition).order_by(*keys),
                   True)
    for link in plan.links:
        yield from ((*q, False) for q in _link_queries(link, live, backfilled))
    for move in plan.moves:
        if move.source == plan.name:
            yield from ((*q, False) for q in _move_queries(move, live, backfilled))
    for rule in plan.derives:
        if rule.target == plan.name:
            yield from ((*q, False) for q in _derive_queries(rule, live, backfilled, derived))


def _derive_queries(rule: DeriveRule, live: dict[str, sa.Table], backfilled: bool, derived: Derived):
    """derive_column's law, while the target has the column: each target row holds the value its
    sources give it, computed here afresh from the live tables. Before the backfill is done, a
    row still NULL is in scope once a source row of it was written under the triggers."""
    tables = [rule.target, *rule.source_tables()]
    if any(name not in live for name in tables) or rule.column not in live[rule.target].c:
        return
    if any(s.column not in live[s.table].c or s.via not in live[s.table].c for s in rule.sources):
        return
    statements = DeriveStatements(rule, live.__getitem__)
    t = statements.t
    key, column = t.c[rule.target_key], t.c[rule.column]
    value = statements.value_for(key)
    broken = statements.broken()
    if not backfilled:
        in_scope = column.is_not(None)
        touched = derived.derived_targets(rule)
        if touched:
            in_scope = sa.or_(in_scope, key.in_(sorted(touched, key=repr)))
        broken = sa.and_(broken, in_scope)
    shown = [f"{rule.target}.{rule.column}", "derived"]
    yield (f"{rule.target}.{rule.column} != its derived value", shown,
           sa.select(key, column, value).where(broken).order_by(key))


def _move_queries(move: MoveRule, live: dict[str, sa.Table], backfilled: bool):
    """A move's law, while both tables have its columns: each source row holds the values of the
    target row it matches. Before the backfill is done, a target row without values yet is not
    in scope (NULL there means "not filled yet")."""
    source, target = live.get(move.source), live.get(move.target)
    if source is None or target is None or not (set(move.source_columns) <= set(source.c.keys())
                                                and set(move.target_columns) <= set(target.c.keys())):
        return
    mine, theirs = [source.c[c] for c in move.source_columns], [target.c[c] for c in move.target_columns]
    joined = source.join(target, source.c[move.source_key] == target.c[move.target_key])
    differs = any_distinct(mine, theirs)
    if not backfilled:
        differs = sa.and_(differs, sa.not_(all_null(theirs)))
    rule = f"{move.source}({_names(move.source_columns)}) != {move.target}({_names(move.target_columns)})"
    shown = [f"{move.source}.{c}" for c in move.source_columns] + [f"{move.target}.{c}" for c in move.target_columns]
    key = source.c[move.source_pk]
    yield rule, shown, sa.select(key, *mine, *theirs).select_from(joined).where(differs).order_by(key)


def _law_conditions(plan: TablePlan, table: sa.Table, backfilled: bool, derived: Derived):
    present = set(table.c.keys())
    for group in plan.groups:
        if not set(group.old + group.new) <= present:
            continue
        old, new = [table.c[n] for n in group.old], [table.c[n] for n in group.new]
        if group.down is not None:
            rule, condition = f"{_names(group.old)} != down({_names(group.new)})", any_distinct(
                old, group.down_exprs(table))
        else:
            rule, condition = f"{_names(group.new)} != up({_names(group.old)})", any_distinct(
                new, group.up_exprs(table))
        if not backfilled:
            in_scope = sa.not_(all_null(new))
            keys = derived.keys(plan.name, group.new)
            if keys:
                in_scope = sa.or_(in_scope, plan.key_in(table, keys))
            condition = sa.and_(condition, in_scope)
        yield rule, group.old + group.new, condition
    if backfilled:
        for fill in plan.fills:
            if fill.column in present:
                yield f"{fill.column} is NULL after the backfill", (fill.column,), table.c[fill.column].is_(None)


def _link_queries(link: LinkRule, live: dict[str, sa.Table], backfilled: bool):
    """A link's law, while both its tables have its columns: the source row and the target row
    with the same key hold equal values. A mirror's rows come in pairs; a split's target row may
    be missing, and then reads as NULL in every column."""
    source, target = live.get(link.source), live.get(link.target)
    synced = (link.key, *link.columns)
    if source is None or target is None or not all(c in source.c and c in target.c for c in synced):
        return
    s_key, t_key = source.c[link.key], target.c[link.key]
    joined = source.outerjoin(target, s_key == t_key)
    shown = [f"{t.name}.{c}" for t in (source, target) for c in link.columns]
    values = [t.c[c] for t in (source, target) for c in link.columns]
    differs = any_distinct([source.c[c] for c in link.columns], [target.c[c] for c in link.columns])
    # Until the backfill is done a source row may rightly have no target row yet.
    if link.mirror:
        if backfilled:
            yield (f"no {link.target} row for this {link.source} row", [],
                   sa.select(s_key).select_from(joined).where(t_key.is_(None)).order_by(s_key))
        differs = sa.and_(t_key.is_not(None), differs)
    elif not backfilled:
        differs = sa.and_(t_key.is_not(None), differs)
    rule = f"{link.source}({_names(link.columns)}) != {link.target}({_names(link.columns)})"
    yield rule, shown, sa.select(s_key, *values).select_from(joined).where(differs).order_by(s_key)
    orphans = sa.select(t_key).where(~sa.exists().where(s_key == t_key)).order_by(t_key)
    yield f"a {link.target} row without its {link.source} row", [], orphans


def _names(columns: Iterable[str]) -> str:
    return ", ".join(columns)


# --- no lost writes --------------------------------------------------------------------------

def release_views(conn: sa.Connection, plan: TablePlan, live: dict[str, sa.Table] | None = None) -> dict[str, dict]:
    """Each release's reading of every row: release -> key -> {column: value or UNVIEWABLE}.

    A release reads each column where it keeps it while that place exists, else where the other
    release keeps it (before expand, release N+1's tables are not there yet; after contract,
    release N's are gone), else through the sync group's transforms.
    """
    live = live if live is not None else live_tables(conn, _plans_tables({plan.name: plan}))
    return {release: _release_view(conn, plan, release, live) for release in plan.shapes}


def _release_view(conn: sa.Connection, plan: TablePlan, release: str, live: dict[str, sa.Table]) -> dict:
    main = _live_main(plan, release, live)
    if main is None:
        return {}
    joins: dict[str, sa.ColumnElement] = {}
    columns = [(n, _view_expr(plan, release, n, main, live, joins)) for n in plan.shapes[release].column_names()]
    shown = [(n, e) for n, e in columns if e is not None]
    source = main
    for name, on in joins.items():
        source = source.outerjoin(live[name], on)
    keys = plan.key_columns(main)
    query = sa.select(*keys, *[e.label(f"v{i}") for i, (_, e) in enumerate(shown)]).select_from(source)
    rows = {}
    for row in conn.execute(query):
        values = dict(zip([n for n, _ in shown], row[len(keys):]))
        key = tuple(row[:len(keys)]) if plan.composite else row[0]
        rows[key] = {n: values.get(n, UNVIEWABLE) for n, _ in columns}
    return rows


def _live_main(plan: TablePlan, release: str, live: dict[str, sa.Table]) -> sa.Table | None:
    """The table holding the release's rows now: its own main table, or the other release's."""
    for reader in (release, other_release(release)):
        name = plan.shapes[reader].main.name
        if name in live and all(k in live[name].c for k in plan.keys):
            return live[name]
    return None


def _view_expr(plan: TablePlan, release: str, name: str, main: sa.Table, live: dict[str, sa.Table],
               joins: dict[str, sa.ColumnElement]):
    """How a release reads column `name` now: where it keeps it, where the other release keeps
    it, or through down / up; None when it cannot. Adds the joins it needs to `joins`."""
    for reader in (release, other_release(release)):
        place = plan.shapes[reader].place(name)
        if place is None:
            continue
        if place.via is None:
            if place.table == main.name and place.column in main.c:
                return main.c[place.column]
        elif place.table in live and place.column in live[place.table].c and place.via in main.c:
            joined = live[place.table]
            joins.setdefault(place.table, main.c[place.via] == joined.c[place.key])
            return joined.c[place.column]
    move = plan.moved_from_here(name)
    if move is not None and move.target in live and main.c.get(move.source_key) is not None:
        # The value's new home: the target row the source row matches (once the old column went).
        target = live[move.target]
        column = move.target_columns[move.source_columns.index(name)]
        if column in target.c:
            joins.setdefault(move.target, main.c[move.source_key] == target.c[move.target_key])
            return target.c[column]
    present = set(main.c.keys())
    for group in plan.groups:
        if name in group.old and group.down is not None and set(group.new) <= present:
            return group.down_exprs(main)[group.old.index(name)]
        if name in group.new and set(group.old) <= present:
            return group.up_exprs(main)[group.new.index(name)]
    return None


def lost_writes(conn: sa.Connection, plans: dict[str, TablePlan], writes: list[Write],
                releases: tuple[str, ...] = (RELEASE_N, RELEASE_N1), *, backfilled: bool = True) -> list[Finding]:
    """Rows whose final state disagrees with the last committed write to any of their slots.
    Before the backfill is done (`backfilled` False), a NULL written to a filled column while no
    trigger could fill it (before expand) may still read NULL."""
    by_row: dict[tuple, list[Write]] = defaultdict(list)
    for write in writes:
        by_row[write.table, write.key].append(write)
    findings = []
    live = live_tables(conn, _plans_tables(plans))
    for name, plan in plans.items():
        views = release_views(conn, plan, live)
        known = {k for (t, k) in by_row if t == name}
        for key in sorted(known, key=repr):
            history = sorted(by_row[name, key], key=lambda w: w.start)
            what = _row_disagreement(plan, history, {r: views[r].get(key) for r in views}, releases, backfilled)
            if what:
                findings.append(Finding(name, key, what, tuple(w.describe() for w in history)))
        for key in sorted(set(views[RELEASE_N1]) - known, key=repr)[:20]:
            findings.append(Finding(name, key, "a row that no worker wrote"))
    findings += shared_slot_disagreements(conn, plans, writes, live, releases, backfilled=backfilled)
    return findings


# --- a moved value: one slot for a target row and every source row that matches it ---------------

def shared_slot_disagreements(conn: sa.Connection, plans: dict[str, TablePlan], writes: list[Write],
                              live: dict[str, sa.Table], releases: tuple[str, ...] = (RELEASE_N, RELEASE_N1), *,
                              backfilled: bool = True) -> list[Finding]:
    """For each move: the last write to a target row's value (release N+1 through the target row,
    release N through any source row that matches it) is what every release reads, in the target
    row and in each source row. The simulator never changes which target a row matches, so a
    write's target row is the one the row was inserted with."""
    findings = []
    for plan in plans.values():
        for move in plan.moves:
            if move.source == plan.name:
                findings += _move_disagreements(conn, plans, move, writes, live, releases, backfilled)
    return findings


def _move_disagreements(conn, plans, move: MoveRule, writes: list[Write], live, releases,
                        backfilled: bool) -> list[Finding]:
    source, target = plans[move.source], plans[move.target]
    parent_of = {w.key: w.values.get(move.source_key) for w in writes
                 if w.table == move.source and w.kind == "insert"}
    slots: dict[object, list[tuple[Write, dict]]] = defaultdict(list)
    for write in writes:
        if write.table == move.target:
            written = {c: write.values[c] for c in move.target_columns if c in write.values}
            parent = write.key
        elif write.table == move.source and write.kind != "delete":
            written = {t: write.values[s] for s, t in move.columns if s in write.values}
            parent = parent_of.get(write.key)
        else:
            continue
        if written and parent is not None:
            slots[parent].append((write, written))
    readers = _readers(conn, source, target, move, live, backfilled)
    emptied = _emptied_at(writes, move, parent_of)
    findings = []
    for parent, slot_writes in sorted(slots.items(), key=lambda item: repr(item[0])):
        # Until the backfill gives the target its value, the value lives only in the source rows:
        # once release N deleted every one of them, it is gone (as in release N itself).
        slot_writes = [(w, v) for w, v in slot_writes if w.table == move.target or w.end > emptied.get(parent, -1.0)]
        if not slot_writes:
            continue
        candidates = [(w, v) for w, v in slot_writes if w in _possibly_last([w for w, _ in slot_writes])]
        seen = readers.get(parent, [])
        problems = [_shared_problem(move, written, seen) for write, written in candidates if write.release in releases]
        if problems and all(problems):
            history = tuple(w.describe() for w, _ in sorted(slot_writes, key=lambda item: item[0].start))
            findings.append(Finding(move.target, parent, problems[0], history))
    return findings


def _emptied_at(writes: list[Write], move: MoveRule, parent_of: dict) -> dict:
    """parent key -> when release N deleted the last source row of that parent before the
    backfill was done (counting the rows in commit order)."""
    alive: dict[object, int] = defaultdict(int)
    emptied = {}
    for write in sorted((w for w in writes if w.table == move.source and w.kind in ("insert", "delete")),
                        key=lambda w: w.end):
        parent = parent_of.get(write.key)
        if parent is None:
            continue
        alive[parent] += 1 if write.kind == "insert" else -1
        if write.kind == "delete" and alive[parent] <= 0 and write.phase in BEFORE_BACKFILL_DONE:
            emptied[parent] = write.end
    return emptied


def _readers(conn, source: TablePlan, target: TablePlan, move: MoveRule, live,
             backfilled: bool) -> dict[object, list[tuple]]:
    """parent key -> (who reads, {target column: value read}) for the target row (release N+1's
    view) and every source row matching it (release N's)."""
    found: dict[object, list[tuple]] = defaultdict(list)
    for key, row in release_views(conn, target, live).get(RELEASE_N1, {}).items():
        values = {c: row.get(c, UNVIEWABLE) for c in move.target_columns}
        if not backfilled and all(v is None for v in values.values()):
            continue  # not filled yet
        found[key].append((f"release N+1 in {move.target} row {key}", values))
    n_view = release_views(conn, source, live).get(RELEASE_N, {})
    for key, row in n_view.items():
        parent = row.get(move.source_key, UNVIEWABLE)
        if parent is not UNVIEWABLE and parent is not None:
            found[parent].append((f"release N in {move.source} row {key}",
                                  {t: row.get(s, UNVIEWABLE) for s, t in move.columns}))
    return found


def _shared_problem(move: MoveRule, written: dict, seen: list[tuple]) -> str | None:
    for who, values in seen:
        for column, value in written.items():
            read = values.get(column, UNVIEWABLE)
            if read is not UNVIEWABLE and not _same(read, value):
                return f"{move.target}.{column} was last written {value!r}, but {who} reads {read!r}"
    return None


def _row_disagreement(plan: TablePlan, history: list[Write], rows: dict, releases,
                      backfilled: bool = True) -> str | None:
    present = next((r for r in rows.values() if r is not None), None)
    history = _current_generation(history)
    deletes = [w for w in history if w.kind == "delete"]
    if deletes:
        inserted = history[0]
        surely_after = any(d.start > inserted.end for d in deletes)
        if surely_after and present is not None:
            return "deleted, but still there"
        return None  # gone, or a delete that may have hit the previous row with this key
    if present is None:
        return "written and never deleted, but missing"
    slots: dict[str, list[Write]] = defaultdict(list)
    for write in history:
        for column in write.values:
            slot = plan.slot_of(column)
            if not slots[slot] or slots[slot][-1] is not write:
                slots[slot].append(write)
    for slot, slot_writes in slots.items():
        if slot == SHARED:
            continue  # checked across tables (shared_slot_disagreements)
        candidates = _possibly_last(slot_writes)
        problems = [_disagrees(plan, slot, w, rows[w.release], backfilled) for w in candidates
                    if w.release in releases]
        if problems and all(problems):
            return problems[0] + (f" (or {len(problems) - 1} other order(s))" if len(problems) > 1 else "")
    return None


def _current_generation(history: list[Write]) -> list[Write]:
    """The writes to the row that now holds this key. SQLite hands a deleted row's rowid to
    the next insert, so one key can name several rows in turn; each insert starts afresh."""
    inserts = [w for w in history if w.kind == "insert"]
    if not inserts:
        return history
    # By commit, not by start: an insert that waited long for SQLite's lock can start before an
    # earlier generation's insert and still be the row that holds the key now.
    last = max(inserts, key=lambda w: w.end)
    return [last] + [w for w in history if w is not last and w.kind != "insert" and w.end >= last.start]


def _possibly_last(writes: list[Write]) -> list[Write]:
    """Writes that may have committed last: none started after they had committed."""
    latest_start = max(w.start for w in writes)
    return [w for w in writes if w.end >= latest_start]


# Phases in which the backfill may still reach a row (a move's target row still without values).
BEFORE_BACKFILL_DONE = ("seed", "release N", "expand", "migrate")
# Phases before any trigger exists: a NULL written to a filled column then waits for the backfill.
BEFORE_TRIGGERS = ("seed", "release N")


def _disagrees(plan: TablePlan, slot: str, write: Write, row: dict | None, backfilled: bool = True) -> str | None:
    for column, written in write.values.items():
        if plan.slot_of(column) != slot or row is None or row.get(column, UNVIEWABLE) is UNVIEWABLE:
            continue
        read = row[column]
        if written is None and plan.fill_of(column) is not None:
            if read is None and (backfilled or write.phase not in BEFORE_TRIGGERS):
                return f"release {write.release} reads {column} = NULL; its fill should have replaced the NULL"
            continue
        if not _same(read, written):
            return (f"release {write.release} wrote {column} = {written!r} last, "
                    f"but reads {column} = {read!r}")
    return None


def _same(read, written) -> bool:
    if isinstance(written, bool) and isinstance(read, int):
        return bool(read) == written  # MySQL's BOOLEAN is TINYINT
    return read == written


# --- a clean contract -------------------------------------------------------------------------

def contract_problems(conn: sa.Connection, dialect: TriggerDialect, change: Change, plans: Mapping[str, TablePlan],
                      release_n1: sa.MetaData) -> list[str]:
    """Everything that keeps a contracted change from being clean: release N+1's tables differ
    from its metadata, a table only release N knew is still there, or crossfade left objects."""
    return (schema_differences(conn, release_n1, release_names(plans, RELEASE_N1))
            + stale_tables(conn, plans) + leftovers(conn, dialect, change, plans))


def stale_tables(conn: sa.Connection, plans: Mapping[str, TablePlan]) -> list[str]:
    """Tables and views of release N's that release N+1 does not know (a renamed table's old
    name), still there."""
    retired = release_names(plans, RELEASE_N) - release_names(plans, RELEASE_N1)
    return [f"table or view {name} is still there" for name in sorted(live_tables(conn, retired))]


def schema_differences(conn: sa.Connection, release_n1: sa.MetaData, tables: set[str]) -> list[str]:
    """Alembic's comparison of the live tables with release N+1's metadata (empty: equal)."""
    def include(name, type_, *_):
        return type_ != "table" or name in tables

    def include_object(obj, name, type_, *_):
        return type_ != "table" or name in tables  # the parents copied along are not compared

    context = MigrationContext.configure(conn, opts={"include_name": include, "include_object": include_object,
                                                     "compare_type": True})
    diffs = _same_uniqueness_cancelled(compare_metadata(context, _only(release_n1, tables)))
    return [_describe_diff(d) for d in diffs]


def _same_uniqueness_cancelled(diffs: list) -> list:
    """A unique index where the metadata declares a unique constraint of the same name enforces
    the same thing; SQLite can add only the index without rebuilding the table."""
    def key(item) -> tuple:
        return item.table.name, item.name

    extra_indexes = {key(d[1]): d for d in diffs if isinstance(d, tuple) and d[0] == "remove_index"
                     and d[1].unique}
    missing = {key(d[1]): d for d in diffs if isinstance(d, tuple) and d[0] == "add_constraint"
               and isinstance(d[1], sa.UniqueConstraint)}
    same = set(extra_indexes) & set(missing)
    cancelled = {id(extra_indexes[k]) for k in same} | {id(missing[k]) for k in same}
    return [d for d in diffs if id(d) not in cancelled]


def _only(metadata: sa.MetaData, tables: set[str]) -> sa.MetaData:
    """The change's tables, and the tables their foreign keys point at (so the keys resolve)."""
    subset = sa.MetaData()
    wanted = set(tables)
    for name in sorted(tables):
        wanted |= {key.column.table.name for key in metadata.tables[name].foreign_keys}
    for name in sorted(wanted):
        metadata.tables[name].to_metadata(subset)
    return subset


def _describe_diff(diff) -> str:
    if isinstance(diff, list):  # column modifications come grouped
        return "; ".join(_describe_diff(d) for d in diff)
    kind, *rest = diff
    return f"{kind}: " + ", ".join(_short(r) for r in rest)


def _short(value) -> str:
    if isinstance(value, sa.Column):
        return f"column {value.name} {value.type}"
    if isinstance(value, sa.Table):
        return f"table {value.name}"
    return repr(value)


def leftovers(conn: sa.Connection, dialect: TriggerDialect, change: Change,
              plans: Mapping[str, TablePlan] | None = None) -> list[str]:
    """Triggers, functions and in-flight state that contract should have removed (on every
    table either release stores the change's tables in)."""
    tables = change.tables() | _plans_tables(plans or {})
    found = [f"{kind} {name} on {table}" for name, (kind, table, _)
             in sorted(dialect.catalog_objects(conn, tables).items())]
    found += [f"function {name} (orphan)" for name in dialect.orphan_functions(conn)]
    current = state.load(conn, change.id)
    if current.phase is not state.Phase.CONTRACTED:
        found.append(f"crossfade_state says {change.id} is {current.phase.value}, not contracted")
    if current.triggers or current.checkpoint or current.relaxed:
        found.append(f"crossfade_state still holds {change.id}'s trigger checksums, checkpoint "
                     "or relaxed columns")
    return found
