"""Keystone 024 (examples/keystone/k024_password_int_timestamps): `password.created_at` and
`expires_at` (DateTime, naive UTC) gain `created_at_int` and `expires_at_int` (BigInteger,
microseconds since the epoch), kept in step by crossfade's triggers both ways, the change
Keystone made its application do because triggers were "complex and error-prone".

Every test writes through the real triggers and reads back. Release N's DateTime keeps
microseconds on PostgreSQL and SQLite; Keystone's `sa.DateTime` on MySQL/MariaDB is a plain
DATETIME, whole seconds: there release N reads release N+1's microseconds floored to the second
while release N+1 keeps them.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool
from test_time_zones import ZONES, writer

from crossfade import identify_new_release
from crossfade.errors import CrossfadeError
from crossfade.loader import load_changes
from crossfade.runner import Runner
from crossfade.testing import Settings, simulate

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "keystone" / "k024_password_int_timestamps"
LOADED = load_changes(EXAMPLE / "change.py")
CHANGE = LOADED.changes[0]
SIMULATED = LOADED.simulations[0]
RELEASE_N, RELEASE_N1 = SIMULATED.release_n, SIMULATED.release_n1
OLD = RELEASE_N.tables["password"]  # what release N's code writes
NEW = RELEASE_N1.tables["password"]  # what release N+1's code writes

EPOCH = dt.datetime(1970, 1, 1)
MICRO = dt.timedelta(microseconds=1)
# Release N's timestamps, by what they test: microseconds, just before 1970, the first and last
# microsecond of DATETIME's range, the epoch itself.
DATETIMES = {
    "today": dt.datetime(2017, 3, 1, 12, 34, 56, 789012),
    "before 1970": dt.datetime(1969, 12, 31, 23, 59, 59, 500000),
    "first": dt.datetime(1000, 1, 1, 0, 0, 0, 1),
    "last": dt.datetime(9999, 12, 31, 23, 59, 59, 999999),
    "epoch": EPOCH,
}
# Release N+1's, as microseconds: the same instants and a few more odd ones.
MICROS = {
    "today": 1488371696789012,
    "before 1970": -500000,
    "minus one": -1,
    "first": -30610223999999999,
    "last": 253402300799999999,
    "epoch": 0,
}


def micros_of(value: dt.datetime) -> int:
    return (value - EPOCH) // MICRO


def held(engine: sa.Engine, value: dt.datetime) -> dt.datetime:
    """`value` as release N's DateTime column holds it: whole seconds, floored, in MySQL's DATETIME."""
    return value.replace(microsecond=0) if engine.dialect.name == "mysql" else value


def setup_release_n(engine: sa.Engine, passwords: dict[str, dt.datetime] | None = None) -> None:
    """Release N's tables, three local users, and a password per name written by release N."""
    RELEASE_N.create_all(engine)
    with engine.begin() as conn:
        conn.execute(RELEASE_N.tables["local_user"].insert(), [
            {"id": i, "user_id": f"user-{i}", "domain_id": "default", "name": f"name-{i}"} for i in (1, 2, 3)])
        for name, value in (passwords or {}).items():
            conn.execute(OLD.insert().values(local_user_id=1, password=name, created_at=value, expires_at=None))


def release_n1_engine(engine: sa.Engine) -> sa.Engine:
    """Release N+1's engine: it identifies its writes where the database can tell."""
    own = sa.create_engine(engine.url, poolclass=NullPool)
    identify_new_release(own)
    return own


def rows(engine: sa.Engine) -> dict[str, sa.Row]:
    """Every password row, both releases' columns, by its `password` (used as a label)."""
    both = sa.Table("password", sa.MetaData(), autoload_with=engine)
    with engine.connect() as conn:
        return {r.password: r for r in conn.execute(sa.select(both))}


