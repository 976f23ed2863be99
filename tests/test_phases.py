"""Every op through expand -> migrate -> contract and expand -> rollback, on real databases.

Between expand and migrate, release N (old columns) and release N+1 (new columns) both write,
so the checks after contract and rollback see what the triggers kept in sync, read back from
the database itself.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

import glance_schema
import pytest
import sqlalchemy as sa

from crossfade import Change, ops
from crossfade.errors import NullsRemainError, PhaseError
from crossfade.runner import Runner
from crossfade.state import Phase

ROWS = 30


def create_images(engine: sa.Engine) -> None:
    """Release N's table, with ROWS rows: every third size NULL."""
    glance_schema.create_images(engine, [
        {"id": i, "name": f"i{i}", "is_public": i % 2 == 0, "size": None if i % 3 == 0 else i, "kind": "k"}
        for i in range(1, ROWS + 1)], sa.Column("kind", sa.String(20), nullable=False))


def sql(conn: sa.Connection, statement: str, **params):
    return conn.execute(sa.text(statement), params)


def columns(engine: sa.Engine) -> dict[str, dict]:
    with engine.connect() as conn:
        return {c["name"]: c for c in sa.inspect(conn).get_columns("images")}


def rows(engine: sa.Engine, *names: str) -> dict[int, tuple]:
    with engine.connect() as conn:
        query = f"SELECT id, {', '.join(names)} FROM images ORDER BY id"
        return {r[0]: tuple(r[1:]) for r in sql(conn, query)}


def leftover_objects(engine: sa.Engine) -> list[str]:
    """crossfade's triggers and functions, read straight from the catalog (not through crossfade)."""
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            query = ("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal AND tgname LIKE 'crossfade%' "
                     "UNION ALL SELECT proname FROM pg_proc WHERE proname LIKE 'crossfade%'")
        elif engine.dialect.name == "sqlite":
            query = "SELECT name FROM sqlite_master WHERE type = 'trigger'"
        else:
            query = "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE()"
        return sorted(sql(conn, query).scalars())


def assert_clean(runner: Runner, change: Change, engine: sa.Engine) -> None:
    assert runner.problems(change) == []
    with engine.connect() as conn:
        assert runner.dialect.catalog_objects(conn, {"images"}) == {}
        assert runner.dialect.orphan_functions(conn) == []
    assert leftover_objects(engine) == []


def has_default(column: dict, text: str) -> bool:
    return column["default"] is not None and text in str(column["default"])


# --- per-op scenarios ----------------------------------------------------------------------

@dataclass
class Scenario:
    change: Callable[[], Change]
    old_writes: Callable[[sa.Connection], None]  # release N, during the transition
    new_writes: Callable[[sa.Connection], None]  # release N+1, during the transition
    check_contracted: Callable[[sa.Engine], None]
    check_rolled_back: Callable[[sa.Engine], None]


# add_column: label = upper(name), NOT NULL with a server default at contract
def _add_change():
    return Change(ops.add_column("images", sa.Column("label", sa.String(60), nullable=False, server_default="none"),
                                 backfill=lambda r: sa.func.upper(r.name)), id="add-label")


def _add_old(conn):
    sql(conn, "INSERT INTO images (id, name, is_public, kind) VALUES (101, 'oldrow', false, 'k')")
    sql(conn, "UPDATE images SET name = 'renamed' WHERE id = 1")


def _add_new(conn):
    sql(conn, "INSERT INTO images (id, name, is_public, kind, label) VALUES (102, 'newrow', true, 'k', 'custom')")


def _add_contracted(engine):
    cols = columns(engine)
    assert cols["label"]["nullable"] is False and has_default(cols["label"], "none")
    labels = rows(engine, "name", "label")
    assert labels[101] == ("oldrow", "OLDROW") and labels[1] == ("renamed", "RENAMED")
    assert labels[102] == ("newrow", "custom")
    assert all(label == name.upper() for i, (name, label) in labels.items() if i != 102)
    with engine.begin() as conn:  # release N+1's default now applies
        sql(conn, "INSERT INTO images (id, name, is_public, kind) VALUES (103, 'late', true, 'k')")
    assert rows(engine, "label")[103] == ("none",)


