"""derive_column: a column whose value is computed from related rows in other tables (Keystone's
change 014: user.domain_id from local_user.domain_id and nonlocal_user.domain_id). Every test
writes rows through the real triggers and reads them back: SQLite (recursive_triggers off and on),
PostgreSQL, MariaDB.

The rule: the first source in declared order with a non-NULL value wins (local_user before
nonlocal_user); within one source, the least value; NULL when no source has one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa
from test_idempotency import Crash, crash_after
from trigger_variants import db, dialect_name, variant  # noqa: F401 - fixtures

from crossfade import Change, ops
from crossfade.errors import (
    ColumnExistsError,
    ConflictingSourcesError,
    DriftedRowsError,
    PreflightError,
    ValidationError,
)
from crossfade.loader import import_file
from crossfade.runner import Runner
from crossfade.schema import Schema
from crossfade.state import Phase
from crossfade.testing.databases import empty_database

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "keystone" / "k014_user_domain_id"
KEYSTONE = import_file(EXAMPLE / "change.py")
DERIVE = Change(KEYSTONE.derive_domain, id="derive-domain")


def build(engine: sa.Engine, users=("u1", "u2", "u3", "u4"), local=(), nonlocal_=()) -> None:
    """Release N's Keystone tables, with `local` / `nonlocal_` rows as (user_id, domain_id)."""
    metadata = KEYSTONE.metadata
    metadata.create_all(engine)
    with engine.begin() as conn:
        if users:
            conn.execute(metadata.tables["user"].insert(), [{"id": u, "enabled": True} for u in users])
        for i, (user, domain) in enumerate(local):
            conn.execute(metadata.tables["local_user"].insert().values(user_id=user, domain_id=domain, name=f"l{i}"))
        for i, (user, domain) in enumerate(nonlocal_):
            conn.execute(metadata.tables["nonlocal_user"].insert().values(user_id=user, domain_id=domain,
                                                                          name=f"n{i}"))


def domains(engine: sa.Engine) -> dict[str, str | None]:
    with engine.connect() as conn:
        return dict(conn.exec_driver_sql(f"SELECT id, domain_id FROM {_q(engine, 'user')} ORDER BY id").all())


def _q(engine: sa.Engine, name: str) -> str:
    return engine.dialect.identifier_preparer.quote(name)


def sql(engine: sa.Engine, *statements: str) -> None:
    """Release N's (or N+1's) writes, as plain SQL with `user` quoted for the database."""
    with engine.begin() as conn:
        for statement in statements:
            conn.exec_driver_sql(statement.replace('"user"', _q(engine, "user")))


def expanded(engine: sa.Engine, *, migrate: bool = True, **rows) -> Runner:
    build(engine, **rows)
    runner = Runner(engine)
    runner.expand(DERIVE)
    if migrate:
        runner.migrate(DERIVE)
    return runner


# --- Keystone's own test (test_sql_upgrade.py, 014) ---------------------------------------------

def test_users_created_before_the_data_migration_get_their_domain_after_it(db):
    runner = expanded(db, migrate=False, local=[("u1", "default"), ("u2", "ldap")], nonlocal_=[("u3", "heat")])
    assert domains(db) == {"u1": None, "u2": None, "u3": None, "u4": None}
    runner.migrate(DERIVE)
    assert domains(db) == {"u1": "default", "u2": "ldap", "u3": "heat", "u4": None}
    assert runner.problems(DERIVE, deep=True) == []


def test_insert_and_update_through_both_child_tables_propagate(db):
    expanded(db)
    sql(db, "INSERT INTO local_user (user_id, domain_id, name) VALUES ('u1', 'default', 'ann')",
        "INSERT INTO nonlocal_user (user_id, domain_id, name) VALUES ('u2', 'ldap', 'bob')")
    assert domains(db) == {"u1": "default", "u2": "ldap", "u3": None, "u4": None}
    sql(db, "UPDATE local_user SET domain_id = 'heat' WHERE user_id = 'u1'",
        "UPDATE nonlocal_user SET domain_id = 'service' WHERE user_id = 'u2'")
    assert domains(db) == {"u1": "heat", "u2": "service", "u3": None, "u4": None}


