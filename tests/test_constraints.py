"""create_index, add_unique, add_foreign_key and add_check, on real databases, in their online forms.

create_index lands in expand (release N+1 may need it) and rollback drops it; the three
constraints land in contract, because release N may write rows that break them until it is gone.
Each test proves the effect by writing rows, and the refusals by reading the catalog back.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from crossfade import Change, checks, ops
from crossfade.cli import app
from crossfade.dialects import offline
from crossfade.errors import (
    CheckViolationError,
    ConstraintExistsError,
    DuplicateRowsError,
    ForeignKeyActionsError,
    OrphanRowsError,
    UnknownColumnError,
    UnknownTableError,
    ValidationError,
)
from crossfade.plan import build_plan
from crossfade.runner import Runner
from crossfade.schema import Schema
from crossfade.state import Phase

ROWS = 12


def release_n(metadata: sa.MetaData | None = None) -> sa.MetaData:
    metadata = metadata or sa.MetaData()
    sa.Table("owners", metadata, sa.Column("id", sa.Integer, primary_key=True), sa.Column("name", sa.String(20)))
    sa.Table("images", metadata, sa.Column("id", sa.Integer, primary_key=True),
             sa.Column("name", sa.String(20)), sa.Column("owner_id", sa.Integer), sa.Column("size", sa.Integer))
    return metadata


def fresh(engine: sa.Engine) -> None:
    """Drop what a previous round left, then create release N's tables with valid rows."""
    with engine.begin() as conn:
        existing = sa.MetaData()
        existing.reflect(conn)
        existing.drop_all(conn)
        release_n().create_all(conn)
        sql(conn, "INSERT INTO owners (id, name) VALUES (1, 'ann'), (2, 'bob'), (3, 'cy')")
        for i in range(1, ROWS + 1):
            sql(conn, "INSERT INTO images (id, name, owner_id, size) VALUES (:i, :n, :o, :s)",
                i=i, n=f"i{i}", o=None if i % 4 == 0 else i % 3 + 1, s=None if i % 5 == 0 else i * 10)


@pytest.fixture
def db(engine: sa.Engine) -> sa.Engine:
    """The test database with its tables; SQLite connections enforce foreign keys, as an
    application that declares them would make them."""
    if engine.dialect.name == "sqlite":
        sa.event.listen(engine, "connect", lambda dbapi, _record: dbapi.execute("PRAGMA foreign_keys = ON"))
    fresh(engine)
    return engine


def sql(conn: sa.Connection, statement: str, **params):
    return conn.execute(sa.text(statement), params)


def write(engine: sa.Engine, statement: str, **params) -> None:
    with engine.begin() as conn:
        sql(conn, statement, **params)


def upgrade(engine: sa.Engine, change: Change, **options) -> Runner:
    runner = Runner(engine, **options)
    runner.expand(change)
    runner.migrate(change)
    runner.contract(change)
    assert runner.load(change).phase is Phase.CONTRACTED
    assert runner.problems(change) == []
    return runner


def index_names(engine: sa.Engine, valid: bool | None = True) -> set[str]:
    """Index names on images, read from the catalog; on PostgreSQL only valid (or invalid) ones."""
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            return set(sql(conn, "SELECT x.relname FROM pg_index i JOIN pg_class x ON x.oid = i.indexrelid "
                                 "JOIN pg_class c ON c.oid = i.indrelid WHERE c.relname = 'images' "
                                 "AND NOT i.indisprimary AND (CAST(:valid AS boolean) IS NULL "
                                 "OR i.indisvalid = :valid)", valid=valid).scalars())
        return {i["name"] for i in sa.inspect(conn).get_indexes("images")}


def catalog(engine: sa.Engine) -> dict:
    """The indexes (on PostgreSQL invalid ones too) and constraints a refused contract must
    leave as they were."""
    with engine.connect() as conn:
        inspector = sa.inspect(conn)
        found = {t: (sorted(i["name"] for i in inspector.get_indexes(t)),
                     sorted(str(k["name"]) for k in inspector.get_unique_constraints(t)),
                     sorted(str(k["name"]) for k in inspector.get_foreign_keys(t)),
                     sorted(str(k["name"]) for k in inspector.get_check_constraints(t)))
                 for t in ("images", "owners")}
    if engine.dialect.name == "postgresql":
        found["all indexes"] = sorted(index_names(engine, valid=None))
    return found