def _add_rolled_back(engine):
    assert "label" not in columns(engine)
    assert rows(engine, "name")[102] == ("newrow",)


# rename_column: name -> title (NOT NULL carried over)
def _rename_change():
    return Change(ops.rename_column("images", "name", "title"), id="rename-name")


def _rename_old(conn):
    sql(conn, "INSERT INTO images (id, name, is_public, kind) VALUES (101, 'n-ins', false, 'k')")
    sql(conn, "UPDATE images SET name = 'n-upd' WHERE id = 2")


def _rename_new(conn):
    sql(conn, "INSERT INTO images (id, title, is_public, kind) VALUES (102, 't-ins', true, 'k')")
    sql(conn, "UPDATE images SET title = 't-upd' WHERE id = 3")


def _rename_expected(i: int) -> str:
    return {101: "n-ins", 2: "n-upd", 102: "t-ins", 3: "t-upd"}.get(i, f"i{i}")


def _rename_contracted(engine):
    cols = columns(engine)
    assert "name" not in cols and cols["title"]["nullable"] is False
    assert rows(engine, "title") == {i: (_rename_expected(i),) for i in [*range(1, ROWS + 1), 101, 102]}


def _rename_rolled_back(engine):
    cols = columns(engine)
    assert "title" not in cols and cols["name"]["nullable"] is False  # SQLite: restored after relaxing
    assert rows(engine, "name") == {i: (_rename_expected(i),) for i in [*range(1, ROWS + 1), 101, 102]}


# replace_column: is_public (bool) -> visibility (string), Glance's change
def _replace_change():
    return glance_schema.visibility_change()


def _replace_old(conn):
    sql(conn, "INSERT INTO images (id, name, is_public, kind) VALUES (101, 'o', true, 'k')")
    sql(conn, "UPDATE images SET is_public = false WHERE id = 2")


def _replace_new(conn):
    sql(conn, "INSERT INTO images (id, name, visibility, kind) VALUES (102, 'n', 'community', 'k')")
    sql(conn, "UPDATE images SET visibility = 'public' WHERE id = 3")
    sql(conn, "UPDATE images SET visibility = 'community' WHERE id = 4")


def _replace_public(i: int) -> bool:
    return {101: True, 2: False, 102: False, 3: True, 4: False}.get(i, i % 2 == 0)


def _replace_contracted(engine):
    cols = columns(engine)
    assert "is_public" not in cols
    assert cols["visibility"]["nullable"] is False and has_default(cols["visibility"], "shared")
    found = rows(engine, "visibility")
    assert found[102] == ("community",) and found[4] == ("community",)
    assert {i: v for i, (v,) in found.items() if i not in (4, 102)} == {
        i: "public" if _replace_public(i) else "shared" for i in found if i not in (4, 102)}


def _replace_rolled_back(engine):
    cols = columns(engine)
    assert "visibility" not in cols and cols["is_public"]["nullable"] is False
    assert {i: bool(v) for i, (v,) in rows(engine, "is_public").items()} == {
        i: _replace_public(i) for i in [*range(1, ROWS + 1), 101, 102]}


# drop_column: kind (NOT NULL, no default) is filled for release N+1's inserts
def _drop_change():
    return Change(ops.drop_column("images", "kind", fill="unknown"), id="drop-kind")


def _drop_old(conn):
    sql(conn, "INSERT INTO images (id, name, is_public, kind) VALUES (101, 'o', true, 'old-kind')")


def _drop_new(conn):
    sql(conn, "INSERT INTO images (id, name, is_public) VALUES (102, 'n', true)")


def _drop_contracted(engine):
    assert "kind" not in columns(engine)
    assert len(rows(engine, "name")) == ROWS + 2