def test_an_update_while_the_target_is_null_propagates_unlike_keystones_guard(db):
    """Keystone's MySQL/SQLite triggers fired WHEN user.domain_id <> NEW.domain_id, never true
    while user.domain_id is NULL: this update, before the data migration, was lost there."""
    expanded(db, migrate=False, local=[("u1", "default")], nonlocal_=[("u2", "ldap")])
    assert domains(db)["u1"] is None
    sql(db, "UPDATE local_user SET domain_id = 'heat' WHERE user_id = 'u1'",
        "UPDATE nonlocal_user SET domain_id = 'service' WHERE user_id = 'u2'")
    assert domains(db) == {"u1": "heat", "u2": "service", "u3": None, "u4": None}


# --- the decision table: every kind of write, through the real triggers -------------------------

SEEDED = {"local": [("u1", "default"), ("u2", "ldap")], "nonlocal_": [("u3", "heat")]}
START = {"u1": "default", "u2": "ldap", "u3": "heat", "u4": None}

WRITES = {
    "insert a local row": (["INSERT INTO local_user (user_id, domain_id, name) VALUES ('u4', 'service', 'x')"],
                           {"u4": "service"}),
    "insert a nonlocal row": (["INSERT INTO nonlocal_user (user_id, domain_id, name) VALUES ('u4', 'heat', 'x')"],
                              {"u4": "heat"}),
    "insert a nonlocal row for a user with a local one: local wins": (
        ["INSERT INTO nonlocal_user (user_id, domain_id, name) VALUES ('u1', 'zzz', 'x')"], {}),
    "insert a local row for a user with a nonlocal one: local wins": (
        ["INSERT INTO local_user (user_id, domain_id, name) VALUES ('u3', 'aaa', 'x')"], {"u3": "aaa"}),
    "insert a row without a user": (["INSERT INTO nonlocal_user (user_id, domain_id, name) VALUES (NULL, 'a', 'x')"],
                                    {}),
    "update a local row's domain": (["UPDATE local_user SET domain_id = 'service' WHERE user_id = 'u1'"],
                                    {"u1": "service"}),
    "update a nonlocal row's domain (part of its primary key)": (
        ["UPDATE nonlocal_user SET domain_id = 'service' WHERE user_id = 'u3'"], {"u3": "service"}),
    "move a local row to another user: both recomputed": (
        ["UPDATE local_user SET user_id = 'u4' WHERE user_id = 'u1'"], {"u1": None, "u4": "default"}),
    "move a nonlocal row to a user with a local row: the old one empties, local still wins": (
        ["UPDATE nonlocal_user SET user_id = 'u2' WHERE user_id = 'u3'"], {"u3": None}),
    "move a nonlocal row to no user": (["UPDATE nonlocal_user SET user_id = NULL WHERE user_id = 'u3'"],
                                       {"u3": None}),
    "one statement moves two rows between two users": (
        [("UPDATE local_user SET user_id = CASE user_id WHEN 'u1' THEN 'u4' ELSE 'u3' END "
          "WHERE user_id IN ('u1', 'u2')")], {"u1": None, "u2": None, "u3": "ldap", "u4": "default"}),
    "delete a local row: the nonlocal row's domain takes over": (
        ["INSERT INTO nonlocal_user (user_id, domain_id, name) VALUES ('u1', 'other', 'x')",
         "DELETE FROM local_user WHERE user_id = 'u1'"], {"u1": "other"}),
    "delete the only row: NULL": (["DELETE FROM nonlocal_user WHERE user_id = 'u3'"], {"u3": None}),
    "delete every row in one statement": (["DELETE FROM local_user"], {"u1": None, "u2": None}),
    "two nonlocal rows of one user: the least wins, the other takes over when it goes": (
        ["INSERT INTO nonlocal_user (user_id, domain_id, name) VALUES ('u3', 'abc', 'y')"], {"u3": "abc"}),
    "a direct write of user.domain_id is replaced by the derived value": (
        ['UPDATE "user" SET domain_id = \'forged\' WHERE id IN (\'u1\', \'u4\')'], {}),
    "an update of another user column keeps the value": (['UPDATE "user" SET enabled = false'], {}),
    "a new user without child rows: NULL, whatever it was given": (
        ['INSERT INTO "user" (id, enabled, domain_id) VALUES (\'u5\', true, \'forged\')'], {"u5": None}),
    "a user deleted with its rows (ON DELETE CASCADE)": (
        ["DELETE FROM local_user WHERE user_id = 'u2'", 'DELETE FROM "user" WHERE id = \'u2\''], {"u2": "gone"}),
}


