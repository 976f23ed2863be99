"""Fewest DDL statements per phase, instant where the database allows (DESIGN section 8).

On Galera each DDL statement runs on every node at once and aborts conflicting writes there, so
crossfade says a phase's column and index changes as one ALTER TABLE per table and each trigger
in one statement. The counts are those of the statements the database really ran (captured
with SQLAlchemy's after_cursor_execute), and `crossfade plan` prints the same numbers. Instant
means no rebuild: InnoDB gives a rebuilt table a new TABLE_ID, an instant ALTER keeps it.
"""

from __future__ import annotations

import re
from contextlib import contextmanager

import glance_schema
import pytest
import sqlalchemy as sa

from crossfade import Change, ops
from crossfade.dialects import for_dialect
from crossfade.plan import build_plan
from crossfade.runner import Runner
from crossfade.schema import Schema

_DDL = re.compile(r"^\s*(ALTER|CREATE|DROP|RENAME)\b", re.IGNORECASE)


@contextmanager
def ddl_on(engine: sa.Engine, table: str = "images"):
    """The DDL statements the database receives for `table` meanwhile (not crossfade's own
    state and lock tables, created once)."""
    seen: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        own = "crossfade_state" in statement or "crossfade_lock" in statement
        if _DDL.match(statement) and table in statement and not own:  # its triggers' names hold it too
            seen.append(statement)

    sa.event.listen(engine, "after_cursor_execute", record)
    try:
        yield seen
    finally:
        sa.event.remove(engine, "after_cursor_execute", record)


def planned_counts(engine: sa.Engine, change: Change) -> dict[str, int]:
    """What `crossfade plan` says each phase runs, planned against the live database."""
    with engine.connect() as conn:
        schema = Schema.reflect(conn, change.tables())
    sections = build_plan([change], for_dialect(engine.dialect), schema)
    return {s.phase: int(s.ddl_summary().split()[0]) for s in sections if s.ddl_summary()}


def table_id(engine: sa.Engine, table: str = "images") -> int:
    """InnoDB's id of the table: a rebuild (INPLACE or COPY) makes a new one, INSTANT keeps it."""
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT TABLE_ID FROM information_schema.INNODB_SYS_TABLES "
                                    "WHERE NAME = CONCAT(DATABASE(), '/', :t)"), {"t": table}).scalar_one()


# MariaDB: one ALTER per table, one CREATE OR REPLACE / DROP per trigger. PostgreSQL (14+): one
# ALTER, the function, one CREATE OR REPLACE per trigger; its contract's online NOT NULL is four
# statements of its own (NOT VALID check, validate, SET NOT NULL, drop the check).
EXPECTED = {"mysql": {"expand": 3, "contract": 4, "rollback": 3},
            "postgresql": {"expand": 4, "contract": 9, "rollback": 4}}


@pytest.mark.parametrize("dialect_name", sorted(EXPECTED))
def test_each_phase_runs_the_fewest_ddl_statements_and_plan_says_how_many(engine, dialect_name):
    glance_schema.create_images(engine, [{"id": 1, "name": "a", "is_public": True}])
    change = glance_schema.visibility_change()
    runner = Runner(engine)
    planned = planned_counts(engine, change)
    ran = {}
    with ddl_on(engine) as seen:
        runner.expand(change)
    ran["expand"] = len(seen)
    runner.migrate(change)
    with ddl_on(engine) as seen:
        runner.contract(change)
    ran["contract"] = len(seen)

    rolled = glance_schema.visibility_change("visibility_rolled_back")
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE images")
    glance_schema.create_images(engine, [{"id": 1, "name": "a", "is_public": True}])
    runner.expand(rolled)
    with ddl_on(engine) as seen:
        runner.rollback(rolled)
    ran["rollback"] = len(seen)

    assert ran == EXPECTED[dialect_name]
    assert planned == ran


@pytest.mark.parametrize("dialect_name", ["mysql", "postgresql"])
def test_an_ops_column_and_index_changes_on_one_table_share_one_alter(engine, dialect_name):
    glance_schema.create_images(engine, [{"id": 1, "name": "a", "is_public": True}])
    change = Change(ops.add_column("images", sa.Column("owner", sa.String(32)), backfill=lambda row: row.name),
                    ops.add_column("images", sa.Column("checksum", sa.String(32))),
                    ops.drop_column("images", "size"), id="two_columns")
    with ddl_on(engine) as seen:
        Runner(engine).expand(change)
    [alter] = [s for s in seen if s.startswith("ALTER")]
    assert "owner" in alter and "checksum" in alter
    Runner(engine).migrate(change)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT owner FROM images")).scalar_one() == "a"


@pytest.mark.parametrize("dialect_name", ["mysql"])
def test_mariadb_adds_and_drops_columns_without_rebuilding_the_table(engine):
    glance_schema.create_images(engine, [{"id": i, "name": "a", "is_public": i % 2 == 0} for i in range(1, 2001)])
    before = table_id(engine)
    change = glance_schema.visibility_change()
    with ddl_on(engine) as seen:
        Runner(engine).expand(change)
    assert "ALGORITHM=INSTANT" in seen[0]
    assert table_id(engine) == before  # ADD COLUMN: instant
    Runner(engine).rollback(change)
    assert table_id(engine) == before  # DROP COLUMN: instant (MariaDB 10.4+)
    assert "visibility" not in {c["name"] for c in sa.inspect(engine).get_columns("images")}

    # The check tells a rebuild apart: contract's NOT NULL rebuilds, online.
    again = glance_schema.visibility_change("visibility_again")
    Runner(engine).expand(again)
    Runner(engine).migrate(again)
    Runner(engine).contract(again)
    assert table_id(engine) != before