def _drop_rolled_back(engine):
    cols = columns(engine)
    assert cols["kind"]["nullable"] is False
    found = rows(engine, "kind")
    assert found[101] == ("old-kind",) and found[102] == ("unknown",)
    assert all(found[i] == ("k",) for i in range(1, ROWS + 1))


# set_not_null: size's NULLs become 0, then NOT NULL
def _not_null_change():
    return Change(ops.set_not_null("images", "size", fill=0), id="size-not-null")


def _not_null_old(conn):
    sql(conn, "INSERT INTO images (id, name, is_public, kind, size) VALUES (101, 'o', true, 'k', NULL)")
    sql(conn, "UPDATE images SET size = NULL WHERE id = 1")


def _not_null_new(conn):
    sql(conn, "INSERT INTO images (id, name, is_public, kind, size) VALUES (102, 'n', true, 'k', 7)")


def _not_null_expected(i: int) -> int:
    return {101: 0, 1: 0, 102: 7}.get(i, 0 if i % 3 == 0 else i)


def _not_null_contracted(engine):
    assert columns(engine)["size"]["nullable"] is False
    assert rows(engine, "size") == {i: (_not_null_expected(i),) for i in [*range(1, ROWS + 1), 101, 102]}
    with engine.begin() as conn, pytest.raises(sa.exc.IntegrityError):
        sql(conn, "INSERT INTO images (id, name, is_public, kind, size) VALUES (103, 'x', true, 'k', NULL)")


def _not_null_rolled_back(engine):
    assert columns(engine)["size"]["nullable"] is True
    with engine.begin() as conn:  # release N may store NULL again: no fill trigger left
        sql(conn, "INSERT INTO images (id, name, is_public, kind, size) VALUES (103, 'x', true, 'k', NULL)")
    assert rows(engine, "size")[103] == (None,)


SCENARIOS = {
    "add_column": Scenario(_add_change, _add_old, _add_new, _add_contracted, _add_rolled_back),
    "rename_column": Scenario(_rename_change, _rename_old, _rename_new, _rename_contracted, _rename_rolled_back),
    "replace_column": Scenario(_replace_change, _replace_old, _replace_new, _replace_contracted,
                               _replace_rolled_back),
    "drop_column": Scenario(_drop_change, _drop_old, _drop_new, _drop_contracted, _drop_rolled_back),
    "set_not_null": Scenario(_not_null_change, _not_null_old, _not_null_new, _not_null_contracted,
                             _not_null_rolled_back),
}


def expand_and_write(engine: sa.Engine, scenario: Scenario) -> tuple[Runner, Change]:
    create_images(engine)
    runner, change = Runner(engine, batch_size=7), scenario.change()
    runner.expand(change)
    assert runner.load(change).phase is Phase.EXPANDED
    assert runner.problems(change) == []
    with engine.begin() as conn:
        scenario.old_writes(conn)
    with engine.begin() as conn:
        scenario.new_writes(conn)
    return runner, change


@pytest.mark.parametrize("op", sorted(SCENARIOS))
def test_expand_migrate_contract(engine, op):
    scenario = SCENARIOS[op]
    runner, change = expand_and_write(engine, scenario)
    runner.migrate(change)
    assert runner.load(change).phase is Phase.MIGRATED
    runner.contract(change)
    assert runner.load(change).phase is Phase.CONTRACTED
    assert_clean(runner, change, engine)
    scenario.check_contracted(engine)
    runner.contract(change)  # contracting a contracted change does nothing
    assert_clean(runner, change, engine)


@pytest.mark.parametrize("op", sorted(SCENARIOS))
def test_expand_rollback(engine, op):
    scenario = SCENARIOS[op]
    runner, change = expand_and_write(engine, scenario)
    runner.rollback(change)
    assert runner.load(change).phase is Phase.ROLLED_BACK
    assert_clean(runner, change, engine)
    scenario.check_rolled_back(engine)
    runner.rollback(change)  # rolling back twice does nothing
    assert_clean(runner, change, engine)


