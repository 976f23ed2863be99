"""One logical write as a release's application code sends it: through that release's own tables,
in the caller's transaction, the way an ORM would flush it.

For a table stored in one table this is one statement. Where a release keeps some columns in an
extension table (split_table's new table), an insert writes the main row and then the
extension's row; an update claims (locks) the main row, then updates each extension's row, or
makes it where there is none yet; a delete removes the extension rows, then the main row.

A value release N keeps on every row of a parent (a column move_column moves to that parent) is
updated on all of those rows at once, as an application keeping its copies consistent does: the
same value for every user of an org.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql, sqlite

from .model import Extension, Shape, TablePlan


def write_row(conn: sa.Connection, plan: TablePlan, release: str, kind: str, key: Any,
              values: dict) -> tuple[Any, int, dict]:
    """Write logical `values` to row `key` of `plan` (kind insert / update / delete) as release
    `release` does. Returns the row's key (an insert's new one), how many rows the write matched
    (0: the row was already gone) and the logical values it wrote: `values`, and NULL in the
    other columns of an extension row it had to make."""
    shape = plan.shapes[release]
    if any(extension.via != plan.key for extension in shape.extensions):
        # A row shared by many logical rows (a moved column's parent) is written differently:
        # its own kind of write, when an op needs it.
        raise NotImplementedError(f"the simulator writes only extensions keyed by {plan.name}'s key")
    if kind == "insert":
        copied = _values_of_the_parents(conn, plan, shape, values)
        return _insert(conn, plan, shape, {**values, **copied}), 1, values
    if kind == "delete":
        return key, _delete(conn, plan, shape, key), values
    shared = {name: value for name, value in values.items() if plan.moved_from_here(name)}
    if not shared:
        return (key, *_update(conn, plan, shape, key, values))
    own = {name: value for name, value in values.items() if name not in shared}
    parents = _lock_parents(conn, plan, shape, key, shared)  # first, as release N+1's writes of them
    if parents is None:
        return key, 0, values
    matched, written = _update(conn, plan, shape, key, own) if own else (1, {})
    if matched:
        matched = _update_every_copy(conn, plan, shape, key, shared, parents)
    return key, matched, {**written, **shared}


def _insert(conn: sa.Connection, plan: TablePlan, shape: Shape, values: dict) -> Any:
    inserted = conn.execute(shape.main.insert().values(_main_values(shape, values)))
    # A key the application supplies is in `values`; else the database numbered the row.
    key = plan.key_of(values) if plan.supplies_keys() else inserted.inserted_primary_key[0]
    for extension in shape.extensions:
        own = _extension_values(extension, values)
        # A row of the extension where the logical row has something to keep in it.
        if any(value is not None for value in own.values()):
            conn.execute(extension.table.insert().values({extension.key: key, **own}))
    return key


def _update(conn: sa.Connection, plan: TablePlan, shape: Shape, key: Any, values: dict) -> tuple[int, dict]:
    main_values = _main_values(shape, values)
    if main_values:
        where = plan.is_key(shape.main, key)
        matched = conn.execute(shape.main.update().where(where).values(main_values)).rowcount
    else:
        matched = _claim(conn, plan, shape, key)
    written = dict(values)
    for extension in shape.extensions:
        own = _extension_values(extension, values)
        if matched and own:
            made = _write_extension(conn, plan, shape, extension, key, own)
            if made is None:
                return 0, values  # SQLite: another writer deleted the row since the claim
            written.update(made)
    return matched, written


def _write_extension(conn: sa.Connection, plan: TablePlan, shape: Shape, extension: Extension, key: Any,
                     values: dict) -> dict | None:
    """Update the extension's row, or make it when there is none: then every column the write
    does not give is NULL, as a new ORM object's would be. Returns the logical values the row
    got beyond `values` (None: the logical row is gone)."""
    table = extension.table
    if conn.execute(table.update().where(table.c[extension.key] == key).values(values)).rowcount:
        return {}
    absent = {c: None for c in extension.columns.values() if c not in values}
    if not conn.execute(_upsert(conn, plan, shape, extension, key, {**values, **absent})).rowcount:
        return None
    logical = {physical: name for name, physical in extension.columns.items()}
    return {logical[c]: None for c in absent}


def _values_of_the_parents(conn: sa.Connection, plan: TablePlan, shape: Shape, values: dict) -> dict:
    """The values a new row copies from the other rows of its parent (release N keeps them equal:
    it locks the parent, then copies them from one of its rows)."""
    copied = {}
    for move in {plan.moved_from_here(c) for c in shape.column_names()} - {None}:
        parent = values.get(move.source_key)
        if parent is None or any(name in values for name in move.source_columns):
            continue  # no parent, or the values are given (the seed rows, made to agree)
        _lock_parent(conn, move, parent)
        for name in move.source_columns:
            copied[name] = conn.execute(sa.select(shape.main.c[name]).where(
                shape.main.c[move.source_key] == parent, shape.main.c[name].is_not(None)).limit(1)).scalar()
    return copied


def _lock_parents(conn: sa.Connection, plan: TablePlan, shape: Shape, key: Any, shared: dict) -> dict | None:
    """Lock the parent rows whose values `shared` writes, before any other row: release N+1's
    writes of those values lock the parent first too, so the two never deadlock on them.
    Returns column -> parent key (None: no parent), or None when the row is gone."""
    parents = {}
    for name in shared:
        via = shape.main.c[plan.moved_from_here(name).source_key]
        found = conn.execute(sa.select(via).where(plan.is_key(shape.main, key))).first()
        if found is None:
            return None
        if found[0] is not None:
            _lock_parent(conn, plan.moved_from_here(name), found[0])
        parents[name] = found[0]
    return parents


def _update_every_copy(conn: sa.Connection, plan: TablePlan, shape: Shape, key: Any, shared: dict,
                       parents: dict) -> int:
    """`shared` values on the row `key` and on every other row of its parent; 0 when the row is gone."""
    matched = 0
    for name, value in shared.items():
        via = shape.main.c[plan.moved_from_here(name).source_key]
        same_parent = plan.is_key(shape.main, key) if parents[name] is None else via == parents[name]
        matched = min(1, conn.execute(shape.main.update().where(same_parent).values({name: value})).rowcount)
    return matched


def _lock_parent(conn: sa.Connection, move, parent: Any) -> None:
    """Lock the parent row for the rest of the transaction. SQLite has no row locks and ignores
    FOR UPDATE: an UPDATE that changes nothing takes its (database-wide) write lock instead."""
    table = sa.table(move.target, sa.column(move.target_key))
    key = table.c[move.target_key]
    if conn.dialect.name == "sqlite":
        conn.execute(table.update().where(key == parent).values({move.target_key: key}))
    else:
        conn.execute(sa.select(key).where(key == parent).with_for_update())


def _delete(conn: sa.Connection, plan: TablePlan, shape: Shape, key: Any) -> int:
    where = plan.is_key(shape.main, key)
    if shape.extensions:
        # Children first, as an ORM's delete cascade does: SQLite enforces the foreign key's
        # ON DELETE CASCADE only with PRAGMA foreign_keys=ON.
        if not _claim(conn, plan, shape, key):
            return 0
        for extension in shape.extensions:
            conn.execute(extension.table.delete().where(extension.table.c[extension.key] == key))
    return conn.execute(shape.main.delete().where(where)).rowcount


def _claim(conn: sa.Connection, plan: TablePlan, shape: Shape, key: Any) -> int:
    """Lock the main row before writing the rows that hang off it, as release N's writes lock it
    first too (the same lock order, so no deadlock between them, and no trigger of theirs makes
    the extension's row meanwhile); 0 when the row is gone. The lock is the one an UPDATE of the
    row takes (PostgreSQL: FOR NO KEY UPDATE), so a foreign key check on the row (the backfill
    inserting the extension's row) does not wait for it. SQLite has no row locks: there the first
    write takes the database's, and `_upsert` checks that the row is still there."""
    query = (sa.select(*plan.key_columns(shape.main)).where(plan.is_key(shape.main, key))
             .with_for_update(key_share=True))
    return int(conn.execute(query).first() is not None)


def _upsert(conn: sa.Connection, plan: TablePlan, shape: Shape, extension: Extension, key: Any,
            values: dict) -> sa.Insert:
    """The extension's row with `values`, made, or overwritten where the backfill made it since
    the UPDATE found none (PostgreSQL's backfill does not wait for the claim's lock)."""
    table = extension.table
    row = {extension.key: key, **values}
    name = conn.dialect.name
    if name == "sqlite":
        exists = sa.exists().where(plan.is_key(shape.main, key))
        select = sa.select(*[sa.literal(v, table.c[c].type) for c, v in row.items()]).where(exists)
        insert = sqlite.insert(table).from_select(list(row), select)
        return insert.on_conflict_do_update(index_elements=[extension.key],
                                            set_={c: insert.excluded[c] for c in values})
    if name == "postgresql":
        insert = postgresql.insert(table).values(row)
        return insert.on_conflict_do_update(index_elements=[extension.key],
                                            set_={c: insert.excluded[c] for c in values})
    insert = mysql.insert(table).values(row)
    return insert.on_duplicate_key_update({c: insert.inserted[c] for c in values})


def _main_values(shape: Shape, values: dict) -> dict:
    return {name: value for name, value in values.items() if shape.extension_of(name) is None}


def _extension_values(extension: Extension, values: dict) -> dict:
    """`values` of the extension's columns, by its own column names."""
    return {extension.columns[name]: value for name, value in values.items() if name in extension.columns}