def triggers(engine: sa.Engine) -> list[str]:
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            query = "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal"
        elif engine.dialect.name == "sqlite":
            query = "SELECT name FROM sqlite_master WHERE type = 'trigger'"
        else:
            query = "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE()"
        return sorted(sql(conn, query).scalars())


UNIQUE = ops.add_unique("images", "uq_images_name", "name")
FOREIGN_KEY = ops.add_foreign_key("images", "fk_images_owner", "owner_id", "owners", "id", ondelete="cascade",
                                  onupdate="Cascade")
CHECK = ops.add_check("images", "ck_images_size", lambda row: row.size >= 0)
CONSTRAINTS = {"unique": UNIQUE, "foreign_key": FOREIGN_KEY, "check": CHECK}

# A row release N may write during the transition that the constraint refuses once contracted.
VIOLATIONS = {
    "unique": "INSERT INTO images (id, name, owner_id, size) VALUES (901, 'i1', 1, 1)",
    "foreign_key": "INSERT INTO images (id, name, owner_id, size) VALUES (901, 'orphan', 99, 1)",
    "check": "INSERT INTO images (id, name, owner_id, size) VALUES (901, 'negative', 1, -5)",
}


# --- create_index: expand builds it, rollback drops it ------------------------------------------

def test_create_index_is_built_in_expand_and_stays_after_contract(db):
    change = Change(ops.create_index("images", "ix_images_name_size", ["name", "size"]), id="index")
    runner = Runner(db)
    runner.expand(change)
    assert "ix_images_name_size" in index_names(db)  # release N+1 can count on it from now on
    runner.migrate(change)
    runner.contract(change)
    assert "ix_images_name_size" in index_names(db)
    with db.connect() as conn:
        [index] = [i for i in sa.inspect(conn).get_indexes("images") if i["name"] == "ix_images_name_size"]
    assert index["column_names"] == ["name", "size"] and not index["unique"]
    assert runner.problems(change) == []


def test_create_index_is_dropped_by_rollback(db):
    change = Change(ops.create_index("images", "ix_images_size", "size"), id="index")
    runner = Runner(db)
    runner.expand(change)
    assert "ix_images_size" in index_names(db)
    runner.rollback(change)
    assert "ix_images_size" not in index_names(db, valid=None)
    assert runner.load(change).phase is Phase.ROLLED_BACK
    runner.expand(change)  # and the change can go again
    assert "ix_images_size" in index_names(db)


def test_every_step_recognizes_its_own_work_so_a_rerun_skips_it(db):
    change = Change(ops.create_index("images", "ix_images_size", "size"), UNIQUE, FOREIGN_KEY, CHECK, id="all")
    runner = upgrade(db, change)
    with db.connect() as conn:
        schema = Schema.reflect(conn, {"images"})
        for intents in (change.expand_intents(schema), change.contract_intents(schema)):
            assert checks.unfinished_steps(runner.dialect, conn, schema, intents) == []


# --- the constraints: contract adds them, then writes prove them --------------------------------

def test_add_unique_lets_release_n_write_duplicates_until_contract_then_refuses_them(db):
    change = Change(UNIQUE, id="unique")
    runner = Runner(db)
    runner.expand(change)
    runner.migrate(change)
    write(db, VIOLATIONS["unique"])  # release N, during the transition: not refused yet
    write(db, "DELETE FROM images WHERE id = 901")
    runner.contract(change)

    with pytest.raises(sa.exc.IntegrityError):
        write(db, VIOLATIONS["unique"])
    write(db, "INSERT INTO images (id, name) VALUES (902, NULL), (903, NULL)")  # NULLs never collide
    assert "uq_images_name" in catalog(db)["images"][0] + catalog(db)["images"][1]
    assert runner.problems(change) == []


