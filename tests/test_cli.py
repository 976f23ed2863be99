"""The crossfade command, end to end on real databases (SQLite, PostgreSQL, MariaDB)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from crossfade.cli import app
from crossfade.loader import import_file, load_changes

GLANCE = Path(__file__).resolve().parents[1] / "examples" / "glance"
CHANGES = str(GLANCE / "changes")
release_n = import_file(GLANCE / "release_n.py")
release_n1 = import_file(GLANCE / "release_n1.py")

cli = CliRunner()


def run(*args: str, url: str | None = None):
    argv = [str(a) for a in args] + (["--url", url] if url else [])
    return cli.invoke(app, argv, catch_exceptions=False)


def url_of(engine: sa.Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def seed_release_n(engine: sa.Engine, rows: int = 300) -> None:
    release_n.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(release_n.images.insert(), [{"name": f"image-{i}", "is_public": i % 2 == 0} for i in range(rows)])


def check_code(url: str, changes: str | Path = CHANGES) -> int:
    return run("check", changes, url=url).exit_code


def status_json(url: str) -> dict:
    result = run("status", CHANGES, "--json", url=url)
    assert result.exit_code == 0, result.output
    [found] = json.loads(result.stdout)
    return found


# --- plan: reviewable SQL without a database ------------------------------------------------

TRIGGER_SHAPE = {
    "postgresql": ["CREATE OR REPLACE FUNCTION crossfade_images_sync()", "BEFORE INSERT ON images",
                   "NEW.visibility := CASE WHEN NEW.is_public THEN 'public' ELSE 'shared' END;",
                   "DROP FUNCTION IF EXISTS crossfade_images_sync();",
                   "ALTER TABLE images ALTER COLUMN visibility SET NOT NULL;"],
    "mysql": ["CREATE TRIGGER crossfade_images_insert BEFORE INSERT ON images",
              "SET NEW.visibility = (CASE WHEN NEW.is_public THEN 'public' ELSE 'shared' END);",
              "NOT (NEW.is_public <=> (NEW.visibility = 'public'))",
              "MODIFY COLUMN visibility VARCHAR(16) NOT NULL DEFAULT 'shared'"],
    "sqlite": ["CREATE TRIGGER crossfade_images_insert AFTER INSERT ON images",
               "UPDATE images SET visibility = (CASE WHEN ",
               "rebuild table images (allow NULL in images.is_public)",
               "visibility VARCHAR(16) DEFAULT 'shared' NOT NULL"],
}


@pytest.mark.parametrize("dialect", sorted(TRIGGER_SHAPE))
def test_plan_sql_shows_every_phase_ddl_and_triggers_without_a_database(dialect):
    result = run("plan", CHANGES, "--sql", "--dialect", dialect)

    assert result.exit_code == 0, result.output
    sql = result.stdout
    for phase in ("expand", "migrate", "contract", "rollback"):
        assert f"-- crossfade plan: 0001_visibility / {phase}" in sql
    # IF [NOT] EXISTS where the database has it: one ALTER may hold several (test_instant_ddl.py)
    assert re.search(r"ALTER TABLE images ADD COLUMN (IF NOT EXISTS )?visibility VARCHAR\(16\)[,;]", sql)
    assert re.search(r"ALTER TABLE images DROP COLUMN (IF EXISTS )?is_public[,;]", sql)
    assert re.search(r"ALTER TABLE images DROP COLUMN (IF EXISTS )?visibility[,;]", sql)  # rollback
    assert "UPDATE images SET visibility=CASE WHEN images.is_public THEN 'public' ELSE 'shared' END" in sql
    assert "DROP TRIGGER IF EXISTS crossfade_images_update" in sql
    contract = sql.split("/ contract")[1].split("/ rollback")[0]
    # as the runner does it: the default lands before the triggers go, and only once
    assert contract.count("set default of images.visibility") == 1
    assert contract.index("set default of images.visibility") < contract.index("DROP TRIGGER")
    for shape in TRIGGER_SHAPE[dialect]:
        assert shape in sql, shape


def test_plan_marks_compound_statements_so_boundaries_are_obvious():
    sql = run("plan", CHANGES, "--sql", "--dialect", "mysql").stdout
    trigger = sql.split("-- >>> one statement")[1].split("-- <<< end of statement")[0]
    assert "BEGIN" in trigger and trigger.rstrip().endswith("END;")
    assert "\nDELIMITER" not in sql


def test_plan_without_sql_lists_each_phase_steps_for_all_dialects():
    result = run("plan", CHANGES)
    assert result.exit_code == 0, result.output
    for dialect in ("postgresql", "mysql", "sqlite"):
        assert f"plan for {dialect}" in result.stdout
    assert "install triggers on images" in result.stdout


INDEXES_AND_CONSTRAINTS = '''
import sqlalchemy as sa
from crossfade import Change, ops

metadata = sa.MetaData()
sa.Table("owners", metadata, sa.Column("id", sa.Integer, primary_key=True))
sa.Table("images", metadata, sa.Column("id", sa.Integer, primary_key=True), sa.Column("name", sa.String(20)),
         sa.Column("owner_id", sa.Integer), sa.Column("size", sa.Integer))

change = Change(
    ops.create_index("images", "ix_images_size", "size"),
    ops.add_unique("images", "uq_images_name", "name"),
    ops.add_foreign_key("images", "fk_images_owner", "owner_id", "owners", "id"),
    ops.add_check("images", "ck_images_size", lambda row: row.size >= 0),
    id="0001_constraints",
)
'''


def locks_lines(sql: str) -> dict[str, str]:
    """Each planned step's name -> its `locks:` line, phase by phase ("contract: drop column ...")."""
    found, phase, step = {}, "", ""
    for line in sql.splitlines():
        if line.startswith("-- crossfade plan: "):
            phase = line.rsplit("/ ", 1)[1]
        elif line.startswith("--   locks: "):
            found[f"{phase}: {step}"] = line
        elif line.startswith("-- ") and not line.startswith("--   "):
            step = line[3:]
    return found


