"""Data verified before it is destroyed: every row against the sync and link laws before contract
drops anything, on demand (`status --deep`, `check --deep`), and the rows written while the
triggers were missing reconciled when expand reinstalls them. On real databases."""

from __future__ import annotations

import re

import glance_schema
import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from crossfade import Change, ops
from crossfade.cli import app
from crossfade.errors import DriftedRowsError
from crossfade.runner import Runner
from crossfade.state import Phase

ROWS = 40


def sql(conn: sa.Connection, statement: str, **params):
    return conn.execute(sa.text(statement), params)


def create_images(engine: sa.Engine) -> None:
    glance_schema.create_images(engine, [{"id": i, "name": f"i{i}", "is_public": i % 2 == 0, "size": i}
                                         for i in range(1, ROWS + 1)])


def migrated(engine: sa.Engine, change: Change | None = None, **options) -> tuple[Runner, Change]:
    create_images(engine)
    runner, change = Runner(engine, **options), change or glance_schema.visibility_change()
    runner.expand(change)
    runner.migrate(change)
    return runner, change


def column_names(engine: sa.Engine, table: str = "images") -> set[str]:
    with engine.connect() as conn:
        return {c["name"] for c in sa.inspect(conn).get_columns(table)}


def value(engine: sa.Engine, column: str, id_: int, table: str = "images"):
    with engine.connect() as conn:
        return sql(conn, f"SELECT {column} FROM {table} WHERE id = :i", i=id_).scalar()


def write_unseen_by_the_triggers(engine: sa.Engine, runner: Runner, statement: str, table: str = "images") -> None:
    """A write the sync triggers do not see, with the catalog left exactly as crossfade installed it
    (so `status` sees nothing): PostgreSQL through a session with session_replication_role =
    replica (finding 3); MariaDB and SQLite by dropping the table's triggers by hand, writing, and
    recreating them from their own catalog text."""
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            sql(conn, "SET LOCAL session_replication_role = replica")
            sql(conn, statement)
            return
        names = list(runner.dialect.catalog_objects(conn, {table}))
        saved = [_trigger_sql(conn, name) for name in names]
        for name in names:
            sql(conn, f"DROP TRIGGER {name}")
        sql(conn, statement)
        for mode, text in saved:
            if mode is not None:  # a MariaDB trigger keeps the sql_mode it is created under
                sql(conn, "SET SESSION sql_mode = :m", m=mode)
            conn.exec_driver_sql(text)


def _trigger_sql(conn: sa.Connection, name: str) -> tuple[str | None, str]:
    """The trigger's CREATE statement, with the sql_mode it was created under (MariaDB)."""
    if conn.dialect.name == "sqlite":
        return None, sql(conn, "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = :n", n=name).scalar()
    _, mode, text = conn.exec_driver_sql(f"SHOW CREATE TRIGGER {name}").first()[:3]
    return mode, text


# --- before contract: finding 3 ------------------------------------------------------------------

def test_contract_refuses_rows_written_behind_the_triggers_and_drops_nothing(engine):
    runner, change = migrated(engine)
    write_unseen_by_the_triggers(engine, runner, "UPDATE images SET is_public = NOT is_public WHERE id IN (3, 8)")
    assert runner.problems(change) == []  # the catalog looks untouched: only the rows tell

    with pytest.raises(DriftedRowsError) as refused:
        runner.contract(change)
    message = str(refused.value)
    assert "contract refused, nothing was dropped: 2 row(s)" in message
    assert "is_public = down(visibility)" in message
    assert re.search(r"id=3: is_public=(True|1), down\(visibility\)=(False|0)", message)
    # The fix names the table with the schema crossfade resolved (PostgreSQL), so it runs from any search_path.
    assert re.search(r"id=8: is_public=(False|0)", message) and re.search(r"UPDATE (public\.)?images SET visibility", message)
    assert "\n" not in message
    assert runner.load(change).phase is Phase.MIGRATED
    assert {"is_public", "visibility"} <= column_names(engine)
    with engine.connect() as conn:
        assert len(runner.dialect.catalog_objects(conn, {"images"})) == len(runner.load(change).triggers)

    [finding] = refused.value.findings
    keeps, fix = finding.fixes[0]
    assert keeps == "release N's values"
    with engine.begin() as conn:
        conn.exec_driver_sql(fix)
    assert value(engine, "visibility", 3) == "public" and value(engine, "visibility", 8) == "shared"
    runner.contract(change)
    assert "is_public" not in column_names(engine)
    assert value(engine, "visibility", 3) == "public"