@pytest.mark.parametrize("write", sorted(WRITES))
def test_every_write_keeps_each_user_equal_to_its_derived_domain(db, write):
    runner = expanded(db, **SEEDED)
    assert domains(db) == START
    statements, changes = WRITES[write]
    sql(db, *statements)
    expected = {**START, **changes}
    expected = {k: v for k, v in expected.items() if v != "gone"}
    assert domains(db) == expected
    assert runner.problems(DERIVE, deep=True) == []


def test_a_failed_statement_leaves_no_trace_of_its_trigger_writes(db):
    expanded(db, **SEEDED)
    with pytest.raises(sa.exc.IntegrityError):
        # The second row repeats the first's primary key: the whole statement fails.
        sql(db, "INSERT INTO nonlocal_user (user_id, domain_id, name) VALUES ('u4', 'd', 'x'), ('u4', 'd', 'x')")
    assert domains(db) == START


# --- concurrent writers of one user's sources -----------------------------------------------

@pytest.mark.parametrize("first", ["local", "nonlocal"])
@pytest.mark.parametrize("dialect_name", ["postgresql", "mysql"])
def test_two_transactions_writing_one_users_two_sources_leave_the_derived_value(engine, first):
    """The second writer waits for the first's lock on the user row, then reads what it
    committed: without that, each would compute from its own snapshot and the last to commit
    would win, whichever source it wrote."""
    expanded(engine)
    inserts = {"local": "INSERT INTO local_user (user_id, domain_id, name) VALUES ('u1', 'aaa-local', 'x')",
               "nonlocal": "INSERT INTO nonlocal_user (user_id, domain_id, name) VALUES ('u1', 'zzz-nonlocal', 'x')"}
    second = "nonlocal" if first == "local" else "local"
    done = threading.Event()
    failures = []

    def write_second():
        try:
            # A read first: its snapshot (MariaDB's REPEATABLE READ) predates the first's commit.
            sql(engine, "SELECT count(*) FROM local_user, nonlocal_user", inserts[second])
        except sa.exc.DBAPIError as exc:  # reported below
            failures.append(exc)
        done.set()

    with engine.connect() as conn:
        conn.exec_driver_sql(inserts[first])  # holds the user row until it commits
        thread = threading.Thread(target=write_second)
        thread.start()
        time.sleep(0.5)
        assert not done.is_set(), "the second writer should wait for the first's lock on the user row"
        conn.commit()
    thread.join(30)
    assert not failures and done.is_set()
    assert domains(engine)["u1"] == "aaa-local"


# --- while expand installs the triggers, one at a time -------------------------------------------

def _derived_now(engine: sa.Engine) -> dict[str, str | None]:
    """Each user's value by the rule, read from the sources as they are: local first, least."""
    with engine.connect() as conn:
        local = conn.exec_driver_sql("SELECT user_id, min(domain_id) FROM local_user GROUP BY user_id").all()
        nonlocal_ = conn.exec_driver_sql("SELECT user_id, min(domain_id) FROM nonlocal_user GROUP BY user_id").all()
    return {**dict(nonlocal_), **{user: domain for user, domain in local if domain is not None}}


