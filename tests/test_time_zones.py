"""Time zones (issue 11, finding 3): the epoch helpers on zone-aware and naive columns, written
through the triggers by sessions in several time zones, must give the same instant everywhere.

A PostgreSQL `timestamptz` and a MariaDB `TIMESTAMP` hold an instant; each writer shows and reads
it in its own session zone. A naive column (`timestamp`, `DATETIME`, SQLite's text) holds a UTC
wall time, which no session zone may shift. Release N+1 writing epoch 1717243200 from New York
must leave release N reading 2024-06-01 12:00 UTC, and release N writing that instant from
Kolkata must give release N+1 1717243200.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import time

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql
from sqlalchemy.pool import NullPool

from crossfade import Change, ops
from crossfade import transforms as tf
from crossfade.errors import TransformError
from crossfade.runner import Runner

UTC = dt.timezone.utc
NOON = dt.datetime(2024, 6, 1, 12, 0, tzinfo=UTC)  # epoch 1717243200
NOON_EPOCH = 1717243200

# Each writer's zone, as its database spells it (MariaDB, without time zone tables, takes offsets
# up to +13:00: New York's summer one, Kolkata's, UTC, Tonga's; SQLite has no session zone, so the
# process's TZ changes), with its offset on 2024-06-01.
HOURS = dt.timedelta(hours=1)
ZONES = {
    "postgresql": [
        ("America/New_York", -4 * HOURS),
        ("Asia/Kolkata", 5.5 * HOURS),
        ("UTC", 0 * HOURS),
        ("Pacific/Kiritimati", 14 * HOURS),
    ],
    "mysql": [("-04:00", -4 * HOURS), ("+05:30", 5.5 * HOURS), ("+00:00", 0 * HOURS), ("+13:00", 13 * HOURS)],
    "sqlite": [
        ("America/New_York", -4 * HOURS),
        ("Asia/Kolkata", 5.5 * HOURS),
        ("UTC", 0 * HOURS),
        ("Etc/GMT-14", 14 * HOURS),
    ],
}

# The zone-aware type where the dialect has one, microseconds kept; and in whole seconds, which
# epoch_seconds keeps (SQLite's text always holds microseconds: there the change is lossy).
AWARE = {"postgresql": sa.DateTime(timezone=True), "mysql": mysql.TIMESTAMP(fsp=6), "sqlite": sa.DateTime}
NAIVE = {"postgresql": sa.DateTime, "mysql": mysql.DATETIME(fsp=6), "sqlite": sa.DateTime}
KINDS = {"aware": AWARE, "naive": NAIVE}
SECONDS = {
    "aware": {"postgresql": postgresql.TIMESTAMP(timezone=True, precision=0), "mysql": mysql.TIMESTAMP()},
    "naive": {"postgresql": postgresql.TIMESTAMP(precision=0), "mysql": mysql.DATETIME()},
}


@contextlib.contextmanager
def writer(engine: sa.Engine, zone: str):
    """A connection of a writer whose session runs in `zone`."""
    if engine.dialect.name == "sqlite":
        before = os.environ.get("TZ")
        os.environ["TZ"] = zone
        time.tzset()
        try:
            with engine.begin() as conn:
                yield conn
        finally:
            os.environ.pop("TZ") if before is None else os.environ.__setitem__("TZ", before)
            time.tzset()
        return
    own = sa.create_engine(engine.url, poolclass=NullPool)
    try:
        with own.begin() as conn:
            if engine.dialect.name == "postgresql":
                conn.exec_driver_sql(f"SET TIME ZONE '{zone}'")
            else:
                conn.exec_driver_sql(f"SET time_zone = '{zone}'")
            yield conn
    finally:
        own.dispose()


def as_written(dialect: str, kind: str, instant: dt.datetime, offset: dt.timedelta):
    """What release N passes for `instant` from a session at `offset`: an aware value where the
    driver sends the offset (PostgreSQL), the session's wall time for a MariaDB TIMESTAMP, the
    UTC wall time for a naive column."""
    if kind == "naive" or dialect == "sqlite":
        return instant.astimezone(UTC).replace(tzinfo=None)
    if dialect == "postgresql":
        return instant
    return instant.astimezone(dt.timezone(offset)).replace(tzinfo=None)


def utc_instant(value: dt.datetime | None) -> dt.datetime | None:
    """A value read in a UTC session, as an aware UTC datetime."""
    if value is None:
        return None
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


def epoch_change(column_type, up=tf.epoch_seconds, down=tf.from_epoch_seconds, lossy=False):
    metadata = sa.MetaData()
    table = sa.Table(
        "events",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(40)),
        sa.Column("happened_at", column_type, nullable=True),
    )
    change = Change(
        ops.replace_column(
            "events", "happened_at", sa.Column("happened_s", sa.BigInteger), up=up, down=down, lossy=lossy
        ),
        id="events_epoch",
    )
    return metadata, table, change


def read_all(engine: sa.Engine) -> dict:
    both = sa.Table("events", sa.MetaData(), autoload_with=engine)
    with writer(engine, "UTC" if engine.dialect.name != "mysql" else "+00:00") as conn:
        return {r.name: r for r in conn.execute(sa.select(both))}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_epoch_seconds_written_from_any_session_zone_is_the_same_instant(engine, dialect_name, kind):
    metadata, old, change = epoch_change(SECONDS[kind].get(dialect_name, sa.DateTime), lossy=dialect_name == "sqlite")
    metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(
            old.insert(), [{"name": "seeded", "happened_at": as_written(dialect_name, kind, NOON, dt.timedelta(0))}]
        )
    runner = Runner(engine)
    runner.expand(change)
    new = sa.Table(
        "events",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(40)),
        sa.Column("happened_s", sa.BigInteger),
    )

    for i, (zone, offset) in enumerate(ZONES[dialect_name]):
        instant = NOON + dt.timedelta(seconds=i)
        with writer(engine, zone) as conn:  # release N+1 writes epochs, release N writes instants
            conn.execute(new.insert(), [{"name": f"n1-{zone}", "happened_s": NOON_EPOCH + i}])
            conn.execute(
                old.insert(), [{"name": f"n-{zone}", "happened_at": as_written(dialect_name, kind, instant, offset)}]
            )
    rows = read_all(engine)
    for i, (zone, _) in enumerate(ZONES[dialect_name]):
        assert utc_instant(rows[f"n1-{zone}"].happened_at) == NOON + dt.timedelta(seconds=i), zone
        assert rows[f"n-{zone}"].happened_s == NOON_EPOCH + i, zone

    runner.migrate(change)
    assert read_all(engine)["seeded"].happened_s == NOON_EPOCH
    for i, (zone, offset) in enumerate(ZONES[dialect_name]):
        with writer(engine, zone) as conn:  # updates, each side in turn
            conn.execute(new.update().where(new.c.name == f"n1-{zone}").values(happened_s=NOON_EPOCH - 3600 * i))
            later = as_written(dialect_name, kind, NOON + dt.timedelta(hours=i), offset)
            conn.execute(old.update().where(old.c.name == f"n-{zone}").values(happened_at=later))
    rows = read_all(engine)
    for i, (zone, _) in enumerate(ZONES[dialect_name]):
        assert utc_instant(rows[f"n1-{zone}"].happened_at) == NOON - dt.timedelta(hours=i), zone
        assert rows[f"n-{zone}"].happened_s == NOON_EPOCH + 3600 * i, zone
    assert not runner.problems(change)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_epoch_micros_written_from_any_session_zone_keeps_every_microsecond(engine, dialect_name, kind):
    metadata, old, change = epoch_change(KINDS[kind][dialect_name], tf.epoch_micros, tf.from_epoch_micros)
    metadata.create_all(engine)
    Runner(engine).expand(change)
    new = sa.Table(
        "events",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(40)),
        sa.Column("happened_s", sa.BigInteger),
    )
    micros = NOON_EPOCH * 1_000_000 + 123456
    for zone, offset in ZONES[dialect_name]:
        with writer(engine, zone) as conn:
            conn.execute(new.insert(), [{"name": f"n1-{zone}", "happened_s": micros}])
            instant = NOON + dt.timedelta(microseconds=654321)
            conn.execute(
                old.insert(), [{"name": f"n-{zone}", "happened_at": as_written(dialect_name, kind, instant, offset)}]
            )
    rows = read_all(engine)
    for zone, _ in ZONES[dialect_name]:
        assert utc_instant(rows[f"n1-{zone}"].happened_at) == NOON + dt.timedelta(microseconds=123456), zone
        assert rows[f"n-{zone}"].happened_s == NOON_EPOCH * 1_000_000 + 654321, zone


def test_a_conversion_hidden_in_another_expression_is_refused_for_a_zone_aware_column(engine, dialect_name):
    """Nested, from_epoch_seconds cannot see the column it fills; on a zone-aware one it would
    store the writer's wall time, and crossfade's own UTC session would never show it."""
    hidden = lambda n: sa.case((n.is_(None), sa.null()), else_=tf.from_epoch_seconds(n))
    metadata, _, change = epoch_change(
        SECONDS["aware"].get(dialect_name, sa.DateTime), down=hidden, lossy=dialect_name == "sqlite"
    )
    metadata.create_all(engine)
    if dialect_name == "sqlite":  # no zone-aware column: the naive form is the right one
        Runner(engine).expand(change)
        return
    with pytest.raises(TransformError) as caught:
        Runner(engine).expand(change)
    assert "from_epoch_seconds is nested in another expression" in str(caught.value)
    assert "happened_at is zone-aware" in str(caught.value)
    assert [c["name"] for c in sa.inspect(engine).get_columns("events")] == ["id", "name", "happened_at"]