def test_contract_after_a_clean_transition_finds_nothing(engine):
    runner, change = migrated(engine)
    with engine.begin() as conn:  # both releases write through the triggers
        sql(conn, "UPDATE images SET is_public = NOT is_public WHERE id = 3")
        sql(conn, "UPDATE images SET visibility = 'community' WHERE id = 4")
        sql(conn, "INSERT INTO images (id, name, visibility) VALUES (101, 'by N+1', 'public')")
    assert runner.data_findings(change) == []
    runner.contract(change)
    assert runner.load(change).phase is Phase.CONTRACTED


def test_the_check_walks_the_table_in_batches_and_counts_every_broken_row(engine):
    runner, change = migrated(engine, batch_size=7)
    write_unseen_by_the_triggers(engine, runner, "UPDATE images SET visibility = 'public' WHERE id > 30")
    [finding] = runner.data_findings(change)
    assert finding.count == 5  # ids 31, 33, 35, 37, 39: odd ids were private
    assert len(finding.samples) == 3 and re.match(r"id=31: is_public=(False|0)", finding.samples[0])


def test_a_moved_column_written_on_one_side_only_is_refused_before_contract(engine):
    metadata = sa.MetaData()
    orgs = sa.Table("orgs", metadata, sa.Column("id", sa.Integer, primary_key=True))
    users = sa.Table("users", metadata, sa.Column("id", sa.Integer, primary_key=True),
                     sa.Column("org_id", sa.Integer, sa.ForeignKey("orgs.id"), index=True),
                     sa.Column("org_name", sa.String(40)))
    with engine.begin() as conn:
        metadata.create_all(conn)
        conn.execute(orgs.insert(), [{"id": i} for i in range(1, 5)])
        conn.execute(users.insert(), [{"id": i, "org_id": i % 4 + 1, "org_name": f"org-{i % 4 + 1}"}
                                      for i in range(1, 21)])
    runner = Runner(engine)
    change = Change(ops.move_column("users", "org_name", to="orgs", via="org_id", new="name"), id="move")
    runner.expand(change)
    runner.migrate(change)
    write_unseen_by_the_triggers(engine, runner, "UPDATE orgs SET name = 'renamed' WHERE id = 2", table="orgs")
    with pytest.raises(DriftedRowsError, match=r"5 row\(s\) of users break the move law") as refused:
        runner.contract(change)
    assert "orgs.name='renamed'" in str(refused.value)
    assert "org_name" in column_names(engine, "users")


def test_a_split_table_written_on_one_side_only_is_refused_before_contract(engine):
    create_images(engine)
    runner = Runner(engine)
    change = Change(ops.split_table("images", "image_sizes", ["size"]), id="split")
    runner.expand(change)
    runner.migrate(change)
    write_unseen_by_the_triggers(engine, runner, "UPDATE images SET size = 999 WHERE id = 6")
    with pytest.raises(DriftedRowsError, match=r"1 row\(s\) of images break the link law") as refused:
        runner.contract(change)
    assert "id=6: images.size=999, image_sizes.size=6" in str(refused.value)
    assert "size" in column_names(engine)


# --- on demand: status --deep, check --deep ------------------------------------------------------

