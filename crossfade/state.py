"""The `crossfade_state` table: per change, its phase, backfill checkpoint and trigger checksums."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import Enum

import sqlalchemy as sa

STATE_TABLE = "crossfade_state"
REPAIRS = "crossfade:repairs"  # ChangeState.repairs' key in the checkpoint JSON


class Phase(str, Enum):
    PENDING = "pending"
    EXPANDING = "expanding"
    EXPANDED = "expanded"
    MIGRATING = "migrating"
    MIGRATED = "migrated"
    CONTRACTING = "contracting"
    CONTRACTED = "contracted"
    ROLLING_BACK = "rolling_back"
    ROLLED_BACK = "rolled_back"


# Phases in which the change's triggers must be installed.
SYNCING = {Phase.EXPANDED, Phase.MIGRATING, Phase.MIGRATED}
# Phases after which contract has nothing left of expand's triggers to keep.
IN_FLIGHT = {Phase.EXPANDING, Phase.EXPANDED, Phase.MIGRATING, Phase.MIGRATED,
             Phase.CONTRACTING, Phase.ROLLING_BACK}

_metadata = sa.MetaData()
state_table = sa.Table(
    STATE_TABLE, _metadata,
    sa.Column("change_id", sa.String(200), primary_key=True),
    sa.Column("phase", sa.String(20), nullable=False),
    sa.Column("tables", sa.Text, nullable=False),
    sa.Column("checkpoint", sa.Text, nullable=False),
    sa.Column("triggers", sa.Text, nullable=False),
    sa.Column("relaxed", sa.Text, nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False),
)


@dataclass
class ChangeState:
    change_id: str
    phase: Phase = Phase.PENDING
    tables: list[str] = field(default_factory=list)
    # table -> {"last": [key values] | None, "done": rows, "total": rows, "complete": bool}
    checkpoint: dict = field(default_factory=dict)
    # object name -> {"kind", "table", "catalog": sha of the definition as stored, "generated": sha}
    triggers: dict = field(default_factory=dict)
    # [table, column] pairs whose NOT NULL expand relaxed (SQLite), restored by rollback; and
    # old columns contract relaxed just before dropping the triggers (then dropped with them)
    relaxed: list = field(default_factory=list)
    # Trigger repairs (expand found them missing): {"at": ISO time, "reconciled": rows or None
    # while in progress, "ambiguous": rows}. Stored in the checkpoint column's JSON (no new column
    # for state tables that exist already), under a key no table name takes.
    repairs: list = field(default_factory=list)
    # The database schema the change's tables are in, resolved once before expand (PostgreSQL);
    # None: the connection's current schema (records from before schemas were resolved).
    schema: str | None = None


def ensure_table(conn: sa.Connection) -> None:
    _metadata.create_all(conn, checkfirst=True)


def has_table(conn: sa.Connection) -> bool:
    return sa.inspect(conn).has_table(STATE_TABLE)


def load(conn: sa.Connection, change_id: str) -> ChangeState:
    if not has_table(conn):
        return ChangeState(change_id)
    found = conn.execute(sa.select(state_table).where(state_table.c.change_id == change_id)).first()
    if found is None:
        return ChangeState(change_id)
    return _from_row(found)


def load_all(conn: sa.Connection) -> list[ChangeState]:
    if not has_table(conn):
        return []
    return [_from_row(r) for r in conn.execute(sa.select(state_table).order_by(state_table.c.change_id))]


def save(conn: sa.Connection, state: ChangeState) -> None:
    values = {
        "phase": state.phase.value,
        "tables": _tables_json(state),
        "checkpoint": json.dumps({**state.checkpoint, **({REPAIRS: state.repairs} if state.repairs else {})},
                                 default=str),
        "triggers": json.dumps(state.triggers, sort_keys=True),
        "relaxed": json.dumps(state.relaxed),
        "updated_at": datetime.now(timezone.utc).replace(tzinfo=None),
    }
    updated = conn.execute(sa.update(state_table).where(state_table.c.change_id == state.change_id)
                           .values(**values))
    if updated.rowcount == 0:
        conn.execute(sa.insert(state_table).values(change_id=state.change_id, **values))


def delete(conn: sa.Connection, change_id: str) -> None:
    if has_table(conn):
        conn.execute(sa.delete(state_table).where(state_table.c.change_id == change_id))


def _tables_json(state: ChangeState) -> str:
    """The tables, with their schema when one was resolved (kept in the same column, so the
    state table of an earlier crossfade needs no change)."""
    if state.schema is None:
        return json.dumps(sorted(state.tables))
    return json.dumps({"schema": state.schema, "tables": sorted(state.tables)})


def _from_row(r) -> ChangeState:
    tables = json.loads(r.tables)
    schema = tables["schema"] if isinstance(tables, dict) else None
    checkpoint = json.loads(r.checkpoint)
    repairs = checkpoint.pop(REPAIRS, [])
    return ChangeState(
        change_id=r.change_id, phase=Phase(r.phase),
        tables=tables["tables"] if isinstance(tables, dict) else tables,
        checkpoint=checkpoint, triggers=json.loads(r.triggers),
        relaxed=json.loads(r.relaxed), repairs=repairs, schema=schema,
    )