def test_add_foreign_key_refuses_an_orphan_and_cascades_updates_and_deletes(db):
    upgrade(db, Change(FOREIGN_KEY, id="fk"))

    with pytest.raises(sa.exc.IntegrityError):
        write(db, VIOLATIONS["foreign_key"])
    write(db, "INSERT INTO images (id, name, owner_id) VALUES (902, 'no owner', NULL)")  # MATCH SIMPLE
    with db.connect() as conn:
        owned_by_2 = sql(conn, "SELECT count(*) FROM images WHERE owner_id = 2").scalar()
        owned_by_3 = sql(conn, "SELECT id FROM images WHERE owner_id = 3 ORDER BY id").scalars().all()
    write(db, "UPDATE owners SET id = 30 WHERE id = 3")  # ON UPDATE CASCADE
    write(db, "DELETE FROM owners WHERE id = 2")  # ON DELETE CASCADE
    with db.connect() as conn:
        assert owned_by_3 and sql(conn, "SELECT id FROM images WHERE owner_id = 30 ORDER BY id").scalars().all() \
            == owned_by_3
        assert sql(conn, "SELECT count(*) FROM images WHERE owner_id = 3").scalar() == 0
        assert owned_by_2 and sql(conn, "SELECT count(*) FROM images WHERE owner_id = 2").scalar() == 0
        assert sql(conn, "SELECT count(*) FROM images").scalar() == ROWS + 1 - owned_by_2
        [key] = sa.inspect(conn).get_foreign_keys("images")
    assert key["name"] == "fk_images_owner" and key["referred_table"] == "owners"
    assert key["options"] == {"ondelete": "CASCADE", "onupdate": "CASCADE"}


def test_add_foreign_key_refuses_a_key_of_its_name_with_other_actions_before_any_ddl(db):
    change = Change(FOREIGN_KEY, id="fk")
    runner = Runner(db)
    runner.expand(change)
    runner.migrate(change)
    add_key_by_hand(db, "CONSTRAINT fk_images_owner FOREIGN KEY (owner_id) REFERENCES owners (id) ON DELETE CASCADE")
    before = catalog(db)

    with pytest.raises(ForeignKeyActionsError, match=(
            "foreign key 'fk_images_owner' on table 'images' exists with ON DELETE CASCADE ON UPDATE NO ACTION, "
            "the change declares ON DELETE CASCADE ON UPDATE CASCADE")):
        runner.contract(change)
    assert catalog(db) == before and runner.load(change).phase is Phase.MIGRATED
    with db.connect() as conn:  # and what status reports
        schema = Schema.reflect(conn, {"images"})
        problems = checks.unfinished_steps(runner.dialect, conn, schema, change.contract_intents(schema))
    assert any("exists with ON DELETE CASCADE ON UPDATE NO ACTION" in problem for problem in problems)


def add_key_by_hand(engine: sa.Engine, key: str) -> None:
    """What an operator might do during the transition (SQLite adds a constraint by rebuilding)."""
    if engine.dialect.name != "sqlite":
        write(engine, f"ALTER TABLE images ADD {key}")
        return
    with engine.begin() as conn:
        sql(conn, "CREATE TABLE images_new (id INTEGER PRIMARY KEY, name VARCHAR(20), owner_id INTEGER, "
                  f"size INTEGER, {key})")
        sql(conn, "INSERT INTO images_new SELECT id, name, owner_id, size FROM images")
        sql(conn, "DROP TABLE images")
        sql(conn, "ALTER TABLE images_new RENAME TO images")


def test_add_check_refuses_a_failing_row(db):
    upgrade(db, Change(CHECK, id="check"))

    with pytest.raises(sa.exc.DBAPIError, match="ck_images_size"):
        write(db, VIOLATIONS["check"])
    write(db, "INSERT INTO images (id, name, size) VALUES (902, 'unknown size', NULL)")  # NULL passes a CHECK
    with pytest.raises(sa.exc.DBAPIError, match="ck_images_size"):
        write(db, "UPDATE images SET size = -1 WHERE id = 1")


# --- refusals before any DDL ------------------------------------------------------------------

REFUSALS = {
    "unique": (DuplicateRowsError, "name='i1' (2 rows)"),
    "foreign_key": (OrphanRowsError, "id=901, owner_id=99"),
    "check": (CheckViolationError, "id=901"),
}


