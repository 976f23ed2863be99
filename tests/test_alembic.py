"""crossfade inside an Alembic project, on real SQLite, PostgreSQL and MariaDB.

The project under test is examples/alembic_service: release 1 (a plain Alembic revision), then
two crossfade revisions, each a rolling upgrade with several operations and plain Alembic ones.
"""

from __future__ import annotations

import dataclasses
import io
import json
import re
import shutil
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext
from alembic.util import CommandError
from click.testing import CliRunner
from sqlalchemy.dialects import sqlite

from crossfade.alembic import classify as classify_module
from crossfade.alembic import include_object, render, scaffold
from crossfade.alembic.classify import CONTRACT, EXPAND, UnsafeOperationError, classify, describe
from crossfade.alembic.locate import find_project
from crossfade.alembic.phases import revision_phases
from crossfade.alembic.recording import record
from crossfade.cli import app
from crossfade.loader import import_file, load_changes
from crossfade.runner import Runner
from crossfade.schema import Schema
from crossfade.testing import Settings, hypothesis_verify, simulate
from crossfade.testing.oracle import schema_differences

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "alembic_service"
release_1, release_2, release_3 = (import_file(EXAMPLE / "models" / f"release_{n}.py") for n in (1, 2, 3))

cli = CliRunner()


def run(*args, url: str | None = None):
    argv = [str(a) for a in args] + (["--url", url] if url else [])
    return cli.invoke(app, argv, catch_exceptions=False)


