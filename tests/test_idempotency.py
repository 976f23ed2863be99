"""Injected failures: a phase killed after any of its steps is finished by simply running it again.

A recording hook first lists the phase's steps; then, for each step k, the phase runs with a
hook that raises right after step k (as a crash or a kill would), and a second, hook-free run
must finish the job. The final state is read back from the database: rows, columns, triggers.
"""

from __future__ import annotations

import glance_schema
import pytest
import sqlalchemy as sa

from crossfade import Change, ops
from crossfade.runner import Runner
from crossfade.state import Phase

ROWS = 12
BATCH = 4
PHASES = ("expand", "migrate", "contract", "rollback")


class Crash(Exception):
    """What the hook raises: the process died right after a step."""


def fresh_table(engine: sa.Engine) -> None:
    """Drop everything a previous round left, then create release N's table."""
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql("DROP SCHEMA public CASCADE")
            conn.exec_driver_sql("CREATE SCHEMA public")
        else:
            for table in sa.inspect(conn).get_table_names():
                conn.exec_driver_sql(f"DROP TABLE {engine.dialect.identifier_preparer.quote(table)}")
    glance_schema.create_images(engine, [{"id": i, "name": f"i{i}", "is_public": i % 2 == 0,
                                          "size": None if i % 3 == 0 else i} for i in range(1, ROWS + 1)])


def make_change() -> Change:
    """Two ops on one table, so every phase has several steps: Glance's visibility change and a
    NOT NULL with a fill."""
    return Change(
        glance_schema.visibility_op(),
        ops.set_not_null("images", "size", fill=0),
        id="visibility-and-size",
    )


def release_n_rows() -> dict[int, tuple]:
    return {i: (f"i{i}", i % 2 == 0, None if i % 3 == 0 else i) for i in range(1, ROWS + 1)}


def read(engine: sa.Engine, query: str) -> dict[int, tuple]:
    with engine.connect() as conn:
        return {r[0]: tuple(r[1:]) for r in conn.exec_driver_sql(query)}


def columns(engine: sa.Engine) -> dict[str, dict]:
    with engine.connect() as conn:
        return {c["name"]: c for c in sa.inspect(conn).get_columns("images")}


def crossfade_objects(runner: Runner, engine: sa.Engine) -> set[str]:
    with engine.connect() as conn:
        return set(runner.dialect.catalog_objects(conn, {"images"})) | set(runner.dialect.orphan_functions(conn))


def expected_object_count(engine: sa.Engine) -> int:
    # PostgreSQL: a function plus INSERT and UPDATE triggers; the others: two triggers.
    return 3 if engine.dialect.name == "postgresql" else 2


# --- the state each phase must leave -----------------------------------------------------------

def check_expanded(runner: Runner, change: Change, engine: sa.Engine) -> None:
    assert runner.load(change).phase is Phase.EXPANDED
    assert runner.problems(change) == []
    assert len(crossfade_objects(runner, engine)) == expected_object_count(engine)
    assert columns(engine)["visibility"]["nullable"] is True
    found = read(engine, f"SELECT id, name, is_public, size FROM images WHERE id <= {ROWS} ORDER BY id")
    assert {i: (n, bool(p), s) for i, (n, p, s) in found.items()} == release_n_rows()
    with engine.begin() as conn:  # the triggers work: release N's insert gets its visibility
        conn.exec_driver_sql("INSERT INTO images (id, name, is_public) VALUES (900, 'probe', true)")
        assert conn.exec_driver_sql("SELECT visibility, size FROM images WHERE id = 900").one() == ("public", 0)
        conn.exec_driver_sql("DELETE FROM images WHERE id = 900")


def check_migrated(runner: Runner, change: Change, engine: sa.Engine) -> None:
    assert runner.load(change).phase is Phase.MIGRATED
    assert runner.problems(change) == []
    assert read(engine, "SELECT id, visibility, size FROM images ORDER BY id") == {
        i: ("public" if i % 2 == 0 else "shared", 0 if i % 3 == 0 else i) for i in range(1, ROWS + 1)}