@pytest.mark.parametrize("kind", sorted(CONSTRAINTS))
def test_contract_refuses_rows_that_break_the_constraint_before_any_ddl(db, kind):
    # add_column brings triggers along: a refused contract must not even have dropped them.
    label = ops.add_column("images", sa.Column("label", sa.String(30)), backfill=lambda r: sa.func.upper(r.name))
    change = Change(label, CONSTRAINTS[kind], id=f"refused-{kind}")
    runner = Runner(db)
    runner.expand(change)
    write(db, VIOLATIONS[kind])
    runner.migrate(change)
    before, installed = catalog(db), triggers(db)
    assert installed

    error, sample = REFUSALS[kind]
    with pytest.raises(error) as refused:
        runner.contract(change)
    message = str(refused.value)
    assert "'images'" in message and CONSTRAINTS[kind].name in message and sample in message
    assert refused.value.table == "images" and refused.value.constraint == CONSTRAINTS[kind].name
    assert refused.value.count == 1
    assert catalog(db) == before and triggers(db) == installed
    assert runner.load(change).phase is Phase.MIGRATED and runner.problems(change) == []

    write(db, "DELETE FROM images WHERE id = 901")
    runner.contract(change)
    assert runner.load(change).phase is Phase.CONTRACTED and triggers(db) == []
    with pytest.raises(sa.exc.DBAPIError):
        write(db, VIOLATIONS[kind])


def test_indexes_and_constraints_may_name_a_column_the_same_change_adds(db):
    change = Change(
        ops.replace_column("images", "size", sa.Column("size_kb", sa.Integer), up=lambda s: s, down=lambda k: k),
        ops.create_index("images", "ix_images_size_kb", "size_kb", unique=True),
        ops.add_check("images", "ck_images_size_kb", lambda row: row.size_kb >= 0),
        id="size_kb")
    upgrade(db, change)
    assert "ix_images_size_kb" in index_names(db)
    with pytest.raises(sa.exc.DBAPIError):
        write(db, "INSERT INTO images (id, name, size_kb) VALUES (990, 'neg', -1)")
    with pytest.raises(sa.exc.DBAPIError):
        write(db, "INSERT INTO images (id, name, size_kb) VALUES (991, 'dup', 10)")  # row 1 has 10


def test_expand_refuses_a_unique_index_over_duplicates_before_any_ddl(db):
    write(db, "INSERT INTO images (id, name, size) VALUES (901, 'dup', 1), (902, 'dup', 2)")
    change = Change(ops.add_column("images", sa.Column("note", sa.String(20))),
                    ops.create_index("images", "ix_images_name", "name", unique=True), id="unique_index")
    before = catalog(db)
    with pytest.raises(DuplicateRowsError, match="ix_images_name"):
        Runner(db).expand(change)
    assert catalog(db) == before
    assert "note" not in {c["name"] for c in sa.inspect(db).get_columns("images")}


def test_contract_refuses_a_foreign_key_to_a_missing_table_before_any_ddl(db):
    change = Change(ops.add_foreign_key("images", "fk_images_album", "owner_id", "albums", "id"), id="albums")
    runner = Runner(db)
    runner.expand(change)
    runner.migrate(change)
    with pytest.raises(UnknownTableError, match="albums"):
        runner.contract(change)
    assert runner.load(change).phase is Phase.MIGRATED


@pytest.mark.parametrize("kind", sorted(CONSTRAINTS))
def test_a_row_slipping_in_after_the_check_fails_contract_and_a_rerun_finishes(db, kind):
    """Between contract's check and its DDL, a writer adds a row that breaks the constraint: the
    DDL (or crossfade's own validation right after it) fails, and once the row is fixed, running
    contract again finishes. On PostgreSQL a unique build failing this way leaves an INVALID
    index, which the rerun drops before building it again."""
    change = Change(CONSTRAINTS[kind], id=f"race-{kind}")
    Runner(db).expand(change)
    Runner(db).migrate(change)

    def slip_in(phase: str, step: str) -> None:
        if step == "record contracting":
            write(db, VIOLATIONS[kind])

    with pytest.raises(sa.exc.DBAPIError, match="images|uq_images_name"):
        Runner(db, on_step=slip_in).contract(change)
    if kind == "unique" and db.dialect.name == "postgresql":
        assert index_names(db, valid=False) == {"uq_images_name"}

    write(db, "DELETE FROM images WHERE id = 901")
    runner = Runner(db)
    runner.contract(change)
    assert runner.load(change).phase is Phase.CONTRACTED and runner.problems(change) == []
    if db.dialect.name == "postgresql":
        assert index_names(db, valid=False) == set()
    with pytest.raises(sa.exc.DBAPIError):
        write(db, VIOLATIONS[kind])


# --- PostgreSQL: CREATE INDEX CONCURRENTLY interrupted ------------------------------------------