def test_plan_marks_the_steps_a_transaction_can_make_lose_their_work_on_mysql(tmp_path):
    """An online index build or table rebuild (and a table copy) takes an exclusive metadata lock
    at its very end: one transaction on the table then throws the finished work away. On MariaDB
    and MySQL only: PostgreSQL's CONCURRENTLY waits for transactions instead of failing."""
    module = tmp_path / "0001_constraints.py"
    module.write_text(INDEXES_AND_CONSTRAINTS)
    locks = locks_lines(run("plan", module, "--sql", "--dialect", "mysql").stdout)
    locks |= locks_lines(run("plan", CHANGES, "--sql", "--dialect", "mysql").stdout)
    loses_work = {name for name, line in locks.items() if "; can lose its work: " in line}
    assert loses_work == {
        "expand: create index ix_images_size on images (size)",
        "contract: add unique constraint uq_images_name on images (name)",
        "contract: add foreign key fk_images_owner on images (owner_id) -> owners (id)",  # MySQL copies the table
        "contract: add check constraint ck_images_size on images",
        "contract: allow NULL in images.is_public",  # NOT NULL -> NULL rebuilds the table too
        "contract: set NOT NULL on images.visibility",
    }, sorted(locks)
    assert "the online index build needs an exclusive metadata lock at its very end" in locks[
        "expand: create index ix_images_size on images (size)"]
    assert "each attempt copies the table" in locks["contract: add check constraint ck_images_size on images"]
    assert "rollback: drop index ix_images_size on images" in locks  # metadata only: nothing to lose
    for dialect in ("postgresql", "sqlite"):
        assert "can lose its work" not in run("plan", module, "--sql", "--dialect", dialect).stdout


def test_plan_against_a_live_database_reflects_its_tables(engine):
    seed_release_n(engine, rows=1)
    result = run("plan", CHANGES, "--sql", url=url_of(engine))
    assert result.exit_code == 0, result.output
    assert re.search(r"CREATE (OR REPLACE )?TRIGGER crossfade_images_insert", result.stdout)
    assert re.search(r"ADD COLUMN (IF NOT EXISTS )?visibility VARCHAR\(16\)", result.stdout)

    assert run("expand", CHANGES, url=url_of(engine)).exit_code == 0
    result = run("plan", CHANGES, "--sql", url=url_of(engine))
    assert result.exit_code == 0, result.output
    assert "0001_visibility is expanded in this database; not planned" in result.stderr
    assert "ADD COLUMN" not in result.stdout


# --- the rolling upgrade through the CLI -----------------------------------------------------

def test_cli_runs_expand_migrate_contract_with_check_codes_at_every_phase(engine):
    url = url_of(engine)
    seed_release_n(engine)
    assert check_code(url) == 2  # needs expand
    assert status_json(url)["phase"] == "pending"

    expanded = run("expand", CHANGES, "--lock-timeout", "0.2", url=url)
    assert expanded.exit_code == 0, expanded.output
    assert "install triggers on images" in expanded.stdout
    assert check_code(url) == 3  # needs migrate
    found = status_json(url)
    assert found["phase"] == "expanded" and found["problems"] == []
    assert found["new_release"] == "may start after migrate"  # the change does not declare identification
    assert found["triggers"] and all(t["installed"] and t["matches"] for t in found["triggers"])

    with engine.begin() as conn:  # release N+1 writes meanwhile; the trigger fills is_public
        conn.execute(release_n1.images.insert().values(name="n+1", visibility="community"))

    migrated = run("migrate", CHANGES, "--batch-size", "64", "--pause", "0", url=url)
    assert migrated.exit_code == 0, migrated.output
    assert "backfill images" in migrated.stdout and "301/301" in migrated.stdout  # the progress bar
    assert check_code(url) == 4  # needs contract
    assert status_json(url)["backfill"] == {"images": 1.0}

    contracted = run("contract", CHANGES, url=url)
    assert contracted.exit_code == 0, contracted.output
    assert check_code(url) == 0  # up to date
    found = status_json(url)
    assert found.pop("schema", "public") == "public"  # where resolved (PostgreSQL), the schema is named
    # Contract keeps only the record that the change is done: no checkpoint, no triggers.
    assert found == {"change": "0001_visibility", "phase": "contracted", "backfill": {},
                     "triggers": [], "problems": [], "repairs": [], "new_release": "may start now"}
    with engine.connect() as conn:
        values = dict(conn.execute(sa.select(release_n1.images.c.name, release_n1.images.c.visibility)).all())
    assert values["image-0"] == "public" and values["image-1"] == "shared" and values["n+1"] == "community"
    assert "is_public" not in {c["name"] for c in sa.inspect(engine).get_columns("images")}


