"""Injected failures for the cross-table operations (rename_table, split_table, move_column,
derive_column): a phase killed right after any of its steps is finished by running it again, and
an expand killed anywhere can be rolled back instead (see test_idempotency.py for the single-table version).

After each phase the runner's own verification must pass and the rows must read back as each
release expects them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
import sqlalchemy as sa
from test_idempotency import Crash, crash_after

from crossfade import Change, ops
from crossfade.runner import Runner
from crossfade.state import Phase
from crossfade.testing.databases import empty_database

BATCH = 3
ROWS = 7


@dataclass
class Case:
    change: Change
    build: Callable[[sa.Engine], None]
    # query -> rows, as release N+1 reads them once migrated (and after contract)
    migrated: dict[str, list[tuple]]
    # query -> rows, as release N reads them after a rollback
    rolled_back: dict[str, list[tuple]]


def _users(metadata: sa.MetaData, *extra: sa.Column) -> sa.Table:
    return sa.Table("users", metadata, sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("name", sa.String(20), nullable=False), *extra)


def build_users(engine: sa.Engine) -> None:
    metadata = sa.MetaData()
    users = _users(metadata, sa.Column("bio", sa.String(20)))
    metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(users.insert(), [{"id": i, "name": f"u{i}", "bio": None if i % 3 == 0 else f"b{i}"}
                                      for i in range(1, ROWS + 1)])


def build_orgs(engine: sa.Engine) -> None:
    metadata = sa.MetaData()
    orgs = sa.Table("orgs", metadata, sa.Column("id", sa.Integer, primary_key=True))
    users = _users(metadata, sa.Column("org_id", sa.Integer, sa.ForeignKey("orgs.id"), index=True),
                   sa.Column("org_name", sa.String(20)))
    metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(orgs.insert(), [{"id": i} for i in (1, 2, 3)])
        conn.execute(users.insert(), [{"id": i, "name": f"u{i}", "org_id": i % 3 + 1, "org_name": f"org{i % 3 + 1}"}
                                      for i in range(1, ROWS + 1)])


def build_logins(engine: sa.Engine) -> None:
    """Users with local and remote logins, for derive_column (users.domain from the logins)."""
    metadata = sa.MetaData()
    users = _users(metadata)
    logins = {name: sa.Table(name, metadata, sa.Column("id", sa.Integer, primary_key=True),
                             sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id"), index=True),
                             sa.Column("domain", sa.String(20)))
              for name in ("local_logins", "remote_logins")}
    metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(users.insert(), [{"id": i, "name": f"u{i}"} for i in range(1, ROWS + 1)])
        conn.execute(logins["local_logins"].insert(), [{"user_id": i, "domain": f"d{i}"} for i in range(1, ROWS + 1, 2)])
        conn.execute(logins["remote_logins"].insert(), [{"user_id": i, "domain": f"r{i}"} for i in (2, 4)])


def _domain(i: int) -> str | None:
    return f"d{i}" if i % 2 == 1 else f"r{i}" if i in (2, 4) else None


USERS = [(i, f"u{i}", None if i % 3 == 0 else f"b{i}") for i in range(1, ROWS + 1)]

CASES = {
    "rename_table": Case(
        Change(ops.rename_table("users", "accounts"), id="crash-rename"), build_users,
        {"SELECT id, name, bio FROM accounts ORDER BY id": USERS},
        {"SELECT id, name, bio FROM users ORDER BY id": USERS}),
    "split_table": Case(
        Change(ops.split_table("users", "profiles", ["bio"]), id="crash-split"), build_users,
        {"SELECT id, bio FROM profiles ORDER BY id": [(i, b) for i, _, b in USERS if b is not None]},
        {"SELECT id, name, bio FROM users ORDER BY id": USERS}),
    "derive_column": Case(
        Change(ops.derive_column("users", sa.Column("domain", sa.String(20)), sources=[
            ("local_logins", "domain", "user_id"), ("remote_logins", "domain", "user_id")]), id="crash-derive"),
        build_logins,
        {"SELECT id, domain FROM users ORDER BY id": [(i, _domain(i)) for i in range(1, ROWS + 1)]},
        {"SELECT id, name FROM users ORDER BY id": [(i, f"u{i}") for i in range(1, ROWS + 1)]}),
    "move_column": Case(
        Change(ops.move_column("users", "org_name", to="orgs", via="org_id", new="name"), id="crash-move"),
        build_orgs,
        {"SELECT id, name FROM orgs ORDER BY id": [(1, "org1"), (2, "org2"), (3, "org3")]},
        {"SELECT id, org_name FROM users ORDER BY id": [(i, f"org{i % 3 + 1}") for i in range(1, ROWS + 1)]}),
}

PHASE_AFTER = {"expand": Phase.EXPANDED, "migrate": Phase.MIGRATED, "contract": Phase.CONTRACTED,
               "rollback": Phase.ROLLED_BACK}


def prepare(engine: sa.Engine, case: Case, phase: str) -> None:
    empty_database(engine)
    engine.dispose()  # MariaDB: pooled sessions lose their database when it is dropped
    case.build(engine)
    runner = Runner(engine, batch_size=BATCH)
    if phase != "expand":
        runner.expand(case.change)
    if phase == "contract":
        runner.migrate(case.change)


def reads(engine: sa.Engine, queries: dict[str, list[tuple]]) -> dict[str, list[tuple]]:
    with engine.connect() as conn:
        return {query: [tuple(r) for r in conn.exec_driver_sql(query)] for query in queries}


def check(engine: sa.Engine, case: Case, phase: str) -> None:
    runner = Runner(engine)
    assert runner.load(case.change).phase is PHASE_AFTER[phase]
    assert runner.problems(case.change) == []
    if phase in ("migrate", "contract"):
        assert reads(engine, case.migrated) == case.migrated
    if phase == "rollback":
        assert reads(engine, case.rolled_back) == case.rolled_back


def run(engine: sa.Engine, case: Case, phase: str, hook=None) -> None:
    getattr(Runner(engine, batch_size=BATCH, on_step=hook), phase)(case.change)


def steps_of(engine: sa.Engine, case: Case, phase: str) -> list[str]:
    prepare(engine, case, phase)
    steps: list[str] = []
    run(engine, case, phase, hook=lambda _, step: steps.append(step))
    check(engine, case, phase)
    return steps


@pytest.mark.parametrize("phase", ["expand", "migrate", "contract", "rollback"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_a_cross_table_phase_killed_after_any_step_finishes_on_rerun(engine, name, phase):
    case = CASES[name]
    steps = steps_of(engine, case, phase)
    assert len(steps) >= 2, steps
    for k, step in enumerate(steps, start=1):
        prepare(engine, case, phase)
        with pytest.raises(Crash):
            run(engine, case, phase, hook=crash_after(k))
        try:
            run(engine, case, phase)
            check(engine, case, phase)
        except Exception as exc:
            raise AssertionError(f"{name}: {phase} killed after step {k} ({step!r}), then rerun: {exc!r}") from exc


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_cross_table_expand_killed_anywhere_can_be_rolled_back(engine, name):
    case = CASES[name]
    for k, step in enumerate(steps_of(engine, case, "expand"), start=1):
        prepare(engine, case, "expand")
        with pytest.raises(Crash):
            run(engine, case, "expand", hook=crash_after(k))
        try:
            run(engine, case, "rollback")
            check(engine, case, "rollback")
        except Exception as exc:
            raise AssertionError(f"{name}: expand killed after step {k} ({step!r}), then rollback: {exc!r}") from exc