def test_rollback_after_migrate_keeps_release_n_data(engine):
    scenario = SCENARIOS["replace_column"]
    runner, change = expand_and_write(engine, scenario)
    runner.migrate(change)
    runner.rollback(change)
    assert_clean(runner, change, engine)
    scenario.check_rolled_back(engine)


def test_expand_again_after_rollback(engine):
    scenario = SCENARIOS["replace_column"]
    runner, change = expand_and_write(engine, scenario)
    runner.rollback(change)
    runner.expand(change)
    runner.migrate(change)
    runner.contract(change)
    assert_clean(runner, change, engine)
    # N+1's finer values went with the rollback; every row now holds up(is_public) again
    assert {i: v for i, (v,) in rows(engine, "visibility").items()} == {
        i: "public" if _replace_public(i) else "shared" for i in [*range(1, ROWS + 1), 101, 102]}


# --- phase ordering ----------------------------------------------------------------------------

def test_phase_order_is_enforced(engine):
    create_images(engine)
    runner, change = Runner(engine), _replace_change()
    with pytest.raises(PhaseError):
        runner.migrate(change)
    with pytest.raises(PhaseError):
        runner.contract(change)
    runner.expand(change)
    with pytest.raises(PhaseError, match="migrate"):
        runner.contract(change)  # contract before migrate
    assert "is_public" in columns(engine)
    runner.migrate(change)
    runner.contract(change)
    with pytest.raises(PhaseError, match="rolled back"):
        runner.rollback(change)  # rollback after contract
    with pytest.raises(PhaseError):
        runner.expand(change)
    assert runner.load(change).phase is Phase.CONTRACTED
    assert_clean(runner, change, engine)


def test_contract_refuses_remaining_nulls(engine):
    create_images(engine)
    runner, change = Runner(engine), Change(ops.set_not_null("images", "size"), id="size-no-fill")
    runner.expand(change)
    runner.migrate(change)
    with pytest.raises(NullsRemainError, match=r"images\.size still holds 10 NULL"):
        runner.contract(change)
    assert columns(engine)["size"]["nullable"] is True
    with engine.begin() as conn:
        sql(conn, "UPDATE images SET size = -1 WHERE size IS NULL")
    runner.contract(change)
    assert columns(engine)["size"]["nullable"] is False
    assert_clean(runner, change, engine)


# --- status and drift ----------------------------------------------------------------------------

def drop_insert_trigger(engine: sa.Engine, runner: Runner) -> str:
    name = runner.dialect.object_name("images", "insert")
    on_table = " ON images" if engine.dialect.name == "postgresql" else ""
    with engine.begin() as conn:
        sql(conn, f"DROP TRIGGER {name}{on_table}")
    return name


def alter_sync_behind_crossfade(engine: sa.Engine, runner: Runner) -> str:
    """Replace the INSERT sync with one that does nothing, as a careless DBA might."""
    name = runner.dialect.object_name("images", "insert")
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            name = runner.dialect.object_name("images", "sync")
            sql(conn, f"CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql "
                      "AS $$ BEGIN RETURN NEW; END $$")
        elif engine.dialect.name == "sqlite":
            sql(conn, f"DROP TRIGGER {name}")
            sql(conn, f"CREATE TRIGGER {name} AFTER INSERT ON images BEGIN SELECT 1; END")
        else:
            sql(conn, f"DROP TRIGGER {name}")
            sql(conn, f"CREATE TRIGGER {name} BEFORE INSERT ON images FOR EACH ROW SET @x = 1")
    return name


def insert_as_release_n(engine: sa.Engine, id_: int, public: bool) -> str | None:
    with engine.begin() as conn:
        sql(conn, "INSERT INTO images (id, name, is_public, kind) VALUES (:i, 'x', :p, 'k')", i=id_, p=public)
        return sql(conn, "SELECT visibility FROM images WHERE id = :i", i=id_).scalar()