def test_rollback_from_the_cli_returns_to_release_n(engine):
    url = url_of(engine)
    seed_release_n(engine, rows=20)
    assert run("expand", CHANGES, url=url).exit_code == 0

    result = run("rollback", CHANGES, url=url)

    assert result.exit_code == 0, result.output
    assert status_json(url)["phase"] == "rolled_back"
    assert check_code(url) == 2
    assert "visibility" not in {c["name"] for c in sa.inspect(engine).get_columns("images")}


def test_check_returns_1_when_a_trigger_is_dropped_behind_crossfades_back(engine):
    url = url_of(engine)
    seed_release_n(engine, rows=5)
    assert run("expand", CHANGES, url=url).exit_code == 0
    on_table = " ON images" if engine.dialect.name == "postgresql" else ""
    with engine.begin() as conn:
        conn.exec_driver_sql(f"DROP TRIGGER crossfade_images_insert{on_table}")

    result = run("check", CHANGES, url=url)

    assert result.exit_code == 1
    assert "crossfade_images_insert on images is missing" in result.stdout
    found = status_json(url)
    assert any("missing" in p for p in found["problems"])
    assert [t["installed"] for t in found["triggers"] if t["name"] == "crossfade_images_insert"] == [False]
    assert run("expand", CHANGES, url=url).exit_code == 0  # expand reinstalls it
    assert check_code(url) == 3


def test_check_returns_1_for_a_phase_that_stopped_half_way(engine):
    url = url_of(engine)
    seed_release_n(engine, rows=5)
    assert run("expand", CHANGES, url=url).exit_code == 0
    with engine.begin() as conn:  # as if contract was killed after recording that it started
        conn.execute(sa.text("UPDATE crossfade_state SET phase = 'contracting'"))

    result = run("check", CHANGES, url=url)

    assert result.exit_code == 1
    assert "stopped while contracting" in result.stdout


def test_check_over_several_changes_reports_the_earliest_phase_still_needed(tmp_path):
    changes = tmp_path / "changes"
    changes.mkdir()
    (changes / "0001_visibility.py").write_text((GLANCE / "changes" / "0001_visibility.py").read_text()
                                                .replace("Path(__file__).resolve().parents[1]", f"Path({str(GLANCE)!r})"))
    (changes / "0002_members.py").write_text(
        "import sqlalchemy as sa\nfrom crossfade import Change, ops\n"
        "change = Change(ops.add_column('image_members', sa.Column('can_share', sa.Boolean, nullable=False,"
        " server_default=sa.false())), id='0002_can_share')\n")
    url = f"sqlite:///{tmp_path / 'glance.db'}"
    engine = sa.create_engine(url)
    seed_release_n(engine, rows=5)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE image_members (id INTEGER PRIMARY KEY, member VARCHAR(255))")

    assert run("expand", str(changes / "0001_visibility.py"), url=url).exit_code == 0
    assert check_code(url, changes) == 2  # 0002 still needs expand
    assert run("expand", str(changes), url=url).exit_code == 0
    assert run("migrate", str(changes), url=url).exit_code == 0
    assert run("contract", str(changes / "0001_visibility.py"), url=url).exit_code == 0
    assert check_code(url, changes) == 4  # 0002 needs contract
    result = run("expand", str(changes), url=url)  # a contracted change is skipped, not an error
    assert result.exit_code == 0 and "already contracted" in result.stdout
    assert run("contract", str(changes), url=url).exit_code == 0
    assert check_code(url, changes) == 0


def test_contract_before_migrate_is_a_one_line_error(engine):
    url = url_of(engine)
    seed_release_n(engine, rows=5)
    assert run("expand", CHANGES, url=url).exit_code == 0

    result = run("contract", CHANGES, url=url)

    assert result.exit_code == 1
    assert result.stderr.strip() == ("error: change 0001_visibility is expanded; contract needs it migrated "
                                     "(and no node of release N left)")


# --- demo ------------------------------------------------------------------------------------

def test_demo_runs_a_whole_rolling_upgrade_on_sqlite_without_a_server():
    result = run("demo", "--rows", "200")
    assert result.exit_code == 0, result.output
    assert "N+1 reads visibility='community'" in result.stdout
    assert "phase: contracted, problems: none" in result.stdout
    assert "columns of images now: id, name, visibility" in result.stdout


def test_demo_runs_on_every_database_and_leaves_it_as_it_found_it(engine):
    result = run("demo", "--rows", "50", url=url_of(engine))
    assert result.exit_code == 0, result.output
    assert "phase: contracted, problems: none" in result.stdout
    assert sa.inspect(engine).get_table_names() == []


# --- errors ----------------------------------------------------------------------------------

def test_a_missing_path_is_a_clean_error_from_a_real_process(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "crossfade.cli", "expand", str(tmp_path / "nowhere.py"),
                           "--url", "sqlite://"], check=False, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.strip() == f"error: no such file or directory: {tmp_path / 'nowhere.py'}"
    assert "Traceback" not in proc.stderr + proc.stdout


def test_a_module_without_a_change_is_a_clean_error(tmp_path):
    module = tmp_path / "empty.py"
    module.write_text("x = 1\n")
    result = run("status", str(module), url="sqlite://")
    assert result.exit_code == 1
    assert "defines no Change" in result.stderr