@pytest.mark.parametrize("dialect_name", ["mysql"])
def test_a_table_that_refuses_instant_gets_the_column_online_instead(engine):
    """ROW_FORMAT=COMPRESSED has no instant ADD COLUMN (error 1845): the step's online form runs."""
    glance_schema.create_images(engine, [{"id": 1, "name": "a", "is_public": True}])
    with engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE images ROW_FORMAT=COMPRESSED")
    before = table_id(engine)
    change = glance_schema.visibility_change()
    with ddl_on(engine) as seen:
        Runner(engine).expand(change)
    assert [s for s in seen if "ALGORITHM=INPLACE, LOCK=NONE" in s]
    assert table_id(engine) != before
    Runner(engine).migrate(change)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT visibility FROM images")).scalar_one() == "public"


@pytest.mark.parametrize("dialect_name", ["mysql", "postgresql"])
def test_one_alter_finishes_a_contract_an_older_crossfade_left_half_done(engine, dialect_name):
    """An older crossfade ran each clause alone: stopped after dropping the old column, the merged
    ALTER (DROP COLUMN IF EXISTS, then NOT NULL) still finishes the phase."""
    glance_schema.create_images(engine, [{"id": 1, "name": "a", "is_public": True}])
    change = glance_schema.visibility_change()
    runner = Runner(engine)
    runner.expand(change)
    runner.migrate(change)

    class Stop(Exception):
        pass

    def stop_after_triggers(phase: str, step: str) -> None:
        if step.startswith("drop triggers"):
            raise Stop
    with pytest.raises(Stop):
        Runner(engine, on_step=stop_after_triggers).contract(change)
    with engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE images DROP COLUMN is_public")

    runner.contract(change)
    columns = {c["name"]: c for c in sa.inspect(engine).get_columns("images")}
    assert "is_public" not in columns and columns["visibility"]["nullable"] is False
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT visibility FROM images")).scalar_one() == "public"


@pytest.mark.parametrize(("server", "version", "add", "drop"), [
    ("mariadb", (10, 11, 6), "ALGORITHM=INSTANT", "ALGORITHM=INSTANT"),
    ("mariadb", (10, 3, 39), "ALGORITHM=INSTANT", "ALGORITHM=INPLACE, LOCK=NONE"),  # DROP: 10.4
    ("mariadb", (10, 2, 44), "ALGORITHM=INPLACE, LOCK=NONE", "ALGORITHM=INPLACE, LOCK=NONE"),
    ("mysql", (8, 0, 29), "ALGORITHM=INSTANT", "ALGORITHM=INSTANT"),  # MySQL: unverified here
    ("mysql", (8, 0, 12), "ALGORITHM=INSTANT", "ALGORITHM=INPLACE, LOCK=NONE"),
    ("mysql", (5, 7, 44), "ALGORITHM=INPLACE, LOCK=NONE", "ALGORITHM=INPLACE, LOCK=NONE"),
])
def test_instant_ddl_is_asked_for_where_the_server_version_has_it(server, version, add, drop):
    from crossfade.dialects import offline

    dialect = offline(server)
    dialect.engine_dialect.server_version_info = version
    schema = Schema.from_metadata(glance_schema.images_table(sa.MetaData()).metadata)
    change = glance_schema.visibility_change()
    [step] = dialect.steps(change.expand_intents(schema), schema)
    assert step.sql[0].endswith(add) and step.instant is (add == "ALGORITHM=INSTANT")
    [step] = dialect.steps(change.rollback_intents(schema), schema)
    assert step.sql[0].endswith(drop)
    # MySQL has no ADD COLUMN IF NOT EXISTS: one statement per clause there.
    assert ("IF EXISTS" in step.sql[0]) is (server == "mariadb")


@pytest.mark.parametrize("dialect_name", ["mysql"])
def test_the_backfill_marks_its_session_only_while_it_writes(engine):
    """MariaDB's UPDATE trigger skips the backfill's own rows (its mark); the application's writes,
    on the very connections the backfill used, are synced as before."""
    glance_schema.create_images(engine, [{"id": i, "name": "a", "is_public": i % 2 == 0} for i in range(1, 101)])
    change = glance_schema.visibility_change()
    Runner(engine).expand(change)
    with engine.connect() as conn:
        body = conn.execute(sa.text("SELECT ACTION_STATEMENT FROM information_schema.TRIGGERS "
                                    "WHERE TRIGGER_SCHEMA = DATABASE() AND TRIGGER_NAME = 'crossfade_images_update'")).scalar_one()
    assert "@crossfade_deriving IS NULL" in body
    Runner(engine, batch_size=30).migrate(change)
    with engine.begin() as conn:
        assert conn.exec_driver_sql("SELECT @crossfade_deriving").scalar() is None
        conn.exec_driver_sql("UPDATE images SET visibility = 'public' WHERE id = 1")
        conn.exec_driver_sql("UPDATE images SET is_public = FALSE WHERE id = 2")
    with engine.connect() as conn:
        found = dict(conn.exec_driver_sql("SELECT id, CONCAT(is_public, visibility) FROM images").all())
    assert found[1] == "1public" and found[2] == "0shared"
    assert {v for k, v in found.items() if k > 2} == {"1public", "0shared"}
    assert all(v == ("1public" if k % 2 == 0 else "0shared") for k, v in found.items() if k > 2)