def _every_source_write(engine: sa.Engine, user: str) -> list[str]:
    """Each statement of one user's life through both sources: insert, update and delete each, and
    what each leaves behind: a user value that is not NULL must be the derived one, after every one."""
    sql(engine, f"INSERT INTO \"user\" (id, enabled) VALUES ('{user}', TRUE)")
    broken = []
    for statement in (f"INSERT INTO local_user (user_id, domain_id, name) VALUES ('{user}', 'bbb', '{user}l')",
                      f"INSERT INTO nonlocal_user (user_id, domain_id, name) VALUES ('{user}', 'aaa', '{user}n')",
                      f"UPDATE local_user SET domain_id = 'ccc' WHERE user_id = '{user}'",
                      f"DELETE FROM local_user WHERE user_id = '{user}'",
                      f"UPDATE nonlocal_user SET domain_id = 'ddd' WHERE user_id = '{user}'",
                      f"INSERT INTO local_user (user_id, domain_id, name) VALUES ('{user}', 'eee', '{user}m')",
                      f"DELETE FROM nonlocal_user WHERE user_id = '{user}'",
                      f"DELETE FROM local_user WHERE user_id = '{user}'"):
        sql(engine, statement)
        stored, derived = domains(engine)[user], _derived_now(engine).get(user)
        if stored is not None and stored != derived:
            broken.append(f"{statement}: {stored!r}, derived {derived!r}")
    return broken


def test_a_value_written_while_expand_installs_the_triggers_is_never_stale(db):
    """Expand installs the triggers table by table (MariaDB: one CREATE TRIGGER at a time, each
    committing on its own). Between two steps, release N writes every kind of source statement
    for a fresh user on its own connection: a value a trigger wrote must never be left stale by
    a write whose trigger is not in yet (NULL is "not derived yet": the backfill fills it)."""
    build(db, local=[("u1", "default")], nonlocal_=[("u3", "heat")])
    broken, steps = {}, []

    def between_steps(_phase: str, step: str) -> None:
        if step.startswith("install triggers"):
            steps.append(step)
            broken[step] = _every_source_write(db, f"s{len(steps)}")

    runner = Runner(db, on_step=between_steps)
    runner.expand(DERIVE)
    assert steps and not any(broken.values()), {s: b for s, b in broken.items() if b}
    runner.migrate(DERIVE)
    assert runner.problems(DERIVE, deep=True) == []
    assert domains(db)["u1"] == "default" and domains(db)["u3"] == "heat"


# --- refusals before any DDL -----------------------------------------------------------------

def _untouched(engine: sa.Engine) -> None:
    with engine.connect() as conn:
        columns = [c["name"] for c in sa.inspect(conn).get_columns("user")]
        triggers = _trigger_names(conn)
    assert "domain_id" not in columns
    assert triggers == []


def test_expand_refuses_users_whose_sources_disagree_naming_them_before_any_ddl(db):
    build(db, local=[("u1", "default"), ("u2", "ldap")], nonlocal_=[("u1", "heat"), ("u3", "x"), ("u3", "y")])
    runner = Runner(db)
    with pytest.raises(ConflictingSourcesError) as raised:
        runner.expand(DERIVE)
    message = str(raised.value)
    assert message.startswith("2 row(s) of 'user' would get conflicting domain_id values")
    assert "id='u1': local_user.domain_id=['default'], nonlocal_user.domain_id=['heat']" in message
    assert "id='u3': local_user.domain_id=[], nonlocal_user.domain_id=['x', 'y']" in message
    _untouched(db)
    assert runner.load(DERIVE).phase is Phase.PENDING