def test_an_unreachable_database_is_a_one_line_error():
    result = run("check", CHANGES, url="postgresql+psycopg://nobody@127.0.0.1:1/none")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: database error:") and len(result.stderr.strip().splitlines()) == 1


def test_database_commands_need_a_url(monkeypatch):
    monkeypatch.delenv("CROSSFADE_URL", raising=False)
    result = run("status", CHANGES)
    assert result.exit_code == 1
    assert "pass --url or set CROSSFADE_URL" in result.stderr


def test_the_url_can_come_from_crossfade_url(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'glance.db'}"
    seed_release_n(sa.create_engine(url), rows=1)
    monkeypatch.setenv("CROSSFADE_URL", url)
    assert run("check", CHANGES).exit_code == 2


# --- small messages: one line each, naming what to do --------------------------------------------

def url_with_driver(engine: sa.Engine, drivername: str, hide_password: bool = False) -> str:
    return engine.url.set(drivername=drivername).render_as_string(hide_password=hide_password)


@pytest.mark.parametrize("dialect_name, module, drivername, package, installed, installed_name", [
    ("mysql", "MySQLdb", "mysql", "mysqlclient", "mysql+pymysql", "PyMySQL"),
    ("postgresql", "psycopg2", "postgresql+psycopg2", "psycopg2-binary", "postgresql+psycopg", "psycopg 3"),
])
@pytest.mark.parametrize("command", ["check", "demo", "verify"])
def test_a_url_whose_driver_is_missing_is_one_line_naming_the_package_and_the_url_that_works(
        engine, monkeypatch, command, module, drivername, package, installed, installed_name):
    monkeypatch.setitem(sys.modules, module, None)  # as on a machine without it, even where it is installed
    seed_release_n(engine, rows=1)
    args = ("check", CHANGES) if command == "check" else ("demo",) if command == "demo" else ("verify", CHANGES)

    result = run(*args, url=url_with_driver(engine, drivername))

    assert result.exit_code == 1
    assert result.stderr == (f"error: the URL {url_with_driver(engine, drivername, True)} needs the {package} "
                             f"package, which is not installed: pip install {package}, or use "
                             f"{url_with_driver(engine, installed, True)} ({installed_name} comes with crossfade)\n")
    assert check_code(url_with_driver(engine, installed)) == 2  # the URL it names works


def test_a_database_crossfade_does_not_support_is_one_line():
    result = run("check", CHANGES, url="mssql+pyodbc://sa@127.0.0.1/glance")
    assert result.exit_code == 1
    assert result.stderr == ("error: crossfade supports PostgreSQL, MySQL/MariaDB and SQLite, not mssql "
                             "(mssql+pyodbc://sa@127.0.0.1/glance)\n")


@pytest.mark.parametrize("command", [["status"], ["check"], ["plan", "--sql"], ["expand"], ["migrate"],
                                     ["contract"], ["rollback"]])
def test_a_sqlite_file_that_does_not_exist_is_named_and_never_created(tmp_path, command):
    path = tmp_path / "glance-typo.db"
    result = run(command[0], CHANGES, *command[1:], url=f"sqlite:///{path}")
    assert result.exit_code == 1
    assert result.stderr == (f"error: no SQLite database file at {path}: check the path in the URL "
                             "(this command does not create one)\n")
    assert not path.exists()


ALEMBIC_EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "alembic_service"


def test_the_commands_that_build_a_database_may_still_create_the_sqlite_file(tmp_path):
    demo_db, project_db = tmp_path / "demo.db", tmp_path / "project.db"
    assert run("demo", "--rows", "20", "--keep", url=f"sqlite:///{demo_db}").exit_code == 0
    assert demo_db.exists()
    assert run("check", ALEMBIC_EXAMPLE, url=f"sqlite:///{project_db}").exit_code == 1 and not project_db.exists()
    # An Alembic project's first revision creates the tables, and with them the file.
    result = run("expand", ALEMBIC_EXAMPLE, url=f"sqlite:///{project_db}")
    assert result.exit_code == 0, result.output
    assert check_code(f"sqlite:///{project_db}", ALEMBIC_EXAMPLE) == 3


CHANGED_AFTER_CONTRACT = (": the database changed after contract (a table recreated or restored?). To upgrade it "
                          "again, delete the change's crossfade_state row (DELETE FROM crossfade_state WHERE "
                          "change_id = '0001_visibility') and run expand; otherwise put back the schema contract left")


def test_every_phase_and_check_agree_on_a_contracted_change_whose_table_was_recreated(engine):
    url = url_of(engine)
    seed_release_n(engine, rows=5)
    for phase in ("expand", "migrate", "contract"):
        assert run(phase, CHANGES, url=url).exit_code == 0
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE images")
    seed_release_n(engine, rows=5)  # release N's table again, e.g. restored from last week's dump

    checked, expanded = run("check", CHANGES, url=url), run("expand", CHANGES, url=url)
    contracted, migrated = run("contract", CHANGES, url=url), run("migrate", CHANGES, url=url)

    assert checked.exit_code == expanded.exit_code == contracted.exit_code == migrated.exit_code == 1
    assert contracted.stderr == migrated.stderr == expanded.stderr
    problem = "column images.is_public should be gone"
    assert checked.stdout == f"0001_visibility: contracted, problem: {problem}{CHANGED_AFTER_CONTRACT}\n"
    assert expanded.stderr == f"error: 0001_visibility is contracted, but {problem}{CHANGED_AFTER_CONTRACT}\n"
    assert "visibility" not in {c["name"] for c in sa.inspect(engine).get_columns("images")}
    with engine.begin() as conn:  # what the message says to do
        conn.exec_driver_sql("DELETE FROM crossfade_state WHERE change_id = '0001_visibility'")
    assert run("expand", CHANGES, url=url).exit_code == 0
    assert check_code(url) == 3


