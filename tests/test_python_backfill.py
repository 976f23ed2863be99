"""compute_column: values only Python can compute, filled in migrate batch by batch from the
user's callable, resumably and idempotently, past the change's block_writes, on SQLite,
PostgreSQL and MariaDB."""

from __future__ import annotations

import hashlib

import pytest
import sqlalchemy as sa

from crossfade import Change, ops
from crossfade.compute import ComputeError
from crossfade.errors import ValidationError
from crossfade.plan import plan
from crossfade.runner import Runner

metadata = sa.MetaData()
secrets = sa.Table(
    "secrets", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("plain", sa.String(40)),
)
ROWS = 40


def digest(text: str | None) -> str | None:
    return None if text is None else hashlib.sha256(text.encode()).hexdigest()[:16]


class Digests:
    """The compute callable: records each batch it was given (the rows' ids)."""

    def __init__(self, fail_on_call: int | None = None):
        self.batches: list[list[int]] = []
        self.fail_on_call = fail_on_call

    def __call__(self, rows):
        self.batches.append([r.id for r in rows])
        if len(self.batches) == self.fail_on_call:
            raise KeyboardInterrupt("killed mid-batch")  # like a kill: nothing of the batch commits
        return [(digest(r.plain), len(r.plain or "")) for r in rows]


def change_for(compute, block=None) -> Change:
    return Change(
        ops.compute_column("secrets", [sa.Column("hashed", sa.String(16)), sa.Column("size", sa.Integer)],
                           compute, reads=["plain"]),
        block or ops.block_writes("secrets", insert=True, update=lambda new, old: new.hashed.is_(None)),
        id="hash_secrets")


def seeded(engine) -> None:
    with engine.begin() as conn:
        metadata.create_all(conn)
        conn.execute(secrets.insert(), [{"id": i, "plain": None if i % 13 == 0 else f"secret {i}"}
                                        for i in range(1, ROWS + 1)])


def stored(engine) -> dict[int, tuple]:
    with engine.connect() as conn:
        return {r.id: (r.plain, r.hashed, r.size) for r in conn.execute(sa.text(
            "SELECT id, plain, hashed, size FROM secrets"))}


def expected(i: int, plain: str | None) -> tuple:
    return plain, digest(plain), len(plain or "")


def test_migrate_computes_every_row_in_batches_from_the_callable(engine):
    seeded(engine)
    compute = Digests()
    change = change_for(compute)
    runner = Runner(engine, batch_size=7)
    runner.expand(change)
    runner.migrate(change)
    assert all(row == expected(i, row[0]) for i, row in stored(engine).items())
    assert len(compute.batches) == 6 and max(len(b) for b in compute.batches) <= 7
    assert sorted(i for b in compute.batches for i in b) == list(range(1, ROWS + 1))  # each row once
    assert runner.status(change).backfill["secrets (computed hashed, size)"] == 1.0


def test_a_kill_mid_batch_then_a_rerun_finishes_without_computing_a_done_row_again(engine):
    seeded(engine)
    change = change_for(Digests(fail_on_call=3))
    runner = Runner(engine, batch_size=7)
    runner.expand(change)
    with pytest.raises(KeyboardInterrupt):
        runner.migrate(change)
    halfway = stored(engine)
    assert sum(1 for row in halfway.values() if row[1] is not None or row[2] is not None) == 14  # two batches
    rerun = Digests()
    runner.migrate(change_for(rerun))
    assert all(row == expected(i, row[0]) for i, row in stored(engine).items())
    assert sorted(i for b in rerun.batches for i in b) == list(range(15, ROWS + 1))


def test_rows_release_n1_computed_itself_are_left_alone(engine):
    seeded(engine)
    change = change_for(Digests())
    runner = Runner(engine, batch_size=10)
    runner.expand(change)
    with engine.begin() as conn:  # release N+1 encrypts with its own key
        conn.execute(sa.text("UPDATE secrets SET hashed = 'n1', size = 0 WHERE id = 5"))
    runner.migrate(change)
    rows = stored(engine)
    assert rows[5] == ("secret 5", "n1", 0)
    assert rows[6] == expected(6, "secret 6")


def test_the_backfill_writes_past_a_block_of_every_write(engine):
    """The block refuses the applications' writes, not crossfade's own (on SQLite the batch takes
    the blocking trigger down inside its transaction and puts it back); it is intact after."""
    seeded(engine)
    change = change_for(Digests(), ops.block_writes("secrets", insert=True, update=True, delete=True))
    runner = Runner(engine, batch_size=9)
    runner.expand(change)
    runner.migrate(change)
    assert all(row == expected(i, row[0]) for i, row in stored(engine).items())
    assert runner.problems(change) == []  # the triggers are there, matching their checksums
    for statement in ("UPDATE secrets SET plain = 'x' WHERE id = 1", "DELETE FROM secrets WHERE id = 2"):
        with pytest.raises(sa.exc.DBAPIError, match="refused during a rolling upgrade"), engine.begin() as conn:
            conn.execute(sa.text(statement))
    runner.contract(change)
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM secrets WHERE id = 2"))


