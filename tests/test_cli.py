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
