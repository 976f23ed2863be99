"""Every Keystone example (examples/keystone/k*/change.py, found when the tests are collected)
taken through a rolling upgrade the way an operator runs it, the `crossfade` command in a
subprocess, and through the simulator, on PostgreSQL, MariaDB and SQLite; and the Alembic
project examples/keystone/alembic, every revision, with the same commands.

What each example's change must make true is tested beside its operation (test_keystone_024.py
and the others); here the examples themselves must run as their README says.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from crossfade.loader import load_changes
from crossfade.testing import Settings, simulate
from crossfade.testing.values import ValueSource

ROOT = Path(__file__).resolve().parents[1]
KEYSTONE = ROOT / "examples" / "keystone"
EXAMPLES = sorted(KEYSTONE.glob("k*/change.py"))
PROJECT = KEYSTONE / "alembic" / "alembic.ini"
CHECK_UP_TO_DATE = 0
SEED_ROWS = 30


def crossfade(*args: str, url: str, check: bool = True) -> subprocess.CompletedProcess:
    """The `crossfade` command as an operator types it, in a process of its own."""
    env = {**os.environ, "CROSSFADE_URL": url, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-m", "crossfade.cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600, check=False)
    if check:
        assert done.returncode == 0, f"crossfade {' '.join(args)}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done


def url_of(engine: sa.Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def columns(engine: sa.Engine, table: str) -> set[str]:
    return {c["name"] for c in sa.inspect(engine).get_columns(table)}


def counts(engine: sa.Engine, tables: list[str]) -> dict[str, int]:
    with engine.connect() as conn:
        return {t: conn.execute(sa.select(sa.func.count()).select_from(sa.table(t))).scalar_one() for t in tables}


def seed_release_n(engine: sa.Engine, release_n: sa.MetaData, tables: list[str], values: dict) -> None:
    """Release N's `tables` and the tables their foreign keys point at, SEED_ROWS rows each, as
    release N's code would write them: keys unique, each foreign key pointing at a parent row
    (row i at parent i), other columns from the example's simulator values or by type."""
    wanted = _with_parents(release_n, tables)
    ordered = [t for t in release_n.sorted_tables if t.name in wanted]
    release_n.create_all(engine, tables=ordered)
    source, rng = ValueSource(values), random.Random(0)
    written: dict[str, list] = {}
    for table in ordered:
        rows = [_seed_row(table, i, source, rng, written) for i in range(SEED_ROWS)]
        with engine.begin() as conn:
            conn.execute(table.insert(), rows)
            written[table.name] = list(conn.execute(sa.select(table).order_by(*table.primary_key.columns)))


def _with_parents(metadata: sa.MetaData, tables: list[str]) -> set[str]:
    wanted, pending = set(), list(tables)
    while pending:
        name = pending.pop()
        if name in wanted:
            continue
        wanted.add(name)
        pending += [k.column.table.name for k in metadata.tables[name].foreign_keys]
    return wanted


def _seed_row(table: sa.Table, i: int, source: ValueSource, rng: random.Random, written: dict) -> dict:
    row = {}
    unique = {c.name for c in table.columns if c.unique} | {
        c.name for u in table.constraints if isinstance(u, sa.UniqueConstraint) for c in u.columns}
    for column in table.columns:
        key = next(iter(column.foreign_keys), None)
        if column.primary_key and column.autoincrement in (True, "auto") and isinstance(column.type, sa.Integer) \
                and len(table.primary_key.columns) == 1:
            continue  # the database numbers it
        if key is not None and written.get(key.column.table.name):
            parents = written[key.column.table.name]
            row[column.name] = getattr(parents[i % len(parents)], key.column.name)
        elif (column.primary_key or column.name in unique) and isinstance(column.type, sa.String):
            row[column.name] = f"{column.name}-{i}"[: column.type.length or None]
        elif column.primary_key or column.name in unique:
            row[column.name] = i + 1
        else:
            row[column.name] = source.value(rng, table, column)
    return row


@pytest.fixture(params=EXAMPLES, ids=[p.parent.name for p in EXAMPLES])
def example(request):
    loaded = load_changes(request.param)
    [change] = loaded.changes
    [simulated] = loaded.simulations
    assert simulated.release_n is not None and simulated.release_n1 is not None, \
        f"{request.param} must define metadata and metadata_n1"
    return request.param, change, simulated


def test_there_is_a_keystone_example_for_024():
    assert KEYSTONE / "k024_password_int_timestamps" / "change.py" in EXAMPLES