@pytest.mark.parametrize("dialect_name", ["sqlite"])
def test_a_transform_that_raises_is_one_line_from_the_cli(engine, tmp_path):
    seed_release_n(engine, rows=1)
    module = tmp_path / "raising.py"
    module.write_text(BROKEN_CHANGE.replace('visibility == "shared"', "int(visibility) == 1"))

    result = run("expand", module, url=url_of(engine))

    assert result.exit_code == 1
    assert result.stderr.startswith("error: down for images.is_public raised TypeError: ")
    assert result.stderr.endswith("; fix the transform (it receives SQLAlchemy column expressions, not values)\n")
    assert len(result.stderr.splitlines()) == 1


# --- loading changes -------------------------------------------------------------------------

def test_changes_load_from_a_directory_a_file_or_a_dotted_module(tmp_path, monkeypatch):
    package = tmp_path / "myapp_changes"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "visibility.py").write_text((GLANCE / "changes" / "0001_visibility.py").read_text()
                                           .replace("Path(__file__).resolve().parents[1]", f"Path({str(GLANCE)!r})"))
    monkeypatch.chdir(tmp_path)

    for target in (CHANGES, str(GLANCE / "changes" / "0001_visibility.py"), "myapp_changes.visibility"):
        loaded = load_changes(target)
        assert [c.id for c in loaded.changes] == ["0001_visibility"]
        assert set(loaded.metadata.tables) == {"images"}


# --- verify: the simulator from the command line ------------------------------------------------

@pytest.mark.slow
def test_verify_proves_the_glance_change_and_prints_json(engine):
    result = run("verify", CHANGES, "--writes", "100", "--seed-rows", "20", "--json", url=url_of(engine))
    assert result.exit_code == 0, result.output
    [report] = json.loads(result.stdout)
    assert report["change"] == "0001_visibility" and report["ok"] is True
    [dialect] = report["results"]
    assert dialect["dialect"] == engine.dialect.name
    assert {c["check"]: c["ok"] for c in dialect["checks"]} == {
        "phases": True, "no refused writes": True, "sync law": True, "no lost writes": True,
        "clean contract": True, "latency": True}


BROKEN_CHANGE = '''
import sqlalchemy as sa
from crossfade import Change, ops

def images(*columns):
    metadata = sa.MetaData()
    sa.Table("images", metadata, sa.Column("id", sa.Integer, primary_key=True), *columns)
    return metadata

metadata = images(sa.Column("is_public", sa.Boolean, nullable=False))
metadata_n1 = images(sa.Column("visibility", sa.String(16), nullable=False, server_default="shared"))
change = Change(ops.replace_column(
    "images", "is_public", sa.Column("visibility", sa.String(16), nullable=False, server_default="shared"),
    up=lambda is_public: sa.case((is_public, "public"), else_="shared"),
    down=lambda visibility: visibility == "shared"), id="inverted")
'''


@pytest.mark.parametrize("dialect_name", ["sqlite"])
def test_verify_exits_1_and_names_what_failed(engine, tmp_path):
    module = tmp_path / "inverted.py"
    module.write_text(BROKEN_CHANGE)
    result = run("verify", module, "--writes", "50", url=url_of(engine))
    assert result.exit_code == 1
    assert "FAIL" in result.stdout and "RoundTripError" in result.stdout


@pytest.mark.parametrize("dialect_name", ["sqlite"])
def test_verify_needs_release_n1_metadata(engine, tmp_path):
    module = tmp_path / "no_n1.py"
    module.write_text(BROKEN_CHANGE.replace("metadata_n1 =", "other ="))
    result = run("verify", module, url=url_of(engine))
    assert result.exit_code == 1
    assert "must define `metadata` (release N) and `metadata_n1` (release N+1)" in result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("dialect_name", ["sqlite"])
def test_verify_hypothesis_mode_reports_every_check(engine):
    result = run("verify", CHANGES, "--hypothesis", "--examples", "3", "--json", url=url_of(engine))
    assert result.exit_code == 0, result.output
    [report] = json.loads(result.stdout)
    [dialect] = report["results"]
    assert {c["check"] for c in dialect["checks"]} >= {"no refused writes", "sync law", "no lost writes"}
    assert all(c["ok"] for c in dialect["checks"])


# --- a conventional command line (issue 14) ------------------------------------------------------

COMMANDS = ["plan", "expand", "migrate", "contract", "rollback", "status", "check", "verify", "demo", "init",
            "revision"]
ALEMBIC_SERVICE = Path(__file__).resolve().parents[1] / "examples" / "alembic_service"