@pytest.mark.parametrize("dialect_name", ["postgresql"])
def test_concurrent_build_that_failed_leaves_an_invalid_index_which_a_rerun_replaces(db):
    change = Change(ops.create_index("images", "ix_images_name", "name", unique=True), id="unique-index")

    def duplicate_after_the_check(phase: str, step: str) -> None:  # so the build itself fails
        if step == "record expanding":
            write(db, "INSERT INTO images (id, name) VALUES (901, 'i1')")

    with pytest.raises(sa.exc.IntegrityError):
        Runner(db, on_step=duplicate_after_the_check).expand(change)
    runner = Runner(db)
    assert index_names(db, valid=False) == {"ix_images_name"}
    assert runner.load(change).phase is Phase.EXPANDING

    write(db, "DELETE FROM images WHERE id = 901")
    runner.expand(change)
    assert index_names(db, valid=False) == set() and "ix_images_name" in index_names(db)
    assert runner.load(change).phase is Phase.EXPANDED
    with pytest.raises(sa.exc.IntegrityError):
        write(db, "INSERT INTO images (id, name) VALUES (902, 'i2')")


@pytest.mark.parametrize("dialect_name", ["postgresql"])
def test_concurrent_build_waits_without_stalling_writers_and_a_cancelled_one_is_finished_by_a_rerun(db):
    change = Change(UNIQUE, id="unique-cancelled")
    runner = Runner(db, max_lock_wait=30)
    runner.expand(change)
    runner.migrate(change)
    holder = db.connect()  # an open write transaction: CONCURRENTLY waits for it to end
    sql(holder, "INSERT INTO images (id, name) VALUES (950, 'held')")
    failures: list[sa.exc.DBAPIError] = []

    def contract() -> None:
        try:
            runner.contract(change)
        except sa.exc.DBAPIError as exc:  # handed to the test's thread
            failures.append(exc)

    thread = threading.Thread(target=contract)
    thread.start()
    try:
        pid = _wait_for_waiting_build(db)
        started = time.monotonic()
        with db.begin() as writer:  # writers go on meanwhile: no write lock
            sql(writer, "SET LOCAL statement_timeout = '5s'")
            sql(writer, "INSERT INTO images (id, name) VALUES (951, 'while building')")
        assert time.monotonic() - started < 2
        with db.connect() as admin:
            sql(admin, "SELECT pg_cancel_backend(:pid)", pid=pid)
        thread.join(30)
    finally:
        holder.rollback()
        holder.close()
    assert not thread.is_alive()
    assert len(failures) == 1 and isinstance(failures[0], sa.exc.OperationalError), failures
    assert index_names(db, valid=False) == {"uq_images_name"}
    assert runner.load(change).phase is Phase.CONTRACTING

    runner.contract(change)
    assert index_names(db, valid=False) == set() and "uq_images_name" in index_names(db)
    assert "uq_images_name" in catalog(db)["images"][1]  # attached as the constraint
    with pytest.raises(sa.exc.IntegrityError):
        write(db, VIOLATIONS["unique"])


@pytest.mark.parametrize("dialect_name", ["postgresql"])
def test_concurrent_steps_give_the_pooled_connection_back_as_they_found_it(db):
    pooled = sa.create_engine(db.url, pool_size=1, max_overflow=0)

    def session_setting(dbapi, _record) -> None:
        dbapi.execute("SET lock_timeout = '7s'")
        dbapi.commit()

    sa.event.listen(pooled, "connect", session_setting)
    try:
        Runner(pooled).expand(Change(ops.create_index("images", "ix_images_size", "size"), id="index"))
        with pooled.connect() as conn:
            assert sql(conn, "SHOW lock_timeout").scalar() == "7s"
            assert conn.connection.dbapi_connection.autocommit is False
    finally:
        pooled.dispose()


def _wait_for_waiting_build(engine: sa.Engine) -> int:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            pid = sql(conn, "SELECT pid FROM pg_stat_activity WHERE query LIKE 'CREATE UNIQUE INDEX CONCURRENTLY%' "
                            "AND wait_event_type = 'Lock'").scalar()
        if pid:
            return pid
        time.sleep(0.05)
    raise AssertionError("CREATE INDEX CONCURRENTLY never waited for the open transaction")