def url_of(engine: sa.Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def alembic_config(url: str, project: Path = EXAMPLE, output: io.StringIO | None = None) -> Config:
    """The project's Alembic configuration, as `alembic -c alembic.ini` with sqlalchemy.url = `url`."""
    config = Config(output_buffer=output)
    config.set_main_option("script_location", str(project / "migrations"))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def version(engine: sa.Engine) -> str | None:
    with engine.connect() as conn:
        heads = MigrationContext.configure(conn).get_current_heads()
    return heads[0] if heads else None


def check_code(url: str, project: Path = EXAMPLE) -> int:
    return run("check", project, url=url).exit_code


def release_1_with_tasks(engine: sa.Engine, url: str, rows: int = 30) -> None:
    command.upgrade(alembic_config(url), "0001_initial")  # release 1 deployed the plain Alembic way
    with engine.begin() as conn:
        conn.execute(release_1.tasks.insert(), [
            {"id": i, "title": None if i % 5 == 0 else f"task {i}", "done": i % 2 == 0, "owner": f"owner{i}",
             "source": "web"} for i in range(1, rows + 1)])


def differences_from(engine: sa.Engine, metadata: sa.MetaData) -> list:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_object": include_object, "compare_type": True})
        found = compare_metadata(context, metadata)
    return [d for d in found if d[0] != "remove_table" or d[1].name != "alembic_version"]


def triggers(engine: sa.Engine) -> set[str]:
    from crossfade.dialects import for_dialect

    with engine.connect() as conn:
        return set(for_dialect(engine.dialect).catalog_objects(conn, {"tasks"}))


def copy_of_example(tmp_path: Path, keep: tuple[str, ...], extra: dict[str, str] | None = None) -> Path:
    """The example project in tmp_path with only the `keep` revisions, plus `extra` ones."""
    project = tmp_path / "project"
    shutil.copytree(EXAMPLE, project)
    for revision in (project / "migrations" / "versions").glob("*.py"):
        if revision.stem not in keep:
            revision.unlink()
    for name, text in (extra or {}).items():
        (project / "migrations" / "versions" / f"{name}.py").write_text(text)
    return project


def plain_revision(revision: str, down: str, body: str, crossfade_ops: str = "") -> str:
    decorator = f"@crossfade.alembic.upgrade({crossfade_ops})\n" if crossfade_ops else ""
    return (f'"""{revision}"""\nimport sqlalchemy as sa\nfrom alembic import op\n\nimport crossfade.alembic\n'
            f"from crossfade import ops\n\nrevision = {revision!r}\ndown_revision = {down!r}\n\n\n"
            f"{decorator}def upgrade():\n{body}\n")


# --- init and revision ----------------------------------------------------------------------

def test_init_creates_an_alembic_project_whose_env_py_passes_crossfade_include_object(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run("init", "migrations")
    assert result.exit_code == 0, result.output
    env_py = (tmp_path / "migrations" / "env.py").read_text()
    assert "from crossfade.alembic import include_object" in env_py
    assert env_py.count("include_object=include_object,") == 2  # offline and online configure()
    compile(env_py, "env.py", "exec")
    assert "set up already" in run("init", "migrations").stdout  # a second run changes nothing
    assert not include_object(None, "crossfade_state", "table", True, None)
    assert include_object(None, "tasks", "table", True, None)


def test_init_adds_crossfade_to_an_existing_alembic_project(tmp_path):
    ini = tmp_path / "alembic.ini"
    command.init(Config(str(ini)), str(tmp_path / "alembic"))
    original = (tmp_path / "alembic" / "env.py").read_text()

    result = run("init", "--config", ini)

    assert result.exit_code == 0, result.output
    assert "created" not in result.stdout
    patched = (tmp_path / "alembic" / "env.py").read_text()
    assert patched.count("include_object=include_object,") == 2
    added = [line for line in patched.splitlines(keepends=True) if "include_object" in line]
    assert len(added) == 3
    # and env.py takes the database from CROSSFADE_URL when set (tests/test_cli.py runs it)
    assert patched.startswith("import os\n") and scaffold._READ_URL in patched
    unpatched = patched.removeprefix("import os\n").replace(scaffold._READ_URL, "")
    assert "".join(line for line in unpatched.splitlines(keepends=True) if line not in added) == original


def test_revision_writes_a_crossfade_revision_file_that_loads(tmp_path):
    ini = tmp_path / "alembic.ini"
    assert run("init", tmp_path / "alembic", "--config", ini).exit_code == 0
    first = run("revision", "-m", "users: login becomes username", "--config", ini)
    assert first.exit_code == 0, first.output
    second = run("revision", "-m", "second", "--config", tmp_path)  # the directory holding alembic.ini
    assert second.exit_code == 0, second.output

    project = find_project(ini)
    first_id, second_id = project.history()
    path = Path(project.script.get_revision(first_id).path)
    text = path.read_text()
    assert text.startswith('"""users: login becomes username') and "@crossfade.alembic.upgrade(" in text
    assert project.script.get_revision(second_id).down_revision == first_id

    loaded = project.revision(first_id, sqlite.dialect())
    assert loaded.change is None and loaded.plain == []  # as written: no operation yet

    path.write_text(text.replace('    # ops.rename_column("users", "login", "username"),',
                                 '    ops.rename_column("users", "login", "username"),'))
    change = find_project(ini).revision(first_id, sqlite.dialect()).change
    assert change.id == first_id and change.tables() == {"users"}


# --- the rolling upgrades, through the CLI -------------------------------------------------------

def test_two_rolling_upgrades_through_the_cli_move_alembic_version_only_at_contract(engine):
    url = url_of(engine)
    release_1_with_tasks(engine, url)
    assert version(engine) == "0001_initial"
    assert check_code(url) == 2

    expanded = run("expand", EXAMPLE, url=url)
    assert expanded.exit_code == 0, expanded.output
    assert "op.create_table labels" in expanded.stdout and "install triggers on tasks" in expanded.stdout
    assert "0003_assignee waits for 0002_task_state's contract" in expanded.stderr
    assert version(engine) == "0001_initial" and check_code(url) == 3
    with engine.begin() as conn:  # both releases write while the nodes roll
        conn.execute(release_1.tasks.insert().values(id=100, title="n", done=True, owner="a", source="api"))
        conn.execute(release_2.tasks.insert().values(id=101, title="n+1", state="blocked", owner="b", source="api"))
    assert run("migrate", EXAMPLE, url=url).exit_code == 0
    assert version(engine) == "0001_initial" and check_code(url) == 4

    contracted = run("contract", EXAMPLE, url=url)
    assert contracted.exit_code == 0, contracted.output
    assert "stamp alembic_version 0002_task_state" in contracted.stdout
    assert version(engine) == "0002_task_state" and check_code(url) == 2  # 0003 is next

    for phase in ("expand", "migrate"):
        assert run(phase, EXAMPLE, url=url).exit_code == 0
        assert version(engine) == "0002_task_state"
    with engine.begin() as conn:
        conn.execute(release_2.tasks.insert().values(id=102, title=None, state="open", owner="c", source="mail"))
    contracted = run("contract", EXAMPLE, url=url)
    assert contracted.exit_code == 0, contracted.output
    assert "op.drop_table projects" in contracted.stdout
    assert version(engine) == "0003_assignee" and check_code(url) == 0

    assert differences_from(engine, release_3.metadata) == []
    assert not triggers(engine)
    with engine.connect() as conn:
        rows = {r.id: r for r in conn.execute(sa.select(release_3.tasks))}
    assert (rows[2].state, rows[1].state, rows[100].state, rows[101].state) == ("done", "open", "done", "blocked")
    assert (rows[5].title, rows[1].title, rows[102].title) == ("untitled", "task 1", "untitled")
    assert (rows[7].assignee, rows[101].assignee) == ("owner7", "b")


def test_expand_of_a_revision_reports_the_round_trip_law_once(engine):
    """The change is checked before the revision's plain operations and again by its expand; only
    the expand reports."""
    url = url_of(engine)
    release_1_with_tasks(engine, url, rows=3)

    expanded = run("expand", EXAMPLE, url=url)  # 0002_task_state: done -> state

    assert expanded.exit_code == 0, expanded.output
    assert expanded.stdout.count("round-trip law holds for tasks.done") == 1, expanded.stdout


def test_a_revision_refused_at_expand_leaves_the_database_untouched(engine, tmp_path):
    project = copy_of_example(tmp_path, keep=("0001_initial",), extra={"0002_rename": plain_revision(
        "0002_rename", "0001_initial",
        '    op.create_table("notes", sa.Column("id", sa.Integer, primary_key=True))\n'
        '    op.alter_column("tasks", "owner", new_column_name="assignee")',
        crossfade_ops='ops.add_column("tasks", sa.Column("due", sa.Date))')})
    url = url_of(engine)
    release_1_with_tasks(engine, url, rows=3)

    result = run("expand", project, url=url)

    assert result.exit_code == 1
    assert ('revision 0002_rename: op.alter_column tasks.owner renames a column release N still reads and writes; '
            'use crossfade.ops.rename_column("tasks", "owner", "assignee")') in result.stderr
    assert "notes" not in sa.inspect(engine).get_table_names()
    assert "due" not in {c["name"] for c in sa.inspect(engine).get_columns("tasks")}
    assert version(engine) == "0001_initial" and check_code(url, project) == 2


def test_a_change_the_round_trip_law_refuses_stops_expand_before_the_plain_operations(engine, tmp_path):
    project = copy_of_example(tmp_path, keep=("0001_initial",), extra={"0002_broken": plain_revision(
        "0002_broken", "0001_initial",
        '    op.create_table("notes", sa.Column("id", sa.Integer, primary_key=True))',
        crossfade_ops=('ops.replace_column("tasks", "done", sa.Column("state", sa.String(16)), '
                       'up=lambda done: sa.case((done, "done"), else_="open"), '
                       'down=lambda state: state == "open")'))})
    url = url_of(engine)
    release_1_with_tasks(engine, url, rows=3)

    result = run("expand", project, url=url)

    assert result.exit_code == 1 and "round-trip law broken for tasks.done" in result.stderr
    assert "notes" not in sa.inspect(engine).get_table_names()  # the plain op never ran
    assert version(engine) == "0001_initial"


# --- the offline path: plain `alembic upgrade` ---------------------------------------------------

def test_plain_alembic_upgrade_head_runs_every_change_offline(engine):
    url = url_of(engine)
    release_1_with_tasks(engine, url)

    command.upgrade(alembic_config(url), "head")

    assert version(engine) == "0003_assignee"
    assert differences_from(engine, release_3.metadata) == []
    assert not triggers(engine) and "crossfade_state" not in sa.inspect(engine).get_table_names()
    with engine.connect() as conn:
        rows = {r.id: r for r in conn.execute(sa.select(release_3.tasks))}
    assert [rows[i].state for i in range(1, 5)] == ["open", "done", "open", "done"]
    assert (rows[5].title, rows[1].title, rows[3].assignee, rows[3].priority) == ("untitled", "task 1", "owner3", 2)


def test_plain_alembic_upgrade_copies_the_columns_split_table_moves_before_dropping_them(engine, tmp_path):
    project = copy_of_example(tmp_path, keep=("0001_initial",), extra={"0002_split": plain_revision(
        "0002_split", "0001_initial", "    pass", crossfade_ops='ops.split_table("tasks", "task_origins", ["owner", "source"])')})
    url = url_of(engine)
    release_1_with_tasks(engine, url, rows=6)

    command.upgrade(alembic_config(url, project), "head")

    with engine.connect() as conn:
        assert "owner" not in {c["name"] for c in sa.inspect(conn).get_columns("tasks")}
        origins = conn.execute(sa.text("SELECT id, owner, source FROM task_origins ORDER BY id")).all()
    assert [tuple(r) for r in origins] == [(i, f"owner{i}", "web") for i in range(1, 7)]
    assert not triggers(engine)


def test_plain_alembic_upgrade_renames_a_table_with_every_row(engine, tmp_path):
    project = copy_of_example(tmp_path, keep=("0001_initial",), extra={"0002_rename": plain_revision(
        "0002_rename", "0001_initial", "    pass", crossfade_ops='ops.rename_table("tasks", "jobs")')})
    url = url_of(engine)
    release_1_with_tasks(engine, url, rows=6)

    command.upgrade(alembic_config(url, project), "head")

    with engine.connect() as conn:
        names = set(sa.inspect(conn).get_table_names()) | set(sa.inspect(conn).get_view_names())
        assert "jobs" in names and "tasks" not in names
        assert conn.execute(sa.text("SELECT count(*) FROM jobs")).scalar() == 6


def test_plain_alembic_upgrade_moves_a_column_to_the_related_table_with_its_values(engine, tmp_path):
    prepare = plain_revision("0002_projects", "0001_initial", (
        '    with op.batch_alter_table("tasks") as batch:\n'
        '        batch.add_column(sa.Column("project_id", sa.Integer))\n'
        '        batch.add_column(sa.Column("project_name", sa.String(80)))\n'
        '        batch.create_foreign_key("fk_tasks_project", "projects", ["project_id"], ["id"])\n'
        '        batch.create_index("ix_tasks_project_id", ["project_id"])'))
    move = plain_revision("0003_move", "0002_projects", "    pass", crossfade_ops=(
        'ops.move_column("tasks", "project_name", to="projects", via="project_id", new="label")'))
    project = copy_of_example(tmp_path, keep=("0001_initial",), extra={"0002_projects": prepare, "0003_move": move})
    url = url_of(engine)
    command.upgrade(alembic_config(url, project), "0002_projects")
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO projects (id, name) VALUES (1, 'one'), (2, 'two')"))
        conn.execute(sa.text("INSERT INTO tasks (id, title, done, source, project_id, project_name) VALUES "
                             "(1, 'a', false, 'web', 1, 'Uno'), (2, 'b', false, 'web', 1, 'Uno'), "
                             "(3, 'c', true, 'web', 2, 'Dos')"))

    command.upgrade(alembic_config(url, project), "head")

    with engine.connect() as conn:
        assert "project_name" not in {c["name"] for c in sa.inspect(conn).get_columns("tasks")}
        labels = conn.execute(sa.text("SELECT id, label FROM projects ORDER BY id")).all()
    assert [tuple(r) for r in labels] == [(1, "Uno"), (2, "Dos")]


def test_alembic_upgrade_refuses_a_revision_crossfade_has_expanded(engine):
    url = url_of(engine)
    release_1_with_tasks(engine, url, rows=3)
    assert run("expand", EXAMPLE, url=url).exit_code == 0
    installed = triggers(engine)

    with pytest.raises(CommandError, match="0002_task_state is expanded by crossfade .* `crossfade contract`"):
        command.upgrade(alembic_config(url), "head")

    assert version(engine) == "0001_initial" and triggers(engine) == installed
    assert check_code(url) == 3  # still mid-upgrade, nothing applied twice

    rolled_back = run("rollback", EXAMPLE, url=url)  # the way out the message offers
    assert rolled_back.exit_code == 0, rolled_back.output
    assert "labels" not in sa.inspect(engine).get_table_names() and not triggers(engine)
    command.upgrade(alembic_config(url), "head")
    assert version(engine) == "0003_assignee" and differences_from(engine, release_3.metadata) == []


def test_alembic_upgrade_runs_a_plain_revision_after_a_crossfade_one_as_alembic_does(tmp_path):
    project = copy_of_example(tmp_path, keep=("0001_initial", "0002_task_state"), extra={"0003_batch": BATCH_REBUILD})
    engine = sqlite_engine(tmp_path)

    command.upgrade(alembic_config(url_of(engine), project), "head")

    assert version(engine) == "0003_batch"  # Alembic's own `op` is back after crossfade read 0002
    assert "ix_tasks_owner" in {i["name"] for i in sa.inspect(engine).get_indexes("tasks")}
    assert {c["name"] for c in sa.inspect(engine).get_columns("tasks")} == set(release_2.tasks.c.keys())
    engine.dispose()


@pytest.mark.parametrize("dialect", ["postgresql", "mysql", "sqlite"])
def test_alembic_upgrade_sql_prints_every_change_without_a_database(dialect):
    url = {"postgresql": "postgresql+psycopg://nobody@nowhere/none", "mysql": "mysql+pymysql://nobody@nowhere/none",
           "sqlite": "sqlite:////nonexistent/none.db"}[dialect]
    output = io.StringIO()

    command.upgrade(alembic_config(url, output=output), "head", sql=True)

    sql = output.getvalue()
    assert "-- crossfade revision 0002_task_state: offline, every phase at once, no triggers" in sql
    assert "CREATE TABLE labels" in sql and "CREATE INDEX ix_labels_task_id ON labels (task_id)" in sql
    assert re.search(r"ADD COLUMN (IF NOT EXISTS )?state VARCHAR\(16\)", sql)
    assert "UPDATE tasks SET state=CASE WHEN tasks.done THEN 'done' ELSE 'open' END WHERE tasks.state IS NULL" in sql
    assert "UPDATE tasks SET assignee=tasks.owner WHERE tasks.assignee IS NULL" in sql
    assert "DROP TABLE projects" in sql and "TRIGGER" not in sql
    assert sql.index("CREATE TABLE labels") < sql.index("state VARCHAR(16)") < sql.index("UPDATE tasks SET state")
    assert "UPDATE alembic_version SET version_num='0003_assignee'" in sql
    if dialect == "sqlite":  # the rebuild names every column: the earlier revisions were replayed
        assert "INSERT INTO _crossfade_new_tasks (id, title, state, priority, assignee)" in sql
    else:
        assert re.search(r"DROP COLUMN (IF EXISTS )?done", sql) and re.search(r"DROP COLUMN (IF EXISTS )?source", sql)


def test_plan_sql_shows_each_revision_phases_with_plain_operations_online():
    result = run("plan", EXAMPLE / "alembic.ini", "--sql", "--dialect", "postgresql")
    assert result.exit_code == 0, result.output
    sql = result.stdout
    for revision in ("0001_initial", "0002_task_state", "0003_assignee"):
        for phase in ("expand", "migrate", "contract", "rollback"):
            assert f"-- crossfade plan: {revision} / {phase}" in sql
    assert "CREATE INDEX CONCURRENTLY ix_labels_task_id ON labels (task_id);" in sql  # online, unlike Alembic's
    assert "CREATE OR REPLACE FUNCTION crossfade_tasks_sync()" in sql
    assert "UPDATE alembic_version SET version_num='0002_task_state' WHERE alembic_version.version_num = " \
           "'0001_initial';" in sql
    rollback = sql.split("0002_task_state / rollback")[1].split("-- crossfade plan:")[0]
    assert "DROP TABLE labels;" in rollback


# --- classifying plain Alembic operations --------------------------------------------------------

RELEASE_N = Schema.from_metadata(release_2.metadata)


def recorded(declare) -> list:
    return record(declare, sqlite.dialect(), "test revision")


def test_plain_operations_run_in_expand_when_release_n_cannot_notice_them_and_in_contract_otherwise():
    from alembic import op

    def upgrade():
        op.create_table("notes", sa.Column("id", sa.Integer, primary_key=True))
        op.add_column("tasks", sa.Column("due", sa.Date))
        op.add_column("tasks", sa.Column("archived", sa.Boolean, nullable=False, server_default=sa.false()))
        op.create_index("ix_tasks_owner", "tasks", ["owner"])
        op.alter_column("tasks", "title", nullable=True)
        op.drop_column("tasks", "owner")
        op.drop_table("projects")
        op.drop_index("ix_labels_task_id", table_name="labels")
        op.create_index("ix_tasks_title", "tasks", ["title"], unique=True)
        op.create_foreign_key("fk_labels_task", "labels", "tasks", ["task_id"], ["id"])
        op.alter_column("tasks", "priority", server_default="3")
        with op.batch_alter_table("tasks") as batch:
            batch.add_column(sa.Column("color", sa.String(7)))
            batch.drop_column("title")

    phases = classify(recorded(upgrade), RELEASE_N, "r")

    names = {EXPAND: [describe(o) for o in phases.expand], CONTRACT: [describe(o) for o in phases.contract]}
    assert names[EXPAND] == ["op.create_table notes", "op.add_column tasks.due", "op.add_column tasks.archived",
                             "op.create_index ix_tasks_owner on tasks", "op.alter_column tasks.title",
                             "op.batch_alter_table tasks: add_column tasks.color"]
    assert names[CONTRACT] == ["op.drop_column tasks.owner", "op.drop_table projects",
                               "op.drop_index ix_labels_task_id on labels", "op.create_index ix_tasks_title on tasks",
                               "op.create_foreign_key fk_labels_task on labels", "op.alter_column tasks.priority",
                               "op.batch_alter_table tasks: drop_column tasks.title"]


@pytest.mark.parametrize("declare, message", [
    (lambda op: op.alter_column("tasks", "owner", new_column_name="assignee"),
     ('op.alter_column tasks.owner renames a column release N still reads and writes; '
      'use crossfade.ops.rename_column("tasks", "owner", "assignee")')),
    (lambda op: op.alter_column("tasks", "priority", type_=sa.String(10)),
     'changes the type of a column release N still writes; use crossfade.ops.replace_column("tasks", "priority", '),
    (lambda op: op.alter_column("tasks", "title", nullable=False),
     'may still write NULL; use crossfade.ops.set_not_null("tasks", "title", fill=...)'),
    (lambda op: op.add_column("tasks", sa.Column("due", sa.Date, nullable=False)),
     ("op.add_column tasks.due is NOT NULL without a server default, so release N's inserts would fail; "
      'use crossfade.ops.add_column("tasks", sa.Column(...), backfill=...)')),
    (lambda op: op.drop_column("tasks", "source"),
     'while release N still requires it; use crossfade.ops.drop_column("tasks", "source", fill=...)'),
    (lambda op: op.execute("UPDATE tasks SET priority = 1"), "op.execute runs SQL crossfade cannot classify"),
    (lambda op: op.rename_table("tasks", "todos"), "crossfade has no rename_table operation yet"),
], ids=["rename", "type", "not-null", "add-not-null", "drop-not-null", "execute", "rename-table"])
def test_an_operation_that_would_break_release_n_is_refused_naming_the_crossfade_op_to_use(declare, message):
    from alembic import op

    with pytest.raises(UnsafeOperationError) as refused:
        classify(recorded(lambda: declare(op)), RELEASE_N, "0009_x")
    assert str(refused.value).startswith("revision 0009_x: op.")
    assert message in str(refused.value)


# --- SQLite batch mode: table rebuilds drop triggers ---------------------------------------------

BATCH_REBUILD = plain_revision("0003_batch", "0002_task_state",
                               '    with op.batch_alter_table("tasks", recreate="always") as batch:\n'
                               '        batch.create_index("ix_tasks_owner", ["owner"])')


def sqlite_engine(tmp_path: Path) -> sa.Engine:
    return sa.create_engine(f"sqlite:///{tmp_path / 'batch.db'}")


@pytest.mark.parametrize("announced", [True, False], ids=["rebuild-announced", "rebuild-unnoticed"])
def test_a_batch_rebuild_during_expand_leaves_the_triggers_installed(tmp_path, monkeypatch, announced):
    if not announced:  # a rebuild run as a plain step: the check after the step finds the triggers gone
        steps = render.steps
        monkeypatch.setattr(render, "steps", lambda *args, **kwargs: [
            dataclasses.replace(step, rebuild=None) for step in steps(*args, **kwargs)])
    project = copy_of_example(tmp_path, keep=("0001_initial", "0002_task_state"), extra={"0003_batch": BATCH_REBUILD})
    engine = sqlite_engine(tmp_path)
    url = url_of(engine)
    command.upgrade(alembic_config(url, project), "0001_initial")

    result = run("expand", project, url=url)  # 0002 installs triggers, then 0003 rebuilds tasks

    assert result.exit_code == 0, result.output
    assert "op.batch_alter_table tasks: create_index ix_tasks_owner on tasks" in result.stdout
    assert ("reinstalling its triggers" in result.stdout) is not announced
    assert triggers(engine) == {"crossfade_tasks_insert", "crossfade_tasks_update"}
    assert check_code(url, project) == 3
    with engine.begin() as conn:  # release 1 still writes; the triggers fill release 2's column
        conn.execute(release_1.tasks.insert().values(id=1, title="t", done=True, owner="o", source="web"))
        assert conn.execute(sa.text("SELECT state FROM tasks WHERE id = 1")).scalar() == "done"
    assert "ix_tasks_owner" in {i["name"] for i in sa.inspect(engine).get_indexes("tasks")}
    engine.dispose()


def test_a_batch_rebuild_outside_crossfade_is_reported_and_expand_reinstalls_the_triggers(tmp_path):
    engine = sqlite_engine(tmp_path)
    url = url_of(engine)
    command.upgrade(alembic_config(url), "0001_initial")
    assert run("expand", EXAMPLE, url=url).exit_code == 0

    # Someone runs a batch migration by hand, as a plain `alembic upgrade` of another revision would.
    with engine.begin() as conn, Operations(MigrationContext.configure(conn)).batch_alter_table(
            "tasks", recreate="always") as batch:
        batch.add_column(sa.Column("note", sa.String(20)))
    assert not triggers(engine)

    checked = run("check", EXAMPLE, url=url)
    assert checked.exit_code == 1
    assert "trigger crossfade_tasks_insert on tasks is missing (run expand to reinstall it)" in checked.stdout
    repaired = run("expand", EXAMPLE, url=url)
    assert repaired.exit_code == 0, repaired.output
    assert "reinstalling" in repaired.stdout
    assert triggers(engine) == {"crossfade_tasks_insert", "crossfade_tasks_update"} and check_code(url) == 3
    engine.dispose()


# --- the example, proven by the simulator: whole revisions, plain operations at their phase ---------

def revision_simulation(project: Path, revision: str) -> tuple:
    """What `crossfade verify` simulates for one revision: its change, its module's metadata and
    values, and its phases (the whole revision, as `crossfade expand | migrate | contract` run it)."""
    loaded = load_changes(project)
    [(change, simulated)] = [(c, s) for c, s in zip(loaded.changes, loaded.simulations) if c.id == revision]
    return change, simulated


def simulate_revision(engine: sa.Engine, change, simulated):
    settings = Settings(seed_rows=20, writes_per_phase=40, values=simulated.values)
    return simulate(change, simulated.release_n, simulated.release_n1, url_of(engine), settings,
                    phases=simulated.phases)


def failed_checks(result) -> dict[str, list[str]]:
    return {name: check.details[:3] for name, check in result.checks.items() if not check.ok}


@pytest.mark.slow
@pytest.mark.parametrize("revision", ["0002_task_state", "0003_assignee"])
def test_the_example_rolling_upgrades_pass_the_simulator_with_their_plain_operations(engine, revision):
    change, simulated = revision_simulation(EXAMPLE, revision)

    result = simulate_revision(engine, change, simulated)

    assert result.ok, failed_checks(result)
    assert version(engine) == revision  # contract stamped it, as `crossfade contract` does
    with engine.connect() as conn:  # labels: created by 0002's plain ops, given a color by 0003's
        assert schema_differences(conn, simulated.release_n1, {"labels"}) == []
    assert "projects" not in sa.inspect(engine).get_table_names()  # 0003 drops it at contract


def test_the_revision_driver_runs_a_revision_from_its_down_revision_and_rolls_back_its_plain_operations(engine):
    url = url_of(engine)
    command.upgrade(alembic_config(url), "0001_initial")
    with engine.begin() as conn:  # as a scratch database another project's run left it
        conn.execute(sa.text("UPDATE alembic_version SET version_num = 'elsewhere'"))
    driver = revision_phases(EXAMPLE / "alembic.ini", "0002_task_state")(Runner(engine))
    assert driver.tables(release_1.metadata, release_2.metadata) == {"tasks", "labels"}  # not projects: as it was

    driver.prepare()
    assert version(engine) == "0001_initial"
    driver.expand()
    assert "labels" in sa.inspect(engine).get_table_names()
    driver.rollback()

    assert "labels" not in sa.inspect(engine).get_table_names() and not triggers(engine)
    assert version(engine) == "0001_initial"


def forced_into_expand(monkeypatch, table: str, column: str) -> None:
    """A classifier that lets plain operations on `table.column` run in expand, right or wrong."""
    original = classify_module.phase_of

    def phase_of(operation, *args):
        if (getattr(operation, "table_name", None), getattr(operation, "column_name", None)) == (table, column):
            return EXPAND
        return original(operation, *args)
    monkeypatch.setattr(classify_module, "phase_of", phase_of)


def tasks_of_release_n1(*columns: sa.Column) -> sa.MetaData:
    """Release 1's tables, tasks without `owner` and with priority and `columns`: what the
    revisions below make."""
    metadata = sa.MetaData()
    release_1.projects.to_metadata(metadata)
    columns = tuple(sa.Column(c.name, c.type) for c in columns)  # fresh: a Column belongs to one Table
    sa.Table("tasks", metadata, sa.Column("id", sa.Integer, primary_key=True), sa.Column("title", sa.String(200)),
             sa.Column("done", sa.Boolean, nullable=False), sa.Column("source", sa.String(20), nullable=False),
             sa.Column("priority", sa.Integer, nullable=False, server_default="2"), *columns)
    return metadata


OWNER_GOES = {
    "rename": ('    op.alter_column("tasks", "owner", new_column_name="assignee", existing_type=sa.String(40))',
               [sa.Column("assignee", sa.String(40))]),
    "drop": ('    op.drop_column("tasks", "owner")', []),
}


def owner_goes(tmp_path: Path, how: str) -> tuple:
    """A revision that adds tasks.priority with crossfade and renames or drops tasks.owner with a
    plain op, in a copy of the example; its release N is release 1."""
    project = copy_of_example(tmp_path, keep=("0001_initial",), extra={"0002_owner": plain_revision(
        "0002_owner", "0001_initial", OWNER_GOES[how][0], crossfade_ops=(
            'ops.add_column("tasks", sa.Column("priority", sa.Integer, nullable=False, server_default="2"))'))})
    change = find_project(project).revision("0002_owner", sqlite.dialect()).change
    return change, revision_phases(project, "0002_owner"), tasks_of_release_n1(*OWNER_GOES[how][1])


def release_n_refusals(result, phase: str) -> list[str]:
    return [d for d in result.checks["no refused writes"].details if f"(release N, {phase})" in d and "owner" in d]


@pytest.mark.parametrize("how", sorted(OWNER_GOES))
def test_the_simulator_catches_a_plain_operation_that_breaks_release_n_during_expand(engine, tmp_path, monkeypatch,
                                                                                     how):
    change, phases, release_n1 = owner_goes(tmp_path, how)
    forced_into_expand(monkeypatch, "tasks", "owner")  # past the classifier, which refuses or defers it

    result = simulate(change, release_1.metadata, release_n1, url_of(engine),
                      Settings(seed_rows=20, writes_per_phase=40), phases=phases)

    assert release_n_refusals(result, "expand"), failed_checks(result)  # each a write release N's code makes


def test_the_same_plain_drop_passes_the_simulator_in_contract_where_the_classifier_puts_it(engine, tmp_path):
    change, phases, release_n1 = owner_goes(tmp_path, "drop")

    result = simulate(change, release_1.metadata, release_n1, url_of(engine),
                      Settings(seed_rows=20, writes_per_phase=40), phases=phases)

    assert result.ok, failed_checks(result)
    assert "owner" not in {c["name"] for c in sa.inspect(engine).get_columns("tasks")}


@pytest.mark.slow
def test_the_hypothesis_mode_runs_the_plain_operations_too(engine, tmp_path, monkeypatch):
    change, phases, release_n1 = owner_goes(tmp_path, "rename")
    forced_into_expand(monkeypatch, "tasks", "owner")

    result = hypothesis_verify(change, release_1.metadata, release_n1, url_of(engine), phases=phases,
                               max_examples=10, steps=8)

    refused = result.checks["no refused writes"]
    assert not refused.ok and "release N's" in refused.details[0] and "owner" in refused.details[0], refused
    assert "  1. expand" in refused.details  # shrunk: expand, then one write of release N's


@pytest.mark.parametrize("revision, line, difference", [
    ("0002_task_state", '    op.create_index("ix_labels_task_id", "labels", ["task_id"])\n', "ix_labels_task_id"),
    ("0003_assignee", '    op.drop_table("projects")\n', "table projects is still there"),
], ids=["index-missing", "table-left"])
@pytest.mark.slow
def test_a_revision_whose_plain_operations_miss_release_n1s_schema_fails_the_clean_contract(
        engine, tmp_path, revision, line, difference):
    text = (EXAMPLE / "migrations" / "versions" / f"{revision}.py").read_text()
    assert line in text
    earlier = tuple(r for r in ("0001_initial", "0002_task_state") if r < revision)
    project = copy_of_example(tmp_path, keep=earlier, extra={revision: text.replace(line, "")})
    change, simulated = revision_simulation(project, revision)

    result = simulate_revision(engine, change, simulated)

    assert list(failed_checks(result)) == ["clean contract"], failed_checks(result)
    assert any(difference in d for d in result.checks["clean contract"].details), result.checks["clean contract"]


@pytest.mark.slow
def test_verify_runs_an_alembic_projects_revisions_whole_and_again_on_the_same_scratch_database(engine):
    url = url_of(engine)
    for _ in range(2):  # the second run starts from what the first left: alembic_version at 0003, labels
        result = run("verify", EXAMPLE / "alembic.ini", "--writes", "40", "--seed-rows", "10", "--json", url=url)
        assert result.exit_code == 0, result.output
        reports = json.loads(result.stdout)
        assert [r["change"] for r in reports] == ["0002_task_state", "0003_assignee"]
    assert version(engine) == "0003_assignee"
    assert differences_from(engine, release_3.metadata) == []


# --- a plain create_foreign_key with ON UPDATE / ON DELETE actions -------------------------------

NOTES = plain_revision("0002_notes", "0001_initial", (
    '    op.create_table("notes", sa.Column("id", sa.Integer, primary_key=True), sa.Column("task_id", sa.Integer))\n'
    '    op.create_foreign_key("fk_notes_task", "notes", "tasks", ["task_id"], ["id"], ondelete="CASCADE",\n'
    '                          onupdate="cascade")'))


@pytest.mark.parametrize("dialect_name", ["postgresql", "mysql"])  # SQLite: Alembic's batch mode rebuilds
def test_a_plain_create_foreign_key_with_on_update_runs_online_and_its_actions_cascade(engine, tmp_path):
    project = copy_of_example(tmp_path, keep=("0001_initial",), extra={"0002_notes": NOTES})
    url = url_of(engine)
    release_1_with_tasks(engine, url, rows=3)

    outputs = {phase: run(phase, project, url=url) for phase in ("expand", "migrate", "contract")}

    assert all(result.exit_code == 0 for result in outputs.values()), {p: r.output for p, r in outputs.items()}
    online = {"postgresql": "VALIDATE", "mysql": "validate the existing rows"}[engine.dialect.name]
    assert online in outputs["contract"].stdout  # crossfade's online form, not Alembic's plain ALTER
    assert run("contract", project, url=url).exit_code == 0  # a rerun: nothing to do
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO notes (id, task_id) VALUES (1, 1), (2, 2), (3, 2)"))
        conn.execute(sa.text("UPDATE tasks SET id = 20 WHERE id = 2"))  # ON UPDATE CASCADE
        conn.execute(sa.text("DELETE FROM tasks WHERE id = 1"))  # ON DELETE CASCADE
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT id, task_id FROM notes ORDER BY id")).all() == [(2, 20), (3, 20)]
        [key] = sa.inspect(conn).get_foreign_keys("notes")
    assert key["options"] == {"ondelete": "CASCADE", "onupdate": "CASCADE"}