def crossfade_process(*args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """`crossfade ARGS` as a shell runs it: a fresh process of the console script's main()."""
    import os

    return subprocess.run([sys.executable, "-m", "crossfade.cli", *args], capture_output=True, text=True,
                          timeout=300, check=False, env={**os.environ, **(env or {})}, cwd=cwd)


def test_version_prints_the_installed_version():
    from importlib.metadata import version

    result = run("--version")
    assert result.exit_code == 0
    assert result.stdout == f"crossfade {version('crossfade')}\n"


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_takes_dash_h_and_shows_an_example_of_itself(command):
    result = run(command, "-h")
    assert result.exit_code == 0, result.output
    assert result.stdout == run(command, "--help").stdout
    examples = result.stdout.split("Examples:\n")[1]
    assert f"crossfade {command}" in examples


def test_the_top_level_help_lists_every_command_in_upgrade_order_with_examples():
    result = run("-h")
    assert result.exit_code == 0
    listed = re.findall(r"^  (\w+)  ", result.stdout.split("Commands:")[1].split("Examples:")[0], re.MULTILINE)
    assert listed == COMMANDS
    assert "crossfade plan changes/ --sql --dialect mariadb" in result.stdout


@pytest.mark.parametrize("command, flag", [("status", "--json"), ("verify", "--json"), ("expand", "--allow-foreign-triggers"),
                                           ("plan", "--sql"), ("demo", "--keep"), ("check", "--deep")])
def test_flags_show_no_value_placeholder_in_help(command, flag):
    line = next(line for line in run(command, "-h").stdout.splitlines() if line.strip().startswith(flag))
    assert re.match(rf"\s+{flag}\s{{2,}}[A-Z]", line), line  # the flag, then its help: no <bool>, no BOOLEAN


@pytest.mark.parametrize("value", ["true", "false", "1"])
def test_a_flag_given_a_value_is_a_one_line_usage_error_before_any_database_is_opened(tmp_path, value):
    url = f"sqlite:///{tmp_path / 'never.db'}"
    result = run("status", CHANGES, "--json", value, "--url", url)
    assert result.exit_code == 2
    assert f"--json is a flag and takes no value: write --json alone (leave it out for false), not --json {value}" \
        in result.stderr
    assert not (tmp_path / "never.db").exists()


def test_options_with_values_name_what_they_take():
    help_text = run("migrate", "-h").stdout
    for shown in ("--url URL", "--lock-timeout SECONDS", "--batch-size ROWS", "--jobs N", "-c, --config FILE",
                  "--max-lag SECONDS|off", "--replica URL"):
        assert shown in help_text, shown
    assert "[env var: CROSSFADE_URL]" in " ".join(help_text.split())
    assert "[postgresql|mariadb|mysql|sqlite]" in run("plan", "-h").stdout


def test_shell_completion_script_and_completions_come_from_the_crossfade_variable():
    script = crossfade_process(env={"_CROSSFADE_COMPLETE": "bash_source"})
    assert script.returncode == 0, script.stderr
    assert "_crossfade_completion()" in script.stdout and "complete -o nosort -F _crossfade_completion crossfade" \
        in script.stdout
    commands = crossfade_process(env={"_CROSSFADE_COMPLETE": "bash_complete", "COMP_WORDS": "crossfade co",
                                      "COMP_CWORD": "1"})
    assert commands.stdout.split() == ["plain,contract"]
    dialects = crossfade_process(env={"_CROSSFADE_COMPLETE": "bash_complete",
                                      "COMP_WORDS": "crossfade plan --dialect ma", "COMP_CWORD": "3"})
    assert dialects.stdout.split() == ["plain,mariadb"]
    zsh = crossfade_process(env={"_CROSSFADE_COMPLETE": "zsh_source"})
    assert "#compdef crossfade" in zsh.stdout


def test_the_cli_offers_the_dialects_offline_rendering_knows():
    from crossfade.cli.plan import PLAN_DIALECTS
    from crossfade.dialects import PLAN_NAMES

    assert PLAN_DIALECTS == PLAN_NAMES


# --- where the changes come from: [PATH] or -c/--config, for every command ---------------------------

def test_every_changes_command_takes_an_alembic_project_by_dash_c_as_by_path(tmp_path):
    url = f"sqlite:///{tmp_path / 'service.db'}"
    by_config = run("expand", "-c", ALEMBIC_SERVICE / "alembic.ini", url=url)
    assert by_config.exit_code == 0, by_config.output
    assert run("check", "-c", ALEMBIC_SERVICE / "alembic.ini", url=url).exit_code == 3  # needs migrate
    assert run("check", ALEMBIC_SERVICE, url=url).exit_code == 3
    for command in ("plan", "status", "migrate", "contract", "rollback"):
        result = run(command, "--config", ALEMBIC_SERVICE / "alembic.ini", url=url)
        assert result.exit_code == 0, (command, result.output)
    assert "alembic: database at" in by_config.stderr


def test_without_path_or_config_the_alembic_ini_here_is_the_project(tmp_path, monkeypatch):
    monkeypatch.chdir(ALEMBIC_SERVICE)
    url = f"sqlite:///{tmp_path / 'service.db'}"
    result = run("plan", "--sql", "--dialect", "sqlite")
    assert result.exit_code == 0, result.output
    assert "-- crossfade plan: 0002_task_state / expand" in result.stdout
    assert run("expand", url=url).exit_code == 0
    assert run("check", url=url).exit_code == 3


@pytest.mark.parametrize("command", ["plan", "expand", "status", "check", "verify"])
def test_no_changes_given_is_a_one_line_usage_error(tmp_path, monkeypatch, command):
    monkeypatch.chdir(tmp_path)  # no alembic.ini here
    result = run(command, "--url", f"sqlite:///{tmp_path / 'x.db'}")
    assert result.exit_code == 2
    assert ("no changes given: name a change module or directory (PATH), or an Alembic project with "
            "-c/--config (there is no alembic.ini here)") in result.stderr
    assert not (tmp_path / "x.db").exists()


def test_path_and_config_together_are_refused_before_anything_runs(tmp_path):
    result = run("expand", CHANGES, "-c", ALEMBIC_SERVICE / "alembic.ini", url=f"sqlite:///{tmp_path / 'x.db'}")
    assert result.exit_code == 2
    assert "give PATH" in result.stderr and "or -c/--config" in result.stderr and "not both" in result.stderr
    assert not (tmp_path / "x.db").exists()


def test_a_config_file_that_does_not_exist_is_named(tmp_path):
    result = run("status", "-c", tmp_path / "nowhere.ini", url=f"sqlite:///{tmp_path / 'x.db'}")
    assert result.exit_code == 2
    assert "no such file:" in result.stderr and "nowhere.ini" in result.stderr


# --- CROSSFADE_URL wherever a database is taken ---------------------------------------------------------

def test_plan_reads_crossfade_url_and_leaves_out_the_changes_the_database_started(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'glance.db'}"
    seed_release_n(sa.create_engine(url), rows=3)
    monkeypatch.setenv("CROSSFADE_URL", url)
    planned = run("plan", CHANGES)
    assert planned.exit_code == 0 and "plan for sqlite" in planned.stdout and "plan for mariadb" not in planned.stdout
    assert "install triggers on images" in planned.stdout
    assert run("expand", CHANGES).exit_code == 0
    replanned = run("plan", CHANGES)
    assert "0001_visibility is expanded in this database; not planned" in replanned.stderr
    assert "install triggers on images" not in replanned.stdout


def test_plan_dialect_renders_offline_even_when_crossfade_url_names_another_database(tmp_path, monkeypatch):
    monkeypatch.setenv("CROSSFADE_URL", f"sqlite:///{tmp_path / 'glance.db'}")
    result = run("plan", CHANGES, "--sql", "--dialect", "mariadb")
    assert result.exit_code == 0, result.output
    assert "CREATE OR REPLACE TRIGGER crossfade_images_insert" in result.stdout
    assert not (tmp_path / "glance.db").exists()
    seed_release_n(sa.create_engine(f"sqlite:///{tmp_path / 'glance.db'}"), rows=1)
    mismatch = run("plan", CHANGES, "--dialect", "mariadb", "--url", f"sqlite:///{tmp_path / 'glance.db'}")
    assert mismatch.exit_code == 1  # an explicit --url must be the database --dialect names
    assert "--dialect mariadb does not match the sqlite database" in mismatch.stderr


def test_demo_reads_crossfade_url(tmp_path, monkeypatch):
    monkeypatch.setenv("CROSSFADE_URL", f"sqlite:///{tmp_path / 'demo.db'}")
    result = run("demo", "--rows", "20", "--keep")
    assert result.exit_code == 0, result.output
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'demo.db'}")
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM images")).scalar_one() >= 20
    engine.dispose()