def test_release_n_timestamps_reach_release_n1_as_exact_microseconds(engine):
    setup_release_n(engine)
    Runner(engine).expand(CHANGE)
    with engine.begin() as conn:
        for name, value in DATETIMES.items():
            conn.execute(OLD.insert().values(local_user_id=1, password=name, created_at=value, expires_at=value))
        conn.execute(OLD.insert().values(local_user_id=2, password="never expires", created_at=EPOCH))
    found = rows(engine)
    for name, value in DATETIMES.items():
        assert found[name].created_at == held(engine, value), name
        assert found[name].created_at_int == micros_of(held(engine, value)), name
        assert found[name].expires_at_int == micros_of(held(engine, value)), name
    assert found["never expires"].expires_at_int is None
    assert found["last"].created_at_int == (253402300799999999 if engine.dialect.name != "mysql" else 253402300799000000)

    with engine.begin() as conn:  # release N moves a timestamp, clears an expiry
        conn.execute(OLD.update().where(OLD.c.password == "today").values(expires_at=None))
        conn.execute(OLD.update().where(OLD.c.password == "epoch").values(created_at=DATETIMES["before 1970"]))
    found = rows(engine)
    assert found["today"].expires_at_int is None
    assert found["epoch"].created_at_int == micros_of(held(engine, DATETIMES["before 1970"]))
    assert not Runner(engine).problems(CHANGE)


def test_release_n1_microseconds_reach_release_n_and_survive_release_n_writes(engine, dialect_name):
    setup_release_n(engine)
    runner = Runner(engine)
    runner.expand(CHANGE)
    if dialect_name == "sqlite":  # no writer identification: release N+1 starts after migrate
        runner.migrate(CHANGE)
    new_release = release_n1_engine(engine)
    try:
        with new_release.begin() as conn:
            for name, n in MICROS.items():
                conn.execute(NEW.insert().values(local_user_id=2, password=name, created_at_int=n, expires_at_int=n))
            conn.execute(NEW.insert().values(local_user_id=2, password="never expires", created_at_int=7))
    finally:
        new_release.dispose()
    found = rows(engine)
    for name, n in MICROS.items():
        exact = EPOCH + n * MICRO
        assert (found[name].created_at_int, found[name].expires_at_int) == (n, n), name  # release N+1's own
        assert found[name].created_at == held(engine, exact), name
        assert found[name].expires_at == held(engine, exact), name
    assert found["never expires"].expires_at is None
    assert found["before 1970"].created_at == held(engine, dt.datetime(1969, 12, 31, 23, 59, 59, 500000))

    with engine.begin() as conn:  # release N writes other columns: release N+1's microseconds stay
        conn.execute(OLD.update().values(self_service=True))
    found = rows(engine)
    assert {name: found[name].created_at_int for name in MICROS} == MICROS
    assert not runner.problems(CHANGE)


def test_release_n1_clearing_an_expiry_clears_release_ns(engine, dialect_name):
    setup_release_n(engine)
    runner = Runner(engine)
    runner.expand(CHANGE)
    with engine.begin() as conn:
        conn.execute(OLD.insert().values(local_user_id=3, password="p", created_at=EPOCH,
                                         expires_at=DATETIMES["today"]))
    if dialect_name == "sqlite":
        runner.migrate(CHANGE)
    new_release = release_n1_engine(engine)
    try:
        with new_release.begin() as conn:
            conn.execute(NEW.update().where(NEW.c.password == "p").values(expires_at_int=None))
    finally:
        new_release.dispose()
    assert rows(engine)["p"].expires_at is None


@pytest.mark.parametrize("direction", ["release N writes", "release N+1 writes"])
def test_the_writers_session_time_zone_never_shifts_a_timestamp(engine, dialect_name, direction):
    """DateTime is naive UTC: a writer in New York, Kolkata or Kiritimati stores the same instant."""
    setup_release_n(engine)
    runner = Runner(engine)
    runner.expand(CHANGE)
    runner.migrate(CHANGE)
    value = DATETIMES["today"]
    for zone, _ in ZONES[dialect_name]:
        with writer(engine, zone) as conn:
            if direction == "release N writes":
                conn.execute(OLD.insert().values(local_user_id=1, password=zone, created_at=value, expires_at=value))
            else:
                conn.execute(NEW.insert().values(local_user_id=1, password=zone, created_at_int=micros_of(value),
                                                 expires_at_int=micros_of(value)))
    found = rows(engine)
    for zone, _ in ZONES[dialect_name]:
        assert found[zone].created_at == found[zone].expires_at == held(engine, value), zone
        expected = micros_of(held(engine, value)) if direction == "release N writes" else micros_of(value)
        assert found[zone].created_at_int == found[zone].expires_at_int == expected, zone