@pytest.mark.parametrize("dialect_name", ["sqlite"])
def test_sqlite_rebuild_checks_the_key_it_adds_even_where_connections_do_not_enforce_keys(engine):
    fresh(engine)  # no PRAGMA foreign_keys here: the rebuild's copy checks nothing by itself
    change = Change(FOREIGN_KEY, id="fk-unenforced")
    Runner(engine).expand(change)
    Runner(engine).migrate(change)

    def slip_in(phase: str, step: str) -> None:
        if step == "record contracting":
            write(engine, VIOLATIONS["foreign_key"])

    with pytest.raises(sa.exc.IntegrityError, match="row 901 of images references no row of owners"):
        Runner(engine, on_step=slip_in).contract(change)
    with engine.connect() as conn:
        assert sa.inspect(conn).get_foreign_keys("images") == []  # the rebuild was rolled back whole
    write(engine, "DELETE FROM images WHERE id = 901")
    Runner(engine).contract(change)
    with engine.connect() as conn:
        assert [k["name"] for k in sa.inspect(conn).get_foreign_keys("images")] == ["fk_images_owner"]


# --- interrupted anywhere, finished by a rerun ---------------------------------------------------

class Crash(Exception):
    pass


def crash_after(k: int):
    calls: list[str] = []

    def hook(phase: str, step: str) -> None:
        calls.append(step)
        if len(calls) == k:
            raise Crash(step)
    return hook


def test_contract_interrupted_after_any_step_finishes_on_rerun(db):
    def change() -> Change:
        return Change(UNIQUE, FOREIGN_KEY, CHECK, id="all-constraints")

    steps: list[str] = []
    upgrade(db, change(), on_step=lambda phase, step: steps.append(step) if phase == "contract" else None)
    assert len(steps) >= 4, steps
    for k, name in enumerate(steps, start=1):
        fresh(db)
        runner = Runner(db)
        runner.expand(change())
        runner.migrate(change())

        with pytest.raises(Crash):
            Runner(db, on_step=crash_after(k)).contract(change())
        try:
            runner.contract(change())
            assert runner.problems(change()) == []
            for kind in CONSTRAINTS:
                with pytest.raises(sa.exc.DBAPIError):
                    write(db, VIOLATIONS[kind])
        except Exception as exc:
            raise AssertionError(f"contract crashed after step {k} ({name!r}), then rerun: {exc!r}") from exc


# --- later changes keep the constraints --------------------------------------------------------

def test_a_later_table_rebuild_keeps_the_constraints(db):
    upgrade(db, Change(ops.create_index("images", "ix_images_size", "size"), UNIQUE, FOREIGN_KEY, CHECK, id="first"))
    # SQLite rebuilds the table for NOT NULL: the copy must carry every index and constraint.
    upgrade(db, Change(ops.set_not_null("images", "name", fill="unnamed"), id="second"))
    for kind in CONSTRAINTS:
        with pytest.raises(sa.exc.DBAPIError):
            write(db, VIOLATIONS[kind])
    assert {"ix_images_size", "uq_images_name"} <= index_names(db) | set(catalog(db)["images"][1])


def test_unfinished_steps_notice_an_index_dropped_outside_crossfade(db):
    change = Change(ops.create_index("images", "ix_images_size", "size"), id="index")
    runner = Runner(db)
    runner.expand(change)
    with db.connect() as conn:
        schema = Schema.reflect(conn, {"images"})
        intents = change.expand_intents(schema)
        assert checks.unfinished_steps(runner.dialect, conn, schema, intents) == []
    drop = "DROP INDEX ix_images_size" + (" ON images" if db.dialect.name == "mysql" else "")
    write(db, drop)
    with db.connect() as conn:
        problems = checks.unfinished_steps(runner.dialect, conn, schema, intents)
    assert any("ix_images_size" in p for p in problems), problems
    # and the runner reports it as drift, so status and check show it
    assert any("ix_images_size" in p for p in runner.problems(change)), runner.problems(change)


def test_status_reports_a_constraint_dropped_after_contract(db):
    change = Change(ops.add_unique("images", "uq_images_name", "name"), id="unique")
    runner = upgrade(db, change)
    assert runner.problems(change) == []
    write(db, "DROP INDEX uq_images_name" + (" ON images" if db.dialect.name == "mysql" else "")
          if db.dialect.name != "postgresql" else "ALTER TABLE images DROP CONSTRAINT uq_images_name")
    assert any("uq_images_name" in p for p in runner.problems(change)), runner.problems(change)


# --- validation: typed errors before anything runs ------------------------------------------