def test_verify_never_takes_its_scratch_database_from_crossfade_url(tmp_path, monkeypatch):
    monkeypatch.setenv("CROSSFADE_URL", f"sqlite:///{tmp_path / 'production.db'}")
    result = run("verify", CHANGES)
    assert result.exit_code == 2
    assert "Missing option '--url'" in result.stderr
    assert not (tmp_path / "production.db").exists()


# --- plan --dialect mariadb / mysql: what each server really runs ----------------------------------------

def planned_statements(sql: str, phase: str) -> list[str]:
    """The statements `plan --sql` prints for `phase`, each as one string without its `;`."""
    section = sql.split(f"/ {phase}\n")[1].split("-- crossfade plan: ")[0]
    statements, current = [], []
    for line in section.splitlines():
        if line.startswith("--") or not line.strip():
            continue
        current.append(line)
        if line.endswith(";") and not (current[0].startswith("CREATE") and "BEGIN" in "\n".join(current)
                                       and line != "END;"):
            statements.append("\n".join(current).rstrip(";"))
            current = []
    return statements


def normalized(statement: str) -> str:
    return " ".join(statement.split())


@pytest.mark.parametrize("dialect_name", ["mysql"])
def test_plan_dialect_mariadb_prints_exactly_the_ddl_a_mariadb_run_executes(engine):
    seed_release_n(engine, rows=20)
    ran: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        own = "crossfade_state" in statement or "crossfade_lock" in statement
        if re.match(r"\s*(ALTER|CREATE|DROP|RENAME)\b", statement) and not own:
            ran.append(normalized(statement))

    planned = run("plan", CHANGES, "--sql", "--dialect", "mariadb").stdout
    sa.event.listen(sa.Engine, "after_cursor_execute", record)
    try:
        for phase in ("expand", "migrate", "contract"):
            assert run(phase, CHANGES, url=url_of(engine)).exit_code == 0
    finally:
        sa.event.remove(sa.Engine, "after_cursor_execute", record)
    expected = [normalized(s) for phase in ("expand", "contract") for s in planned_statements(planned, phase)]
    assert ran == expected
    assert any(s.startswith("CREATE OR REPLACE TRIGGER crossfade_images_insert") for s in ran)
    assert "ALTER TABLE images ADD COLUMN IF NOT EXISTS visibility VARCHAR(16), ALGORITHM=INSTANT" in ran