def test_migrate_fills_existing_passwords_and_contract_leaves_release_n1s_table(engine):
    setup_release_n(engine, DATETIMES)
    runner = Runner(engine)
    runner.expand(CHANGE)
    assert {r.created_at_int for r in rows(engine).values()} == {None}  # not derived yet
    runner.migrate(CHANGE)
    found = rows(engine)
    for name, value in DATETIMES.items():
        assert found[name].created_at_int == micros_of(held(engine, value)), name
        assert found[name].expires_at_int is None, name
    runner.contract(CHANGE)

    columns = {c["name"]: c for c in sa.inspect(engine).get_columns("password")}
    assert set(columns) == {"id", "local_user_id", "password", "self_service", "created_at_int", "expires_at_int"}
    assert not columns["created_at_int"].get("nullable", True)
    with engine.begin() as conn:  # Keystone's "unset" created_at_int is 0, its server default
        conn.execute(NEW.insert().values(local_user_id=1, password="unset"))
    found = rows(engine)
    assert found["unset"].created_at_int == 0 and found["unset"].expires_at_int is None
    assert found["today"].created_at_int == micros_of(held(engine, DATETIMES["today"]))
    with engine.connect() as conn:
        assert not runner.dialect.catalog_objects(conn, {"password"})  # no trigger or function left


def test_rollback_gives_release_n_its_table_back_with_release_n1s_writes_in_it(engine, dialect_name):
    setup_release_n(engine, {"seeded": DATETIMES["today"]})
    runner = Runner(engine)
    runner.expand(CHANGE)
    if dialect_name == "sqlite":
        runner.migrate(CHANGE)
    new_release = release_n1_engine(engine)
    try:
        with new_release.begin() as conn:
            conn.execute(NEW.insert().values(local_user_id=1, password="n1", created_at_int=MICROS["first"]))
    finally:
        new_release.dispose()
    runner.rollback(CHANGE)
    assert {c["name"] for c in sa.inspect(engine).get_columns("password")} == set(OLD.c.keys())
    found = rows(engine)
    assert found["seeded"].created_at == held(engine, DATETIMES["today"])
    assert found["n1"].created_at == held(engine, EPOCH + MICROS["first"] * MICRO)


def test_a_seconds_transform_on_microsecond_timestamps_is_refused_before_any_ddl(engine, dialect_name):
    """epoch_seconds would drop release N's microseconds: the round-trip check names one and
    expand changes nothing. (A MySQL DATETIME holds none, so there it is accepted.)"""
    from crossfade import Change, ops, transforms

    seconds = Change(ops.replace_column("password", "created_at",
                                        sa.Column("created_at_int", sa.BigInteger, nullable=False),
                                        up=transforms.epoch_seconds, down=transforms.from_epoch_seconds),
                     id="keystone_024_seconds")
    setup_release_n(engine, {"seeded": DATETIMES["today"]})
    if dialect_name == "mysql":
        Runner(engine).expand(seconds)
        return
    with pytest.raises(CrossfadeError) as refused:
        Runner(engine).expand(seconds)
    message = str(refused.value)
    assert "created_at" in message and "\n" not in message.strip()
    assert {c["name"] for c in sa.inspect(engine).get_columns("password")} == set(OLD.c.keys())
    with engine.connect() as conn:
        assert not Runner(engine).dialect.catalog_objects(conn, {"password"})