def test_contract_makes_the_computed_columns_not_null_once_every_row_has_them(engine):
    with engine.begin() as conn:
        metadata.create_all(conn)
        conn.execute(secrets.insert(), [{"id": i, "plain": f"s{i}"} for i in range(1, 11)])
    change = Change(ops.compute_column("secrets", sa.Column("hashed", sa.String(16), nullable=False),
                                       lambda rows: [digest(r.plain) for r in rows], reads="plain"),
                    ops.block_writes("secrets", insert=True), id="hash_not_null")
    runner = Runner(engine)
    for phase in (runner.expand, runner.migrate, runner.contract):
        phase(change)
    column = next(c for c in sa.inspect(engine).get_columns("secrets") if c["name"] == "hashed")
    assert column["nullable"] is False


def test_a_callable_returning_the_wrong_number_of_values_stops_migrate_with_a_clear_error(engine):
    seeded(engine)
    change = change_for(lambda rows: [("x", 1)])
    runner = Runner(engine, batch_size=5)
    runner.expand(change)
    with pytest.raises(ComputeError, match="returned 1 value\\(s\\) for a batch of 5 row\\(s\\)"):
        runner.migrate(change)
    assert all(row[1] is None for row in stored(engine).values())  # the batch rolled back


def test_a_python_backfill_without_a_block_is_refused_before_any_ddl(engine):
    seeded(engine)
    change = Change(ops.compute_column("secrets", sa.Column("hashed", sa.String(16)), Digests(), reads="plain"),
                    id="unblocked")
    with pytest.raises(ValidationError, match="no trigger can compute it for release N's writes"):
        Runner(engine).expand(change)
    assert "crossfade_state" not in sa.inspect(engine).get_table_names()
    assert {c["name"] for c in sa.inspect(engine).get_columns("secrets")} == {"id", "plain"}


def test_a_python_backfill_reading_a_missing_column_is_refused_before_any_ddl(engine):
    seeded(engine)
    change = Change(ops.compute_column("secrets", sa.Column("hashed", sa.String(16)), Digests(), reads="nope"),
                    ops.block_writes("secrets", insert=True), id="bad_reads")
    with pytest.raises(ValidationError, match="secrets.nope"):
        Runner(engine).expand(change)
    assert "crossfade_state" not in sa.inspect(engine).get_table_names()


def test_plan_shows_the_python_backfill_and_the_batch_it_reads(dialect_name):
    text = plan([change_for(Digests())], dialect_name, metadata)
    assert "backfill secrets (computed hashed, size)" in text
    assert "Python computes hashed, size from each batch's rows (plain)" in text
    assert "hashed IS NULL AND" in text


def test_a_table_keyed_by_two_columns_is_computed_row_by_row(engine):
    pairs = sa.Table("pairs", sa.MetaData(), sa.Column("a", sa.Integer, primary_key=True, autoincrement=False),
                     sa.Column("b", sa.String(10), primary_key=True), sa.Column("plain", sa.String(40)))
    with engine.begin() as conn:
        pairs.metadata.create_all(conn)
        conn.execute(pairs.insert(), [{"a": i % 3, "b": f"k{i}", "plain": f"p{i}"} for i in range(20)])
    change = Change(ops.compute_column("pairs", sa.Column("hashed", sa.String(16)),
                                       lambda rows: [digest(f"{r.a}/{r.b}/{r.plain}") for r in rows], reads="plain"),
                    ops.block_writes("pairs", insert=True), id="hash_pairs")
    runner = Runner(engine, batch_size=6)
    runner.expand(change)
    runner.migrate(change)
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT a, b, plain, hashed FROM pairs")).all()
    assert len(rows) == 20 and all(r.hashed == digest(f"{r.a}/{r.b}/{r.plain}") for r in rows)


def test_more_rows_than_one_statement_takes_are_written_in_slices(engine, monkeypatch):
    from crossfade.dialects.base import TriggerDialect

    monkeypatch.setattr(TriggerDialect, "rows_per_update", 4)  # MySQL's own is more; the others' 1
    monkeypatch.setattr(type(Runner(engine).dialect), "rows_per_update", 4)
    seeded(engine)
    runner = Runner(engine, batch_size=15)
    runner.expand(change_for(Digests()))
    runner.migrate(change_for(Digests()))
    assert all(row == expected(i, row[0]) for i, row in stored(engine).items())