def test_plan_dialect_mysql_prints_what_mysql_needs_instead():
    mysql_sql = run("plan", CHANGES, "--sql", "--dialect", "mysql").stdout
    expand = planned_statements(mysql_sql, "expand")
    assert "-- crossfade plan for mysql\n" in mysql_sql
    assert "DROP TRIGGER IF EXISTS crossfade_images_insert" in expand  # MySQL has no CREATE OR REPLACE TRIGGER
    assert any(s.startswith("CREATE TRIGGER crossfade_images_insert") for s in expand)
    assert not any("OR REPLACE" in s or "IF NOT EXISTS" in s for s in expand)
    mariadb_sql = run("plan", CHANGES, "--sql", "--dialect", "MariaDB").stdout  # any case
    assert "-- crossfade plan for mysql (MariaDB)\n" in mariadb_sql
    assert "DROP TRIGGER IF EXISTS crossfade_images_insert" not in planned_statements(mariadb_sql, "expand")


def test_plan_without_a_dialect_renders_all_four_databases():
    result = run("plan", CHANGES)
    for name in ("postgresql", "mariadb", "mysql", "sqlite"):
        assert f"plan for {name} " in result.stdout


# --- a fresh Alembic project: init, revision, verify as is ----------------------------------------------

def fresh_project(tmp_path: Path, monkeypatch) -> tuple[Path, Path]:
    """`crossfade init` in an empty directory, then two revisions: release N's table, and a crossfade
    change filled in with one line."""
    monkeypatch.chdir(tmp_path)
    assert run("init").exit_code == 0
    first = Path(run("revision", "-m", "users").stdout.split("wrote ")[1].strip())
    second = Path(run("revision", "-m", "login becomes username").stdout.split("wrote ")[1].strip())
    marker = 'destructive ones (op.drop_*) in contract."""\n'
    first.write_text(first.read_text().replace(marker, marker + '    op.create_table("users", sa.Column("id", '
                                               'sa.Integer, primary_key=True), sa.Column("login", sa.String(40)))\n'))
    example = '    # ops.rename_column("users", "login", "username"),\n'
    assert example in second.read_text()
    second.write_text(second.read_text().replace(example, example.replace("# ", ""), 1))
    return first, second


def test_a_fresh_revision_carries_what_verify_needs_and_verifies_as_is(tmp_path, monkeypatch):
    _, second = fresh_project(tmp_path, monkeypatch)
    text = second.read_text()
    assert "metadata: sa.MetaData | None = None" in text and "metadata_n1: sa.MetaData | None = None" in text
    [simulated] = load_changes("alembic.ini").simulations
    assert set(simulated.release_n.tables["users"].columns.keys()) == {"id", "login"}
    assert set(simulated.release_n1.tables["users"].columns.keys()) == {"id", "username"}
    result = run("verify", "--url", f"sqlite:///{tmp_path / 'scratch.db'}", "--writes", "100", "--seed-rows", "20")
    assert result.exit_code == 0, result.output
    assert "crossfade verify:" in result.stdout


def test_init_env_py_reads_crossfade_url_so_alembic_and_crossfade_share_the_database(tmp_path, monkeypatch):
    first, _ = fresh_project(tmp_path, monkeypatch)
    url = f"sqlite:///{tmp_path / 'app.db'}"
    env_py = (tmp_path / "alembic" / "env.py").read_text()
    assert 'os.environ.get("CROSSFADE_URL")' in env_py
    upgraded = subprocess.run([sys.executable, "-m", "alembic", "upgrade", first.name.split("_")[0]],
                              capture_output=True, text=True, cwd=tmp_path, check=False,
                              env={**__import__("os").environ, "CROSSFADE_URL": url})
    assert upgraded.returncode == 0, upgraded.stderr
    assert sa.inspect(sa.create_engine(url)).has_table("users")
    # plan reads the same database: the revision alembic applied is not planned again
    monkeypatch.setenv("CROSSFADE_URL", url)
    planned = run("plan", "--sql")
    assert planned.exit_code == 0, planned.output
    assert f"-- crossfade plan: {first.name.split('_')[0]} /" not in planned.stdout
    assert planned.stdout.count("-- crossfade plan: ") == 4  # the second revision's four phases


def test_plan_without_a_database_says_it_plans_every_revision_from_base(tmp_path, monkeypatch):
    fresh_project(tmp_path, monkeypatch)
    monkeypatch.delenv("CROSSFADE_URL", raising=False)
    result = run("plan", "--sql", "--dialect", "sqlite")
    assert result.exit_code == 0, result.output
    assert "no database: every revision is planned from base, applied or not" in result.stderr
    assert result.stdout.count("-- crossfade plan: ") == 8


@pytest.mark.parametrize("command", ["expand", "status", "check", "plan"])
def test_alembic_inits_placeholder_url_names_the_fix_in_one_line(tmp_path, monkeypatch, command):
    fresh_project(tmp_path, monkeypatch)
    monkeypatch.delenv("CROSSFADE_URL", raising=False)
    result = run(command)
    assert result.exit_code == 1
    assert result.stderr.startswith("error: set sqlalchemy.url in alembic.ini or CROSSFADE_URL: alembic.ini still "
                                    "has the placeholder alembic init wrote (driver://user:pass@localhost/dbname)")
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Can't load plugin" not in result.output