def test_a_nullable_created_at_int_is_refused_before_any_ddl(engine):
    """Release N declares created_at NOT NULL: a NULL written by release N+1 would come back as
    release N's constraint error, on a column release N+1 does not know."""
    from crossfade import Change, ops, transforms

    nullable = Change(ops.replace_column("password", "created_at", sa.Column("created_at_int", sa.BigInteger),
                                         up=transforms.epoch_micros, down=transforms.from_epoch_micros),
                      id="keystone_024_nullable")
    setup_release_n(engine, {"seeded": DATETIMES["today"]})
    with pytest.raises(CrossfadeError, match="declare password.created_at_int NOT NULL"):
        Runner(engine).expand(nullable)
    assert {c["name"] for c in sa.inspect(engine).get_columns("password")} == set(OLD.c.keys())


def _passed(result) -> None:
    assert result.ok, {n: (c.summary, c.details[:3]) for n, c in result.checks.items() if not c.ok}


def test_the_simulator_runs_keystone_024_through_every_phase(engine):
    url = engine.url.render_as_string(hide_password=False)
    engine.dispose()
    result = simulate(CHANGE, RELEASE_N, RELEASE_N1, url,
                      Settings(values=SIMULATED.values, seed_rows=40, writes_per_phase=200))
    _passed(result)


class _SeededLocalUsers:
    """A local user the simulator seeded, for a password to belong to. Galera spaces the ids a
    node hands out by the cluster's size, from an offset that membership changes move, so they are
    read from the table (seeded before any password) rather than assumed 1-10."""

    def __init__(self, url: str):
        self.url, self.ids = url, None

    def __call__(self, rng):
        if self.ids is None:
            engine = sa.create_engine(self.url, poolclass=NullPool)
            with engine.connect() as conn:
                self.ids = sorted(conn.execute(sa.text("SELECT id FROM local_user")).scalars())[:10]
            engine.dispose()
        return rng.choice(self.ids)


@pytest.mark.galera
def test_the_simulator_runs_keystone_024_with_each_release_on_its_own_galera_node(galera_nodes):
    values = {**SIMULATED.values, "password.local_user_id": _SeededLocalUsers(galera_nodes.ddl)}
    result = simulate(CHANGE, RELEASE_N, RELEASE_N1, galera_nodes,
                      Settings(values=values, seed_rows=30, writes_per_phase=120))
    _passed(result)


@pytest.mark.parametrize("dialect_name", ["postgresql", "mysql"])
def test_microseconds_into_a_column_of_whole_seconds_are_floored_as_the_column_holds_them(engine, dialect_name):
    """PostgreSQL's timestamp(0) rounds what it stores, MariaDB's DATETIME truncates: either way
    from_epoch_micros floors first, so the law compares what the column really holds, before
    1970 too (-1 microsecond is 1969-12-31 23:59:59, not 1970)."""
    from sqlalchemy.dialects import mysql, postgresql

    from crossfade import Change, ops, transforms

    whole = {"postgresql": postgresql.TIMESTAMP(precision=0), "mysql": mysql.DATETIME()}[dialect_name]
    metadata = sa.MetaData()
    sa.Table("events", metadata, sa.Column("id", sa.Integer, primary_key=True),
             sa.Column("name", sa.String(20)), sa.Column("at", whole))
    metadata.create_all(engine)
    change = Change(ops.replace_column("events", "at", sa.Column("at_us", sa.BigInteger),
                                       up=transforms.epoch_micros, down=transforms.from_epoch_micros),
                    id="whole_seconds")
    runner = Runner(engine)
    runner.expand(change)
    new = sa.Table("events", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True),
                   sa.Column("name", sa.String(20)), sa.Column("at_us", sa.BigInteger))
    written = {"half": 1488371696500000, "almost": 1488371696999999, "minus one": -1, "minus half": -500000}
    with engine.begin() as conn:
        conn.execute(new.insert(), [{"name": k, "at_us": v} for k, v in written.items()])
    with engine.connect() as conn:
        found = {r.name: r for r in conn.execute(sa.select(sa.table("events", sa.column("name"), sa.column("at"),
                                                                    sa.column("at_us"))))}
    for name, n in written.items():
        assert found[name].at == (EPOCH + n * MICRO).replace(microsecond=0), name
        assert found[name].at_us == n, name
    assert not runner.problems(change, deep=True)