def test_ops_refuse_what_cannot_work_naming_it():
    schema = Schema.from_metadata(release_n())
    sa.Index("ix_taken", schema.table("images").c.size)
    cases = [
        (ops.create_index("images", "ix_new", "nope"), UnknownColumnError, "images.nope"),
        (ops.create_index("images", "ix_taken", "name"), ConstraintExistsError, "ix_taken"),
        (ops.add_unique("images", "uq", ["name", "nope"]), UnknownColumnError, "images.nope"),
        (ops.add_foreign_key("images", "fk", "owner_id", "owners", "nope"), UnknownColumnError, "owners.nope"),
        (ops.add_foreign_key("images", "fk", ["owner_id", "size"], "owners", "id"), ValidationError, "cannot reference"),
        (ops.add_check("images", "ck", lambda row: row.nope > 0), UnknownColumnError, "images.nope"),
        (ops.add_check("images", "ck", lambda row: 5), ValidationError, "boolean expression"),
    ]
    for op, error, text in cases:
        with pytest.raises(error, match=text):
            op.validate(schema)
    with pytest.raises(ValidationError, match="ondelete"):
        ops.add_foreign_key("images", "fk", "owner_id", "owners", "id", ondelete="explode")
    with pytest.raises(ValidationError, match=(
            "^add_foreign_key fk: onupdate must be one of CASCADE, SET NULL, SET DEFAULT, RESTRICT, NO ACTION, "
            "not 'cascade please'$")):
        ops.add_foreign_key("images", "fk", "owner_id", "owners", "id", onupdate="cascade please")
    assert ops.add_foreign_key("images", "fk", "owner_id", "owners", "id", onupdate="set null").onupdate == "SET NULL"
    with pytest.raises(ValidationError, match="at least one column"):
        ops.add_unique("images", "uq", [])


# --- plan: the online forms and what each step locks ------------------------------------------

CHANGE_MODULE = '''
import sqlalchemy as sa
from crossfade import Change, ops

metadata = sa.MetaData()
sa.Table("owners", metadata, sa.Column("id", sa.Integer, primary_key=True), sa.Column("name", sa.String(20)))
sa.Table("images", metadata, sa.Column("id", sa.Integer, primary_key=True), sa.Column("name", sa.String(20)),
         sa.Column("owner_id", sa.Integer), sa.Column("size", sa.Integer))

change = Change(
    ops.create_index("images", "ix_images_size", "size"),
    ops.add_unique("images", "uq_images_name", "name"),
    ops.add_foreign_key("images", "fk_images_owner", "owner_id", "owners", "id", ondelete="CASCADE",
                        onupdate="CASCADE"),
    ops.add_check("images", "ck_images_size", lambda row: row.size >= 0),
    id="0001_constraints",
)
'''

PLAN_SHAPES = {
    "postgresql": [
        "CREATE INDEX CONCURRENTLY ix_images_size ON images (size);",
        "DROP INDEX CONCURRENTLY IF EXISTS ix_images_size;",
        "CREATE UNIQUE INDEX CONCURRENTLY uq_images_name ON images (name);",
        "ALTER TABLE images ADD CONSTRAINT uq_images_name UNIQUE USING INDEX uq_images_name;",
        ("ALTER TABLE images ADD CONSTRAINT fk_images_owner FOREIGN KEY (owner_id) REFERENCES owners (id) "
         "ON DELETE CASCADE ON UPDATE CASCADE NOT VALID;"),
        "ALTER TABLE images VALIDATE CONSTRAINT fk_images_owner;",
        "ALTER TABLE images ADD CONSTRAINT ck_images_size CHECK (size >= 0) NOT VALID;",
        "ALTER TABLE images VALIDATE CONSTRAINT ck_images_size;",
        "--   locks: no write lock (CONCURRENTLY",
        "--   locks: no write lock (VALIDATE",
        "--   locks: ACCESS EXCLUSIVE for an instant (NOT VALID: no scan)",
    ],
    "mysql": [  # MySQL proper; MariaDB below
        "ALTER TABLE images ADD INDEX ix_images_size (size), ALGORITHM=INPLACE, LOCK=NONE;",
        "ALTER TABLE images ADD UNIQUE INDEX uq_images_name (name), ALGORITHM=INPLACE, LOCK=NONE;",
        ("ALTER TABLE images ADD CONSTRAINT fk_images_owner FOREIGN KEY (owner_id) REFERENCES owners (id) "
         "ON DELETE CASCADE ON UPDATE CASCADE, ALGORITHM=COPY, LOCK=SHARED;"),
        "ALTER TABLE images ADD CONSTRAINT ck_images_size CHECK (size >= 0), ALGORITHM=COPY, LOCK=SHARED;",
        "ALTER TABLE images DROP INDEX ix_images_size, ALGORITHM=INPLACE, LOCK=NONE;",
        "--   locks: no write lock (ALGORITHM=INPLACE, LOCK=NONE",
        "--   locks: blocks writes while the table is copied (ALGORITHM=COPY, LOCK=SHARED; reads go on)",
    ],
    "sqlite": [
        "CREATE INDEX ix_images_size ON images (size);",
        "CREATE UNIQUE INDEX uq_images_name ON images (name);",
        "CONSTRAINT fk_images_owner FOREIGN KEY(owner_id) REFERENCES owners (id) ON DELETE CASCADE ON UPDATE CASCADE",
        "CONSTRAINT ck_images_size CHECK (size >= 0)",
        "DROP INDEX IF EXISTS ix_images_size;",
        "--   locks: blocks writers while the index builds",
        "--   locks: blocks writers while the table is copied (a table rebuild",
    ],
}