def test_agreeing_sources_and_nulls_are_not_conflicts(db):
    expanded(db, local=[("u1", "default")], nonlocal_=[("u1", "default"), ("u2", "ldap"), (None, "heat")])
    assert domains(db) == {"u1": "default", "u2": "ldap", "u3": None, "u4": None}


@pytest.mark.parametrize("sources, message", [
    ([("local_user", "domain_id", "name")], "local_user.name does not reference user.id with a foreign key"),
    ([("local_user", "nope", "user_id")], "nope"),
    ([("missing", "domain_id", "user_id")], "missing"),
    ([("local_user", "domain_id", "user_id"), ("local_user", "domain_id", "user_id")], "named twice"),
    ([("local_user", "failed_auth_count", "user_id")], "is a Integer"),
])
def test_bad_sources_are_refused_before_any_ddl(db, sources, message):
    build(db)
    change = Change(ops.derive_column("user", sa.Column("domain_id", sa.String(64)), sources=sources), id="bad")
    with pytest.raises(ValidationError, match=message):
        Runner(db).expand(change)
    _untouched(db)


def test_a_source_without_an_index_on_its_foreign_key_is_refused(db):
    metadata = sa.MetaData()
    sa.Table("parent", metadata, sa.Column("id", sa.Integer, primary_key=True))
    sa.Table("child", metadata, sa.Column("id", sa.Integer, primary_key=True),
             sa.Column("parent_id", sa.Integer, sa.ForeignKey("parent.id")), sa.Column("v", sa.String(8)))
    schema = Schema.from_metadata(metadata)
    change = Change(ops.derive_column("parent", sa.Column("v", sa.String(8)), sources=[("child", "v", "parent_id")]))
    with pytest.raises(ValidationError) as refused:
        change.validate(schema)
    assert str(refused.value) == (
        "derive_column parent.v from child.v via parent_id: child.parent_id has no index, and the triggers look rows up by it on every "
        "write (a scan of child each time). Add one first, e.g. "
        'ops.create_index("child", "ix_child_parent_id", "parent_id") in an earlier change')


def test_the_new_column_must_be_new_and_typed_and_sources_well_formed():
    with pytest.raises(ValidationError, match="needs a type"):
        ops.derive_column("user", sa.Column("domain_id"), sources=[("local_user", "domain_id", "user_id")])
    with pytest.raises(ValidationError, match="a source is \\(table, column, via\\)"):
        ops.derive_column("user", sa.Column("domain_id", sa.String(64)), sources=["local_user.domain_id"])
    with pytest.raises(ValidationError, match="at least one source"):
        ops.derive_column("user", sa.Column("domain_id", sa.String(64)), sources=[])
    schema = Schema.from_metadata(KEYSTONE.metadata_n1)
    with pytest.raises(ColumnExistsError):
        DERIVE.validate(schema)


# --- migrate killed after any batch; contract -------------------------------------------------

def test_migrate_killed_after_any_batch_finishes_on_rerun(db):
    engine = db
    rows = {"users": tuple(f"u{i:02}" for i in range(12)),
            "local": [(f"u{i:02}", f"d{i % 3}") for i in range(0, 12, 2)],
            "nonlocal_": [(f"u{i:02}", f"n{i % 4}") for i in range(1, 12, 4)]}
    expected = {f"u{i:02}": f"d{i % 3}" if i % 2 == 0 else f"n{i % 4}" if i % 4 == 1 else None for i in range(12)}
    steps = []
    build(engine, **rows)
    Runner(engine, batch_size=3).expand(DERIVE)
    Runner(engine, batch_size=3, on_step=lambda _, step: steps.append(step)).migrate(DERIVE)
    assert domains(engine) == expected
    assert len(steps) >= 4, steps
    for k in range(1, len(steps) + 1):
        empty_database(engine)
        engine.dispose()
        build(engine, **rows)
        Runner(engine, batch_size=3).expand(DERIVE)
        with pytest.raises(Crash):
            Runner(engine, batch_size=3, on_step=crash_after(k)).migrate(DERIVE)
        # Writes between the crash and the rerun go through the triggers.
        sql(engine, "UPDATE local_user SET domain_id = 'late' WHERE user_id = 'u10'")
        runner = Runner(engine, batch_size=3)
        runner.migrate(DERIVE)
        assert runner.load(DERIVE).phase is Phase.MIGRATED
        assert domains(engine) == {**expected, "u10": "late"}, f"killed after step {k} ({steps[k - 1]})"
        assert runner.problems(DERIVE, deep=True) == []