@pytest.mark.parametrize("tamper", ["drop", "alter"])
def test_status_reports_drift_and_expand_repairs(engine, tamper):
    create_images(engine)
    runner, change = Runner(engine), _replace_change()
    runner.expand(change)
    status = runner.status(change)
    assert status.problems == [] and all(t["installed"] and t["matches"] for t in status.triggers)

    name = (drop_insert_trigger if tamper == "drop" else alter_sync_behind_crossfade)(engine, runner)
    status = runner.status(change)
    assert status.phase is Phase.EXPANDED
    expected = "missing" if tamper == "drop" else "changed outside crossfade"
    assert any(name in p and expected in p for p in status.problems), status.problems
    entry = next(t for t in status.triggers if t["name"] == name)
    assert entry["matches"] is False and entry["installed"] is (tamper == "alter")
    assert insert_as_release_n(engine, 201, True) is None  # the sync is broken right now

    runner.expand(change)  # on an expanded change: reinstall what drifted
    status = runner.status(change)
    assert status.problems == [] and all(t["installed"] and t["matches"] for t in status.triggers)
    assert insert_as_release_n(engine, 202, True) == "public"
    runner.migrate(change)  # the row written while the trigger was broken: backfill fixes it
    assert rows(engine, "visibility")[201] == ("public",)
    runner.contract(change)
    assert_clean(runner, change, engine)


# --- resumable backfill ----------------------------------------------------------------------------

class Interrupt(Exception):
    pass


def test_backfill_resumes_from_its_checkpoint(engine):
    create_images(engine)
    change = _replace_change()
    Runner(engine).expand(change)
    batches: list[str] = []

    def stop_after_three_batches(phase, step):
        if step.startswith("batch of"):
            batches.append(step)
            if len(batches) == 3:
                raise Interrupt(step)

    with pytest.raises(Interrupt):
        Runner(engine, batch_size=4, on_step=stop_after_three_batches).migrate(change)

    with engine.connect() as conn:
        saved = sql(conn, "SELECT phase, checkpoint FROM crossfade_state WHERE change_id = 'visibility'").one()
    checkpoint = json.loads(saved.checkpoint)["images"]
    assert saved.phase == "migrating"
    assert checkpoint["ranges"][0]["last"] == [12] and checkpoint["done"] == 12 and checkpoint["total"] == ROWS
    assert checkpoint["complete"] is False
    filled = rows(engine, "visibility")
    assert all(filled[i] != (None,) for i in range(1, 13))
    assert all(filled[i] == (None,) for i in range(13, ROWS + 1))  # untouched past the checkpoint
    assert Runner(engine).status(change).backfill == {"images": pytest.approx(12 / ROWS)}

    rerun: list[str] = []
    Runner(engine, batch_size=4, on_step=lambda phase, step: rerun.append(step)).migrate(change)
    assert [s for s in rerun if s.startswith("batch of")] == [
        "batch of images up to 16", "batch of images up to 20", "batch of images up to 24",
        "batch of images up to 28", "batch of images up to 30"]
    assert rows(engine, "visibility") == {i: ("public" if i % 2 == 0 else "shared",) for i in range(1, ROWS + 1)}
    assert Runner(engine).status(change).backfill == {"images": 1.0}
    assert Runner(engine).load(change).phase is Phase.MIGRATED


@pytest.mark.parametrize("old_value, new_value", [("abc", "ABC"), ("abc", "abc ")], ids=["letter-case", "trailing-space"])
def test_rename_syncs_changes_a_collation_would_call_equal(engine, request, old_value, new_value):
    create_images(engine)
    runner, change = Runner(engine), _rename_change()
    runner.expand(change)
    with engine.begin() as conn:
        sql(conn, "UPDATE images SET name = :v WHERE id IN (1, 2)", v=old_value)
    with engine.begin() as conn:
        sql(conn, "UPDATE images SET name = :v WHERE id = 1", v=new_value)  # release N
        sql(conn, "UPDATE images SET title = :v WHERE id = 2", v=new_value)  # release N+1
    found = rows(engine, "name", "title")
    assert (found[1], found[2]) == ((new_value, new_value), (new_value, new_value))