def url_of(engine: sa.Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def test_check_deep_exits_with_the_count_and_status_deep_names_the_rows(engine, tmp_path):
    runner, _ = migrated(engine)
    module = tmp_path / "visibility_change.py"
    module.write_text("import glance_schema\nchange = glance_schema.visibility_change()\n")
    url = url_of(engine)
    cli = CliRunner()
    assert cli.invoke(app, ["check", str(module), "--url", url, "--deep"]).exit_code == 4  # needs contract

    write_unseen_by_the_triggers(engine, runner, "UPDATE images SET is_public = NOT is_public WHERE id = 3")
    assert cli.invoke(app, ["check", str(module), "--url", url]).exit_code == 4  # the catalog looks fine
    checked = cli.invoke(app, ["check", str(module), "--url", url, "--deep"])
    assert checked.exit_code == 1, checked.output
    assert "1 row(s) of images break the sync law" in checked.output
    status = cli.invoke(app, ["status", str(module), "--url", url, "--deep", "--json"])
    assert status.exit_code == 0, status.output
    assert re.search(r"id=3: is_public=(True|1)", status.output)


def test_status_deep_before_migrate_passes_rows_not_derived_yet(engine):
    create_images(engine)
    runner, change = Runner(engine), glance_schema.visibility_change()
    runner.expand(change)
    assert runner.status(change, deep=True).problems == []
    write_unseen_by_the_triggers(engine, runner, "UPDATE images SET visibility = 'public' WHERE id = 1")
    [problem] = runner.status(change, deep=True).problems
    assert "1 row(s) of images break the sync law" in problem and "id=1" in problem


# --- a rebuild behind crossfade's back (issue 11, finding 8) ----------------------------------------

def rebuild_without_triggers(engine: sa.Engine, runner: Runner) -> None:
    """SQLite: Alembic batch mode rebuilds the table and loses its triggers; elsewhere a DBA drops
    them by hand."""
    if engine.dialect.name == "sqlite":
        from alembic.migration import MigrationContext
        from alembic.operations import Operations

        with engine.begin() as conn, Operations(MigrationContext.configure(conn)).batch_alter_table(
                "images", recreate="always") as batch:
            batch.add_column(sa.Column("note", sa.String(20)))
    else:
        with engine.begin() as conn:
            for name, (kind, table, _) in runner.dialect.catalog_objects(conn, {"images"}).items():
                if kind == "trigger":
                    sql(conn, f"DROP TRIGGER {name}" + (" ON images" if engine.dialect.name == "postgresql" else ""))
    with engine.connect() as conn:
        assert not [k for k, *_ in runner.dialect.catalog_objects(conn, {"images"}).values() if k == "trigger"]


def test_expand_repairing_missing_triggers_reconciles_the_rows_written_meanwhile(engine, tmp_path):
    runner, change = migrated(engine)
    rebuild_without_triggers(engine, runner)
    with engine.begin() as conn:
        sql(conn, "INSERT INTO images (id, name, is_public) VALUES (101, 'by N', true)")  # release N
        if engine.dialect.name == "sqlite":  # release N+1; elsewhere is_public's NOT NULL refuses it
            sql(conn, "INSERT INTO images (id, name, visibility) VALUES (102, 'by N+1', 'public')")
    assert value(engine, "visibility", 101) is None

    runner.expand(change)
    assert value(engine, "visibility", 101) == "public"
    reconciled = 2 if engine.dialect.name == "sqlite" else 1
    status = runner.status(change)
    assert status.problems == []
    [repair] = status.repairs
    assert repair.startswith("triggers repaired at ") and repair.endswith(f", {reconciled} row(s) reconciled")
    assert runner.status(change).to_json()["repairs"] == [repair]
    module = tmp_path / "visibility_change.py"
    module.write_text("import glance_schema\nchange = glance_schema.visibility_change()\n")
    shown = CliRunner().invoke(app, ["status", str(module), "--url", url_of(engine)])
    assert shown.exit_code == 0 and f"{reconciled} row(s) reconciled" in shown.output, shown.output
    if engine.dialect.name == "sqlite":
        assert value(engine, "is_public", 102) in (1, True)
        with engine.begin() as conn:  # release N's later update: is_public is no longer NULL
            sql(conn, "UPDATE images SET name = 'renamed by N' WHERE id = 102")
    runner.expand(change)  # nothing left to do
    assert len(runner.status(change).repairs) == 1
    runner.contract(change)
    assert value(engine, "visibility", 101) == "public"


def test_expand_names_rows_it_cannot_reconcile_until_they_are_fixed(engine):
    runner, change = migrated(engine)
    rebuild_without_triggers(engine, runner)
    with engine.begin() as conn:  # release N changes a derived row: which side is right is unknowable
        sql(conn, "UPDATE images SET is_public = NOT is_public WHERE id = 4")
    with pytest.raises(DriftedRowsError, match=r"expand refused, the triggers are reinstalled.*id=4") as refused:
        runner.expand(change)
    with engine.connect() as conn:
        assert set(runner.load(change).triggers) <= set(runner.dialect.catalog_objects(conn, {"images"}))
    [problem] = runner.problems(change)
    assert "1 row(s) ambiguous" in problem
    with pytest.raises(DriftedRowsError):
        runner.expand(change)  # still refused: the row is still there
    with engine.begin() as conn:
        conn.exec_driver_sql(refused.value.findings[0].fixes[0][1])
    runner.expand(change)
    assert runner.problems(change) == []
    assert runner.status(change).repairs[-1].endswith("0 row(s) reconciled")
    runner.contract(change)
    assert value(engine, "visibility", 4) == "shared"


def test_a_repair_stopped_before_reconciling_is_finished_by_the_next_expand(engine):
    runner, change = migrated(engine)
    rebuild_without_triggers(engine, runner)
    with engine.begin() as conn:
        sql(conn, "INSERT INTO images (id, name, is_public) VALUES (101, 'by N', true)")

    class Killed(Exception):
        pass

    def kill(phase, step):
        if step == "record repaired triggers":
            raise Killed

    runner.on_step = kill
    with pytest.raises(Killed):
        runner.expand(change)
    runner.on_step = None
    assert runner.problems(change) != []  # the repair is unfinished
    runner.expand(change)
    assert value(engine, "visibility", 101) == "public"
    assert runner.status(change).repairs[-1].endswith("1 row(s) reconciled")


@pytest.mark.parametrize("composite", [False, True], ids=["string-key", "composite-key"])
def test_a_table_keyed_by_strings_or_several_columns_is_checked_row_by_row(engine, composite):
    metadata = sa.MetaData()
    key = [sa.Column("region", sa.String(10), primary_key=True)] if composite else []
    tags = sa.Table("tags", metadata, *key, sa.Column("code", sa.String(10), primary_key=True),
                    sa.Column("hidden", sa.Boolean, nullable=False))
    with engine.begin() as conn:
        metadata.create_all(conn)
        conn.execute(tags.insert(), [{**({"region": f"r{i % 3}"} if composite else {}), "code": f"c{i:03}",
                                      "hidden": i % 2 == 0} for i in range(30)])
    runner = Runner(engine, batch_size=4)
    change = Change(ops.replace_column(
        "tags", "hidden", sa.Column("shown", sa.Boolean, nullable=False, server_default=sa.true()),
        up=lambda hidden: sa.not_(hidden), down=lambda shown: sa.not_(shown)), id="shown")
    runner.expand(change)
    runner.migrate(change)
    assert runner.data_findings(change) == []
    write_unseen_by_the_triggers(engine, runner, "UPDATE tags SET hidden = NOT hidden WHERE code IN ('c007', 'c021')",
                                 table="tags")
    [finding] = runner.data_findings(change)
    assert finding.count == 2 and len(finding.samples) == 2
    assert all("code='c007'" in sample or "code='c021'" in sample for sample in finding.samples)
    with pytest.raises(DriftedRowsError):
        runner.contract(change)