def test_keystone_014_contract_ties_each_child_to_its_users_domain(db):
    engine = db
    build(engine, local=[("u1", "default")], nonlocal_=[("u2", "ldap")])
    runner = Runner(engine)
    for phase in ("expand", "migrate", "contract"):
        getattr(runner, phase)(KEYSTONE.change)
    assert runner.load(KEYSTONE.change).phase is Phase.CONTRACTED
    assert runner.problems(KEYSTONE.change) == []
    assert domains(engine) == {"u1": "default", "u2": "ldap", "u3": None, "u4": None}
    with engine.connect() as conn:
        keys = {t: sa.inspect(conn).get_foreign_keys(t) for t in ("local_user", "nonlocal_user")}
        triggers = [t for t in _trigger_names(conn) if t.startswith("crossfade_")]
    for table, table_keys in keys.items():  # as Keystone's 014 contract made them
        [key] = [k for k in table_keys if k["name"] == f"fk_{table}_user_id_domain_id"]
        assert (key["constrained_columns"], key["referred_table"], key["referred_columns"]) == (
            ["user_id", "domain_id"], "user", ["id", "domain_id"])
        assert key["options"] == {"ondelete": "CASCADE", "onupdate": "CASCADE"}
    assert triggers == []
    with pytest.raises(sa.exc.IntegrityError), enforced_keys(engine) as conn:
        conn.exec_driver_sql("UPDATE local_user SET domain_id = 'other' WHERE user_id = 'u1'")


def test_keystone_014_after_contract_a_users_domain_cascades_to_its_child_and_a_deleted_user_takes_it(db):
    build(db, local=[("u1", "default")], nonlocal_=[("u2", "ldap"), ("u3", "heat")])
    runner = Runner(db)
    for phase in ("expand", "migrate", "contract"):
        getattr(runner, phase)(KEYSTONE.change)

    with enforced_keys(db) as conn:  # no trigger is left: the foreign keys' cascades do this
        user = _q(db, "user")
        conn.exec_driver_sql(f"UPDATE {user} SET domain_id = 'service' WHERE id IN ('u1', 'u2')")
        conn.exec_driver_sql(f"DELETE FROM {user} WHERE id = 'u3'")
    with db.connect() as conn:
        assert conn.exec_driver_sql("SELECT user_id, domain_id FROM local_user").all() == [("u1", "service")]
        assert conn.exec_driver_sql("SELECT user_id, domain_id FROM nonlocal_user").all() == [("u2", "service")]
    assert domains(db) == {"u1": "service", "u2": "service", "u4": None}

    runner.contract(KEYSTONE.change)  # a rerun: nothing left to do, the keys are as declared
    assert runner.load(KEYSTONE.change).phase is Phase.CONTRACTED
    assert runner.problems(KEYSTONE.change) == []