def test_release_n1_insert_leaving_new_column_to_its_default(engine):
    """N+1's model has a server default, so it omits visibility; the trigger gives the row
    B := up(A) and then A := down(B), so is_public's NOT NULL holds before contract."""
    create_images(engine)
    runner, change = Runner(engine), _replace_change()
    runner.expand(change)
    with engine.begin() as conn:  # N+1's model has server_default='shared', so omits visibility
        sql(conn, "INSERT INTO images (id, name, kind) VALUES (102, 'n', 'k')")
    found = rows(engine, "is_public", "visibility")[102]
    assert (bool(found[0]) if found[0] is not None else None, found[1]) == (False, "shared")


LOCK_WAIT = {"sqlite": "PRAGMA busy_timeout", "mysql": "SELECT @@SESSION.lock_wait_timeout",
             "postgresql": "SHOW lock_timeout"}


def test_phases_give_the_pooled_connection_back_with_its_lock_wait(engine):
    """crossfade shortens lock waits for its DDL only; the application's connections keep theirs."""
    create_images(engine)

    def lock_wait():
        with engine.connect() as conn:
            return conn.exec_driver_sql(LOCK_WAIT[engine.dialect.name]).scalar()

    before = lock_wait()
    runner, change = Runner(engine), _replace_change()
    for phase in (runner.expand, runner.migrate, runner.contract):
        phase(change)
        assert lock_wait() == before


# --- found by the simulator -------------------------------------------------------------------

def _n1_insert_syncs(engine: sa.Engine, row_id: int) -> bool:
    """Release N+1 inserts a 'community' image; does is_public follow (down -> False)?"""
    with engine.begin() as conn:
        conn.exec_driver_sql(f"INSERT INTO images (id, name, visibility) VALUES ({row_id}, 'n1', 'community')")
        return conn.exec_driver_sql(f"SELECT is_public FROM images WHERE id = {row_id}").scalar() is not None


def test_the_triggers_keep_syncing_through_every_contract_step_until_dropped(engine):
    """SQLite's contract rebuilds the table (to set visibility's default) while the triggers are
    still meant to run; the rebuild must re-create them, or N+1's writes go unsynced."""
    glance_schema.create_images(engine, [{"id": 1, "name": "a", "is_public": True}])
    change = glance_schema.visibility_change()
    Runner(engine).expand(change)
    Runner(engine).migrate(change)
    synced_after: dict[str, bool] = {}

    def write_after(phase: str, step: str) -> None:
        triggers_left = not step.startswith("drop triggers") and "triggers dropped" not in synced_after
        if phase == "contract" and triggers_left and "record" not in step:
            synced_after[step] = _n1_insert_syncs(engine, 100 + len(synced_after))
        if step.startswith("drop triggers"):
            synced_after["triggers dropped"] = True

    Runner(engine, on_step=write_after).contract(change)
    steps = [s for s in synced_after if s != "triggers dropped"]
    assert steps, "contract ran no step before dropping the triggers"
    assert all(synced_after[s] for s in steps), synced_after


@pytest.mark.parametrize("dialect_name", ["mysql"])
def test_mariadb_creates_the_update_trigger_before_the_insert_trigger(engine):
    """Each CREATE TRIGGER commits alone: an UPDATE between the two must not meet a row the
    INSERT trigger already synced with no UPDATE trigger to keep it so."""
    glance_schema.create_images(engine, [{"id": 1, "name": "a", "is_public": True}])
    change = glance_schema.visibility_change()
    created: list[str] = []
    original = sa.Connection.exec_driver_sql

    def record(conn, statement, *args, **kwargs):
        if statement.startswith(("CREATE OR REPLACE TRIGGER", "CREATE TRIGGER")):
            created.append(statement.split()[4] if "OR REPLACE" in statement else statement.split()[2])
        return original(conn, statement, *args, **kwargs)

    sa.Connection.exec_driver_sql = record
    try:
        Runner(engine).expand(change)
    finally:
        sa.Connection.exec_driver_sql = original
    assert [name.strip("`").rsplit("_", 1)[1] for name in created] == ["update", "insert"]
