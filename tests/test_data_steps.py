"""data_step: a migrate step running the user's Python (or SQL) to create or fix rows, once,
in one transaction that records it done: a kill undoes it and a rerun finishes it; a finished
step never runs again. On SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from crossfade import Change, ops
from crossfade.cli import app
from crossfade.errors import ValidationError
from crossfade.plan import plan
from crossfade.runner import Runner

metadata = sa.MetaData()
users = sa.Table("users", metadata, sa.Column("id", sa.Integer, primary_key=True), sa.Column("name", sa.String(40)),
                 sa.Column("domain_id", sa.String(64)))
domains = sa.Table("domains", metadata, sa.Column("id", sa.String(64), primary_key=True))


class DefaultDomain:
    """The step: create the default domain and give it to users without one. Counts its runs."""

    def __init__(self, fail: bool = False):
        self.runs, self.fail = 0, fail

    def __call__(self, conn: sa.Connection) -> None:
        self.runs += 1
        conn.execute(domains.insert().values(id="default"))
        conn.execute(users.update().where(users.c.domain_id.is_(None)).values(domain_id="default"))
        if self.fail:
            raise KeyboardInterrupt("killed during the data step")


def seeded(engine) -> None:
    with engine.begin() as conn:
        metadata.create_all(conn)
        conn.execute(users.insert(), [{"id": i, "name": f"u{i}", "domain_id": None if i % 2 else "d"}
                                      for i in range(1, 11)])


def state(engine) -> tuple[list, list]:
    with engine.connect() as conn:
        return (list(conn.execute(sa.select(domains.c.id)).scalars()),
                list(conn.execute(sa.select(users.c.domain_id).order_by(users.c.id)).scalars()))


def change_for(step, *more) -> Change:
    return Change(ops.data_step("default domain", step, tables=["domains", "users"]), *more, id="default_domain")


def test_migrate_runs_the_step_once_and_a_rerun_does_not_run_it_again(engine):
    seeded(engine)
    step = DefaultDomain()
    change = change_for(step)
    runner = Runner(engine)
    runner.expand(change)
    runner.migrate(change)
    assert state(engine) == (["default"], ["default", "d"] * 5)
    runner.migrate(change)  # migrated: nothing to do
    with engine.begin() as conn:  # a stopped migrate: the phase runs again, the finished step does not
        conn.execute(sa.text("UPDATE crossfade_state SET phase = 'migrating'"))
    runner.migrate(change)
    assert step.runs == 1 and state(engine) == (["default"], ["default", "d"] * 5)


def test_a_kill_during_the_step_undoes_it_and_a_rerun_finishes_it(engine):
    seeded(engine)
    runner = Runner(engine)
    runner.expand(change_for(DefaultDomain(fail=True)))
    with pytest.raises(KeyboardInterrupt):
        runner.migrate(change_for(DefaultDomain(fail=True)))
    assert state(engine) == ([], [None, "d"] * 5)  # nothing of the step committed
    assert runner.status(change_for(DefaultDomain())).data_steps == {"default domain": "runs in migrate"}
    rerun = DefaultDomain()
    runner.migrate(change_for(rerun))
    assert rerun.runs == 1 and state(engine) == (["default"], ["default", "d"] * 5)
    assert runner.status(change_for(rerun)).data_steps == {"default domain": "done"}


def test_a_sql_step_runs_as_written(engine):
    seeded(engine)
    change = Change(ops.data_step("lowercase names", "UPDATE users SET name = UPPER(name) WHERE id <= 3",
                                  tables="users"), id="upper_names")
    runner = Runner(engine)
    runner.expand(change)
    runner.migrate(change)
    with engine.connect() as conn:
        assert list(conn.execute(sa.select(users.c.name).order_by(users.c.id).limit(4)).scalars()) == [
            "U1", "U2", "U3", "u4"]


def test_a_data_step_writes_past_the_changes_block(engine):
    seeded(engine)
    change = change_for(DefaultDomain(), ops.block_writes("users", insert=True, update=True, message="users frozen"))
    runner = Runner(engine)
    runner.expand(change)
    with pytest.raises(sa.exc.DBAPIError, match="users frozen"), engine.begin() as conn:
        conn.execute(users.update().values(domain_id="x"))
    runner.migrate(change)
    assert state(engine) == (["default"], ["default", "d"] * 5)
    assert runner.problems(change) == []  # the blocking trigger is back, unchanged
    with pytest.raises(sa.exc.DBAPIError, match="users frozen"), engine.begin() as conn:
        conn.execute(users.update().values(domain_id="x"))


def test_status_shows_each_data_step(engine):
    seeded(engine)
    from crossfade.loader import import_file  # noqa: F401 - the CLI loads changes from files

    runner = Runner(engine)
    change = change_for(DefaultDomain())
    runner.expand(change)
    assert runner.status(change).to_json()["data_steps"] == {"default domain": "runs in migrate"}
    runner.migrate(change)
    assert json.loads(json.dumps(runner.status(change).to_json()))["data_steps"] == {"default domain": "done"}


def test_plan_shows_the_data_step_and_its_sql(dialect_name):
    text = plan([change_for(DefaultDomain())], dialect_name, metadata)
    assert "-- data step default domain" in text and "Python callable DefaultDomain" in text
    sql = Change(ops.data_step("fix", "UPDATE users SET name = 'x' WHERE name IS NULL", tables="users"), id="fix")
    assert "UPDATE users SET name = 'x' WHERE name IS NULL;" in plan([sql], dialect_name, metadata)


def test_the_cli_plan_and_status_show_a_data_step(engine, tmp_path):
    seeded(engine)
    module = tmp_path / "changes.py"
    module.write_text("import sqlalchemy as sa\nfrom crossfade import Change, ops\n"
                      "metadata = sa.MetaData()\n"
                      "sa.Table('users', metadata, sa.Column('id', sa.Integer, primary_key=True),"
                      " sa.Column('name', sa.String(40)), sa.Column('domain_id', sa.String(64)))\n"
                      "change = Change(ops.data_step('names', \"UPDATE users SET name = 'n' WHERE name IS NULL\","
                      " tables='users'), id='names')\n")
    url = engine.url.render_as_string(hide_password=False)
    cli = CliRunner()
    planned = cli.invoke(app, ["plan", str(module)], catch_exceptions=False)
    assert planned.exit_code == 0 and "data step names" in planned.output
    assert cli.invoke(app, ["expand", str(module), "--url", url]).exit_code == 0
    status = cli.invoke(app, ["status", str(module), "--url", url, "--json"], catch_exceptions=False)
    assert json.loads(status.stdout)[0]["data_steps"] == {"names": "runs in migrate"}


@pytest.mark.parametrize("arguments, message", [
    (("", "SELECT 1"), "name must be 1-100 characters"),
    (("x", 42), "run must be a callable taking a connection, or SQL"),
    (("x", "  "), "its SQL is empty"),
])
def test_bad_data_steps_are_refused_in_one_line(arguments, message):
    with pytest.raises(ValidationError, match=message) as caught:
        ops.data_step(*arguments, tables="users")
    assert "\n" not in str(caught.value)


def test_a_data_step_on_a_missing_table_is_refused_before_any_ddl(engine):
    seeded(engine)
    with pytest.raises(ValidationError, match="nope"):
        Runner(engine).expand(Change(ops.data_step("x", "SELECT 1", tables="nope"), id="missing"))
    assert "crossfade_state" not in sa.inspect(engine).get_table_names()