@contextmanager
def enforced_keys(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A transaction whose foreign keys are enforced: SQLite's only with PRAGMA foreign_keys,
    which takes effect outside a transaction and is set back after it."""
    with engine.connect() as conn:
        _foreign_keys(conn, True)
        try:
            with conn.begin():
                yield conn
        finally:
            _foreign_keys(conn, False)


def _foreign_keys(conn: sa.Connection, on: bool) -> None:
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql(f"PRAGMA foreign_keys = {'ON' if on else 'OFF'}")
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == int(on)
        conn.commit()  # SQLAlchemy's transaction only: pysqlite begins none for a PRAGMA


def _trigger_names(conn: sa.Connection) -> list[str]:
    name = conn.dialect.name
    if name == "sqlite":
        return list(conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'trigger'").scalars())
    if name == "postgresql":
        return list(conn.exec_driver_sql("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal").scalars())
    return list(conn.exec_driver_sql("SELECT trigger_name FROM information_schema.triggers "
                                     "WHERE trigger_schema = DATABASE()").scalars())


def test_rollback_drops_the_column_and_every_trigger(db):
    runner = expanded(db, **SEEDED)
    runner.rollback(DERIVE)
    with db.connect() as conn:
        assert [t for t in _trigger_names(conn) if t.startswith("crossfade_")] == []
        assert "domain_id" not in [c["name"] for c in sa.inspect(conn).get_columns("user")]


def test_the_data_check_names_a_user_written_with_the_triggers_off(db):
    runner = expanded(db, **SEEDED)
    off = {"postgresql": "SELECT set_config('crossfade.link', 'on', false)", "mysql": "SET @crossfade_backfill = 1",
           "sqlite": "DROP TRIGGER crossfade_user_derive_update"}[db.dialect.name]
    with db.begin() as conn:
        conn.exec_driver_sql(off)
        conn.exec_driver_sql(f"UPDATE {_q(db, 'user')} SET domain_id = 'drifted' WHERE id = 'u1'")
        if db.dialect.name == "mysql":
            conn.exec_driver_sql("SET @crossfade_backfill = NULL")
    findings = runner.data_findings(DERIVE)
    assert len(findings) == 1
    text = findings[0].describe()
    assert text.startswith("1 row(s) of user break the derived law user.domain_id <- local_user.domain_id via "
                           "user_id, nonlocal_user.domain_id via user_id")
    assert "'drifted'" in text and "'default'" in text
    # Contract (on SQLite, the expand that puts the dropped trigger back first) refuses the row.
    with pytest.raises(DriftedRowsError, match="break the derived law"):
        runner.expand(DERIVE) if db.dialect.name == "sqlite" else runner.contract(DERIVE)
    assert runner.load(DERIVE).phase is Phase.MIGRATED


# --- the Alembic revision (examples/keystone/alembic/versions) -----------------------------------

ALEMBIC_VERSIONS = EXAMPLE.parent / "alembic" / "versions"
STUB_003 = '''"""A stand-in for Keystone 003 (another revision of examples/keystone): nothing to do."""
revision = "keystone_003"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
'''
ENV = '''import os
from alembic import context
from sqlalchemy import engine_from_config, pool
from crossfade.alembic import include_object

url = context.config.get_main_option("sqlalchemy.url") or os.environ.get("CROSSFADE_URL")
engine = engine_from_config({"sqlalchemy.url": url}, prefix="sqlalchemy.", poolclass=pool.NullPool)
with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=None, include_object=include_object)
    with context.begin_transaction():
        context.run_migrations()
'''


def test_the_alembic_revision_runs_keystone_014_as_a_rolling_upgrade_through_the_cli(db, tmp_path):
    from click.testing import CliRunner

    from crossfade.cli import app

    project = tmp_path / "keystone"
    (project / "migrations" / "versions").mkdir(parents=True)
    (project / "migrations" / "env.py").write_text(ENV)
    (project / "migrations" / "versions" / "keystone_003.py").write_text(STUB_003)
    # 014 alone, where it finds its example (`examples/keystone/<example>/change.py`): 024 needs
    # Keystone's password table, which this test does not build.
    revision_014 = ALEMBIC_VERSIONS / "keystone_014_user_domain_id.py"
    (project / "migrations" / "versions" / revision_014.name).write_text(revision_014.read_text())
    (project / "k014_user_domain_id").symlink_to(EXAMPLE)
    (project / "alembic.ini").write_text("[alembic]\nscript_location = %(here)s/migrations\n")
    url = db.url.render_as_string(hide_password=False)
    build(db, local=[("u1", "default")], nonlocal_=[("u2", "ldap")])
    cli = CliRunner()

    def run(*args):
        result = cli.invoke(app, [*args, str(project / "alembic.ini"), "--url", url], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result

    run("expand")
    sql(db, "UPDATE local_user SET domain_id = 'heat' WHERE user_id = 'u1'")
    run("migrate")
    assert domains(db) == {"u1": "heat", "u2": "ldap", "u3": None, "u4": None}
    contracted = run("contract")
    assert "stamp alembic_version keystone_014" in contracted.stdout
    with db.connect() as conn:
        assert [t for t in _trigger_names(conn) if t.startswith("crossfade_")] == []


@pytest.mark.parametrize("dialect_name", ["mysql"])  # PostgreSQL's and SQLite's cascades fire the triggers
def test_mariadb_refuses_a_source_whose_foreign_key_cascades_updates_before_any_ddl(engine):
    """MySQL/MariaDB cascades skip triggers: a user's id change would re-point its rows silently."""
    metadata = sa.MetaData()
    sa.Table("parent", metadata, sa.Column("id", sa.Integer, primary_key=True), sa.Column("v", sa.String(8)))
    sa.Table("child", metadata, sa.Column("id", sa.Integer, primary_key=True),
             sa.Column("parent_id", sa.Integer, sa.ForeignKey("parent.id", onupdate="CASCADE"), index=True),
             sa.Column("v", sa.String(8)))
    metadata.create_all(engine)
    change = Change(ops.derive_column("parent", sa.Column("w", sa.String(8)), sources=[("child", "v", "parent_id")]))
    with pytest.raises(PreflightError, match="child.parent_id has ON UPDATE CASCADE"):
        Runner(engine).expand(change)
    with engine.connect() as conn:
        assert "w" not in [c["name"] for c in sa.inspect(conn).get_columns("parent")]
        assert _trigger_names(conn) == []


def test_the_conflicts_option_is_refuse_or_resolve_and_resolve_lets_the_rule_pick(db):
    with pytest.raises(ValidationError, match="conflicts is 'refuse' or 'resolve'"):
        ops.derive_column("user", sa.Column("domain_id", sa.String(64)), sources=[("local_user", "domain_id", "user_id")],
                          conflicts="first")
    build(db, local=[("u1", "default")], nonlocal_=[("u1", "heat"), ("u3", "x"), ("u3", "y")])
    change = Change(ops.derive_column("user", sa.Column("domain_id", sa.String(64)), conflicts="resolve",
                                      sources=[("local_user", "domain_id", "user_id"),
                                               ("nonlocal_user", "domain_id", "user_id")]), id="resolve")
    runner = Runner(db)
    runner.expand(change)
    runner.migrate(change)
    assert domains(db) == {"u1": "default", "u2": None, "u3": "x", "u4": None}
    sql(db, "DELETE FROM nonlocal_user WHERE user_id = 'u3' AND domain_id = 'x'")
    assert domains(db)["u3"] == "y"


def test_plan_shows_the_triggers_on_every_table_the_backfill_and_contracts_constraints():
    from click.testing import CliRunner

    from crossfade.cli import app

    result = CliRunner().invoke(app, ["plan", str(EXAMPLE / "change.py"), "--dialect", "postgresql"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    # One step (one transaction) for the three tables: a source's trigger writes the target.
    for step in ("add column user.domain_id", "install triggers on local_user, nonlocal_user, user",
                 "backfill user.domain_id (derived)", "drop triggers on local_user",
                 "add unique constraint ixu_user_id_domain_id on user",
                 "add foreign key fk_local_user_user_id_domain_id on local_user"):
        assert step in text, step