def test_each_example_runs_expand_migrate_contract_with_the_cli(engine, example):
    path, change, simulated = example
    tables = sorted(change.tables() & set(simulated.release_n.tables))
    seed_release_n(engine, simulated.release_n, tables, simulated.values)
    before = counts(engine, tables)
    url = url_of(engine)
    engine.dispose()

    assert crossfade("check", str(path), url=url, check=False).returncode != CHECK_UP_TO_DATE
    for phase in ("expand", "migrate", "contract"):
        crossfade(phase, str(path), url=url)
    assert crossfade("check", str(path), url=url, check=False).returncode == CHECK_UP_TO_DATE

    assert counts(engine, tables) == before  # no row lost on the way
    for name in sorted(change.tables() & set(simulated.release_n1.tables)):
        assert columns(engine, name) == set(simulated.release_n1.tables[name].columns.keys()), name


def test_each_example_passes_the_simulator(engine, example):
    _, change, simulated = example
    url = url_of(engine)
    engine.dispose()
    result = simulate(change, simulated.release_n, simulated.release_n1, url,
                      Settings(values=simulated.values, seed_rows=SEED_ROWS, writes_per_phase=150))
    assert result.ok, {n: (c.summary, c.details[:3]) for n, c in result.checks.items() if not c.ok}


# --- the Alembic project ------------------------------------------------------------------------

def project_gaps() -> list[str]:
    """What keeps examples/keystone/alembic from running: its ini, env.py, or a revision that
    another names as its down_revision (each helper's branch holds its own revision)."""
    if not PROJECT.is_file() or not (PROJECT.parent / "env.py").is_file():
        return [f"{PROJECT.parent} has no alembic.ini and env.py"]
    from alembic.config import Config
    from alembic.script import ScriptDirectory
    from alembic.script.revision import RevisionError
    from alembic.util import CommandError

    try:
        list(ScriptDirectory.from_config(Config(str(PROJECT))).walk_revisions())
    except (CommandError, RevisionError, KeyError) as exc:  # a down_revision whose file is absent
        return [str(exc).splitlines()[0]]
    return []


GAPS = project_gaps()
whole_project = pytest.mark.skipif(bool(GAPS), reason=f"the Keystone Alembic project is incomplete: {GAPS}")


def revision_modules():
    """Each crossfade revision's change and module, oldest first."""
    loaded = load_changes(PROJECT)
    return list(zip(loaded.changes, loaded.simulations))


def create_release_n(engine: sa.Engine) -> None:
    """The project starts at Keystone's release N: the tables its revisions change exist already
    (made by Keystone's earlier migrations). Each revision's release N tables, oldest revision
    first; a table an older revision's models hold already is left as made."""
    for _, simulated in revision_modules():
        simulated.release_n.create_all(engine, checkfirst=True)


@whole_project
def test_the_alembic_project_goes_from_release_n_to_head_with_the_cli(engine):
    create_release_n(engine)
    local_user = sa.Table("local_user", sa.MetaData(), autoload_with=engine)
    password = sa.Table("password", sa.MetaData(), autoload_with=engine)
    with engine.begin() as conn:  # a Keystone password written by release N, to follow through
        if sa.inspect(conn).has_table("user"):  # keystone_014's models: local_user.user_id -> user.id
            conn.execute(sa.table("user", sa.column("id")).insert().values(id="u1"))
        conn.execute(local_user.insert().values(id=1, user_id="u1", domain_id="default", name="admin"))
        conn.execute(password.insert().values(local_user_id=1, password="x", self_service=False,
                                              created_at=dt.datetime(2017, 6, 23, 10, 11, 12)))
    url = url_of(engine)
    engine.dispose()
    ini = str(PROJECT)
    rounds = 0
    while crossfade("check", ini, url=url, check=False).returncode != CHECK_UP_TO_DATE:
        rounds += 1
        assert rounds <= len(revision_modules()), crossfade("status", ini, url=url, check=False).stdout
        for phase in ("expand", "migrate", "contract"):
            crossfade(phase, ini, url=url)

    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one() == "keystone_024"
        assert conn.execute(sa.text("SELECT created_at_int FROM password")).scalar_one() == 1498212672000000
    for change, simulated in revision_modules():
        for name in sorted(change.tables() & set(simulated.release_n1.tables)):
            assert columns(engine, name) >= set(simulated.release_n1.tables[name].columns.keys()), (change.id, name)


@whole_project
def test_crossfade_verify_proves_every_revision_of_the_alembic_project(engine):
    url = url_of(engine)
    engine.dispose()
    done = crossfade("verify", str(PROJECT), "--url", url, "--writes", "150", "--seed-rows", str(SEED_ROWS),
                     url=url, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