MARIADB_SHAPES = [
    ("SET STATEMENT foreign_key_checks=0 FOR ALTER TABLE images ADD CONSTRAINT fk_images_owner FOREIGN KEY "
     "(owner_id) REFERENCES owners (id) ON DELETE CASCADE ON UPDATE CASCADE, ALGORITHM=INPLACE, LOCK=NONE;"),
    "BEGIN NOT ATOMIC",
    "SIGNAL SQLSTATE '45000'",
    "--   locks: no write lock (ALGORITHM=INPLACE, LOCK=NONE: foreign_key_checks=0",
    "ALTER TABLE images ADD CONSTRAINT ck_images_size CHECK (size >= 0), ALGORITHM=COPY, LOCK=SHARED;",
    ("--   locks: blocks writes while the table is copied (ALGORITHM=COPY, LOCK=SHARED; reads go on): "
     "MariaDB has no online form of this"),
]


@pytest.fixture
def change_module(tmp_path: Path) -> Path:
    path = tmp_path / "0001_constraints.py"
    path.write_text(CHANGE_MODULE)
    return path


def plan_sql(*args: str) -> str:
    result = CliRunner().invoke(app, ["plan", *args, "--sql"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.mark.parametrize("dialect", sorted(PLAN_SHAPES))
def test_plan_shows_the_online_forms_and_what_each_step_locks(change_module, dialect):
    sql_text = plan_sql(str(change_module), "--dialect", dialect)
    for shape in PLAN_SHAPES[dialect]:
        assert shape in sql_text, shape
    expand = sql_text.split("/ expand")[1].split("/ migrate")[0]
    contract = sql_text.split("/ contract")[1].split("/ rollback")[0]
    assert "ix_images_size" in expand and "uq_images_name" not in expand  # constraints wait for contract
    assert "uq_images_name" in contract and "ck_images_size" in contract


@pytest.mark.parametrize("dialect_name", ["mysql"])
def test_plan_against_mariadb_shows_its_online_foreign_key_and_the_copy_a_check_needs(db, change_module):
    sql_text = plan_sql(str(change_module), "--url", db.url.render_as_string(hide_password=False))
    assert "(MariaDB)" in sql_text
    for shape in MARIADB_SHAPES:
        assert shape in sql_text, shape


@pytest.mark.parametrize("dialect", ["postgresql", "mysql", "mariadb", "sqlite"])
def test_every_planned_step_says_what_it_locks(dialect):
    metadata = release_n()
    change = Change(ops.create_index("images", "ix_images_size", "size"), UNIQUE, FOREIGN_KEY, CHECK,
                    ops.set_not_null("images", "name", fill="unnamed"),
                    ops.add_column("images", sa.Column("label", sa.String(30), nullable=False, server_default="x"),
                                   backfill=lambda r: sa.func.upper(r.name)),
                    id="everything")
    sections = build_plan([change], offline(dialect), metadata)
    steps = [step for section in sections for step in section.steps]
    assert len(steps) >= 8
    for step in steps:
        assert any(note.startswith("locks: ") for note in step.notes), step.name