def check_contracted(runner: Runner, change: Change, engine: sa.Engine) -> None:
    assert runner.load(change).phase is Phase.CONTRACTED
    assert runner.problems(change) == []
    assert crossfade_objects(runner, engine) == set()
    cols = columns(engine)
    assert set(cols) == {"id", "name", "visibility", "size"}
    assert cols["visibility"]["nullable"] is False and "shared" in str(cols["visibility"]["default"])
    assert cols["size"]["nullable"] is False
    assert read(engine, "SELECT id, name, visibility, size FROM images ORDER BY id") == {
        i: (f"i{i}", "public" if i % 2 == 0 else "shared", 0 if i % 3 == 0 else i) for i in range(1, ROWS + 1)}


def check_rolled_back(runner: Runner, change: Change, engine: sa.Engine) -> None:
    assert runner.load(change).phase is Phase.ROLLED_BACK
    assert runner.problems(change) == []
    assert crossfade_objects(runner, engine) == set()
    cols = columns(engine)
    assert set(cols) == {"id", "name", "is_public", "size"}
    assert cols["is_public"]["nullable"] is False and cols["size"]["nullable"] is True
    found = read(engine, "SELECT id, name, is_public, size FROM images ORDER BY id")
    assert {i: (n, bool(p), s) for i, (n, p, s) in found.items()} == release_n_rows()


CHECKS = {"expand": check_expanded, "migrate": check_migrated, "contract": check_contracted,
          "rollback": check_rolled_back}


def prepare(engine: sa.Engine, phase: str) -> Change:
    """A fresh database brought to where `phase` starts."""
    fresh_table(engine)
    change, runner = make_change(), Runner(engine, batch_size=BATCH)
    if phase != "expand":
        runner.expand(change)
    if phase == "contract":
        runner.migrate(change)
    return change


def run(engine: sa.Engine, phase: str, change: Change, hook=None) -> Runner:
    runner = Runner(engine, batch_size=BATCH, on_step=hook)
    getattr(runner, phase)(change)
    return runner


def recorded_steps(engine: sa.Engine, phase: str) -> list[tuple[str, str]]:
    change, steps = prepare(engine, phase), []
    run(engine, phase, change, hook=lambda p, s: steps.append((p, s)))
    CHECKS[phase](Runner(engine), change, engine)
    return steps


def crash_after(k: int):
    calls = []

    def hook(phase: str, step: str) -> None:
        calls.append(step)
        if len(calls) == k:
            raise Crash(f"crash after step {k}: {phase}: {step}")
    return hook


@pytest.mark.parametrize("phase", PHASES)
def test_phase_interrupted_after_any_step_finishes_on_rerun(engine, phase):
    steps = recorded_steps(engine, phase)
    assert len(steps) >= 3, steps
    for k, (_, name) in enumerate(steps, start=1):
        change = prepare(engine, phase)
        with pytest.raises(Crash):
            run(engine, phase, change, hook=crash_after(k))
        try:
            runner = run(engine, phase, change)
            CHECKS[phase](runner, change, engine)
        except Exception as exc:
            raise AssertionError(f"{phase} crashed after step {k} ({name!r}), then rerun: {exc!r}") from exc


def test_interrupted_expand_can_be_rolled_back_instead(engine):
    steps = recorded_steps(engine, "expand")
    for k, (_, name) in enumerate(steps, start=1):
        change = prepare(engine, "expand")
        with pytest.raises(Crash):
            run(engine, "expand", change, hook=crash_after(k))
        try:
            runner = run(engine, "rollback", change)
            check_rolled_back(runner, change, engine)
        except Exception as exc:
            raise AssertionError(f"expand crashed after step {k} ({name!r}), then rollback: {exc!r}") from exc


def test_every_phase_step_is_reported(engine):
    """The hook sees DDL steps and state records alike, in order, for a whole upgrade."""
    fresh_table(engine)
    seen: list[tuple[str, str]] = []
    runner, change = Runner(engine, batch_size=BATCH, on_step=lambda p, s: seen.append((p, s))), make_change()
    runner.expand(change)
    runner.migrate(change)
    runner.contract(change)
    names = [s for _, s in seen]
    assert names[0] == "record expanding" and names[-1] == "record contracted"
    for marker in ("record expanded", "record migrating", "record migrated", "record contracting",
                   "install triggers on images", "drop triggers on images"):
        # MariaDB installs each trigger as a step of its own ("install triggers on images: ...")
        assert any(name == marker or name.startswith(marker + ":") for name in names), marker
    assert sum(s.startswith("batch of images") for s in names) == ROWS // BATCH  # the last reaches the largest key
    check_contracted(runner, change, engine)
