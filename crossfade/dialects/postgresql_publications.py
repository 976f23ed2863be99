"""PostgreSQL logical replication: the publications that carry a synced table, and what their
subscribers will and will not do (DESIGN section 8). A warning, never a refusal: the publisher's
rows stay right, and what a subscriber needs is done on the subscriber.

What holds, for a table in a publication:
- DDL does not replicate. A subscriber whose table lacks a column the publisher sends stops
  applying changes (`logical replication target relation ... is missing replicated column`), so
  release N+1's columns go on every subscriber before expand adds them here; a subscriber may
  keep columns contract dropped here (it ignores columns it is not sent).
- The subscriber applies rows with `session_replication_role = replica`: its own triggers do not
  fire, crossfade's included. A row arrives with the values this database's triggers and backfill
  gave it, so both releases' columns arrive synced, as long as the publication sends them all.
- A publication with a column list sends only the columns listed: the new columns are not sent,
  and on the subscriber they stay unsynced (NULL) for every replicated row, unless they are added
  to the list or crossfade's triggers on the subscriber fire for replicated rows
  (`ALTER TABLE ... ENABLE ALWAYS TRIGGER`).
"""

from __future__ import annotations

import sqlalchemy as sa

from .postgresql import _IN_SCHEMA


def publication_warnings(conn: sa.Connection, schema: str | None, tables: list[str]) -> list[str]:
    """One warning per synced table that a publication carries, naming the publications."""
    if not tables:
        return []
    listed = "pt.attnames" if conn.dialect.server_version_info >= (15,) else "NULL::name[]"
    rows = conn.execute(sa.text(
        f"SELECT pt.tablename, p.pubname, p.puballtables, {listed}, "
        "(SELECT array_agg(a.attname::text ORDER BY a.attnum) FROM pg_attribute a "
        " WHERE a.attrelid = format('%I.%I', pt.schemaname, pt.tablename)::regclass "
        " AND a.attnum > 0 AND NOT a.attisdropped) "
        "FROM pg_publication p JOIN pg_publication_tables pt ON pt.pubname = p.pubname "
        f"WHERE pt.schemaname = {_IN_SCHEMA} AND pt.tablename = ANY(:tables) ORDER BY 1, 2"
    ), {"schema": schema, "tables": tables}).all()
    by_table: dict[str, list[str]] = {}
    partial: dict[str, list[str]] = {}
    for table, publication, all_tables, sent, columns in rows:
        by_table.setdefault(table, []).append(publication + (" (FOR ALL TABLES)" if all_tables else ""))
        if sent is not None and set(sent) != set(columns):
            partial.setdefault(table, []).append(f"{publication} sends only ({', '.join(sent)})")
    return [_warning(table, publications, partial.get(table, [])) for table, publications in by_table.items()]


def _warning(table: str, publications: list[str], partial: list[str]) -> str:
    message = (f"table {table!r} is published for logical replication by {', '.join(publications)}: DDL does not "
               "replicate, so add release N+1's columns on every subscriber before expand here (a subscriber "
               "missing a column it is sent stops applying changes); subscribers apply rows with "
               "session_replication_role = replica, so their triggers, crossfade's included, do not fire for "
               "them: the rows arrive with the values this database's triggers and backfill gave them")
    if partial:
        message += (f"; but {'; '.join(partial)}: the new columns are not sent and stay unsynced on the "
                    "subscribers unless you add them to the publication's column list (ALTER PUBLICATION ... "
                    "SET TABLE) or enable crossfade's triggers there with ALTER TABLE ... ENABLE ALWAYS TRIGGER")
    return message
