"""Writer identification: release N+1 marks its connections, so the triggers know who wrote.

"B is NULL" means two things while a change is in flight: *not derived yet* (a row the backfill
has not reached, or release N's insert) and *release N+1 wrote NULL*. No trigger can tell them
apart from the row alone (DESIGN 2, "The NULL ambiguity"). With one call on release N+1's engine,

    crossfade.identify_new_release(engine)

its writes are authoritative, NULLs included (`A := down(B)`), and release N+1 may start right
after expand. Declare it on the change too (`Change(..., new_release_identified=True)`), so that
expand installs triggers that read the mark. Release N needs nothing.

- PostgreSQL: each connection runs `SET crossfade.release = 'new'` (a session setting). An UPDATE
  that names a new column without changing it fires the column's `UPDATE OF` trigger.
- MySQL / MariaDB: each connection sets `@crossfade_release = 'new'`, and each UPDATE is preceded
  by `SET @crossfade_named = ...`, the columns its SET names (hex-encoded), since a MySQL trigger
  cannot see which columns a statement named.
- SQLite has neither: release N+1 starts after migrate there, as without identification.

A connection pooler that resets sessions (`DISCARD ALL`, pgbouncer's transaction mode) loses the
setting: identify the engine that connects through it only where sessions are kept.
"""

from __future__ import annotations

import re

import sqlalchemy as sa
from sqlalchemy import event

RELEASE_SETTING = "crossfade.release"

_TOKEN = re.compile(r"`(?:[^`]|``)*`|'(?:[^'\\]|\\.|'')*'|\"(?:[^\"\\]|\\.)*\"|\w+|\S", re.DOTALL)
_SET_ENDS = {"WHERE", "ORDER", "LIMIT", "RETURNING"}
_UPDATE_OPTIONS = {"LOW_PRIORITY", "IGNORE"}


def identify_new_release(engine: sa.Engine) -> bool:
    """Mark every connection of `engine` (release N+1's) as release N+1's. Call it once, before the
    engine's first use. True where the database can tell (PostgreSQL, MySQL/MariaDB); False on
    SQLite, where release N+1 must wait for migrate (`crossfade status` says when it may start)."""
    backend = engine.dialect.name
    if backend == "postgresql":
        event.listen(engine, "connect", _mark_postgresql)
    elif backend in ("mysql", "mariadb"):
        event.listen(engine, "connect", _mark_mysql)
        event.listen(engine, "before_cursor_execute", _name_updated_columns)
    else:
        return False
    engine.dispose()  # connections opened before the call are not marked: open new ones
    return True


def _mark_postgresql(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute(f"SET {RELEASE_SETTING} = 'new'")
    cursor.close()
    dbapi_connection.commit()  # a session setting made in a transaction that rolls back is undone


def _mark_mysql(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("SET @crossfade_release = 'new'")
    cursor.close()


def _name_updated_columns(conn, cursor, statement, parameters, context, executemany) -> None:
    named = updated_columns(statement)
    if named is not None:
        table, columns = named
        cursor.execute("SET @crossfade_named = %s", ("".join(column_marker(table, c) for c in columns),))


def column_marker(table: str, column: str) -> str:
    """How `@crossfade_named` lists one column: hex-encoded, so no name can break the list. MySQL
    compares column names without regard to case, so neither does the marker."""
    return f",{table.lower().encode().hex()}:{column.lower().encode().hex()},"


def updated_columns(sql: str) -> tuple[str, list[str]] | None:
    """(table, columns named in SET) for an `UPDATE table SET col = ..., ...` statement, else None."""
    tokens = _TOKEN.findall(sql)
    if not tokens or tokens[0].upper() != "UPDATE":
        return None
    position = 1
    while position < len(tokens) and tokens[position].upper() in _UPDATE_OPTIONS:
        position += 1
    upper = [t.upper() for t in tokens]
    if "SET" not in upper[position:]:
        return None
    target = tokens[position:upper.index("SET", position)]
    if not target:
        return None
    # `schema.table` names the table last; an alias or a join after it does not count.
    table = target[2] if len(target) > 2 and target[1] == "." else target[0]
    return _unquote(table), _set_columns(tokens[upper.index("SET", position) + 1:])


def _set_columns(tokens: list[str]) -> list[str]:
    """The assigned column of each `[t.]col = expr` of a SET list, up to WHERE / ORDER / LIMIT."""
    columns: list[str] = []
    depth, start = 0, 0
    for index, token in enumerate(tokens + [","]):
        if token == "(":
            depth += 1
        elif token == ")":
            depth -= 1
        elif depth == 0 and (token == "," or token.upper() in _SET_ENDS):
            target = tokens[start:index]
            if "=" in target:
                columns.append(_unquote(target[target.index("=") - 1]))
            start = index + 1
            if token != ",":
                break
    return columns


def _unquote(token: str) -> str:
    if token.startswith("`") and token.endswith("`"):
        return token[1:-1].replace("``", "`")
    return token


__all__ = ["identify_new_release"]
