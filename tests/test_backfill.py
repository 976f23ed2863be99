"""The backfill (migrate): batches sized by their duration or fixed, checkpointed, resumable, and
on SQLite resting long enough for the application's writers to get the lock. Real databases;
batch durations are scripted where a test asserts on sizes, never measured against a deadline.
"""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import glance_schema
import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from crossfade import backfill
from crossfade.backfill import AdaptiveBatches, BackfillOptionError, FixedBatches, Progress
from crossfade.change import Change
from crossfade.cli import app
from crossfade.dialects import for_dialect
from crossfade.runner import Runner
from crossfade.schema import Schema
from crossfade.state import Phase

GLANCE_CHANGES = str(Path(__file__).resolve().parents[1] / "examples" / "glance" / "changes")

# sqlite3_busy_timeout's sleeps between a waiting writer's tries (SQLite's main.c), then 100 ms.
SQLITE_BUSY_DELAYS = [0.001, 0.002, 0.005, 0.010, 0.015, 0.020, 0.025, 0.025, 0.025, 0.050, 0.050]


class Interrupt(Exception):
    pass


class ScriptedClock:
    """A clock under which batch k takes durations[k] seconds (backfill_table reads the clock
    once before and once after each batch)."""

    def __init__(self, durations):
        self.durations = iter(durations)
        self.now = 0.0
        self.readings = 0

    def __call__(self) -> float:
        self.readings += 1
        if self.readings % 2 == 0:
            self.now += next(self.durations)
        return self.now


def expanded_images(engine: sa.Engine, rows: int) -> Change:
    """Release N's images with ids 1..rows, expanded for Glance's visibility change."""
    glance_schema.create_images(engine, [{"id": i, "name": f"i{i}", "is_public": i % 2 == 0, "size": i}
                                         for i in range(1, rows + 1)])
    change = glance_schema.visibility_change()
    Runner(engine).expand(change)
    return change


def filled_ids(engine: sa.Engine) -> list[int]:
    with engine.connect() as conn:
        return list(conn.execute(sa.text("SELECT id FROM images WHERE visibility IS NOT NULL ORDER BY id")).scalars())


def assert_backfilled(engine: sa.Engine, rows: int) -> None:
    with engine.connect() as conn:
        found = dict(conn.execute(sa.text("SELECT id, visibility FROM images ORDER BY id")).all())
    assert found == {i: "public" if i % 2 == 0 else "shared" for i in range(1, rows + 1)}


def backfill_images(engine: sa.Engine, change: Change, **options) -> tuple[list[Progress], list[dict]]:
    """backfill_table on the images table; returns each batch's progress and saved checkpoint."""
    with engine.connect() as conn:
        table_sync = change.table_syncs(Schema.reflect(conn, change.tables()))["images"]
    progress: list[Progress] = []
    saved: list[dict] = []
    backfill.backfill_table(engine, for_dialect(engine.dialect), table_sync, {},
                            lambda conn, checkpoint: saved.append(checkpoint),
                            on_batch=progress.append, **options)
    return progress, saved


def saved_checkpoint(engine: sa.Engine, change: Change) -> dict:
    with engine.connect() as conn:
        saved = conn.execute(sa.text("SELECT checkpoint FROM crossfade_state WHERE change_id = :c"),
                             {"c": change.id}).scalar_one()
    return json.loads(saved)["images"]


def one_range(checkpoint: dict) -> dict:
    """A one-job checkpoint as {"last", "done", "total", "complete"}: its one range's last key."""
    [single] = checkpoint["ranges"]
    return {"last": single["last"], "done": checkpoint["done"], "total": checkpoint["total"],
            "complete": checkpoint["complete"]}


# --- batch sizes -------------------------------------------------------------------------------

def test_adaptive_batches_grow_while_faster_than_the_target_and_shrink_while_slower(engine):
    change = expanded_images(engine, 400)
    # Target 50 ms. Batches 1-4 take 10 ms (size doubles, the most per step, capped at 80 rows);
    # batch 5 takes 1.5625x the target (x 0.8: halfway, geometrically, to the 1 / 1.5625 that
    # would have hit it); batches 6-9 take 400 ms (size halves, the most per step, down to 5
    # rows); batch 10 is on target (same size); then fast again.
    durations = itertools.chain([0.01] * 4, [0.078125], [0.4] * 4, [0.05], itertools.repeat(0.01))
    progress, saved = backfill_images(engine, change,
                                      batches=AdaptiveBatches(0.05, rows=10, min_rows=5, max_rows=80),
                                      clock=ScriptedClock(durations), sleep=lambda seconds: None)

    assert [p.batch_size for p in progress] == [10, 20, 40, 80, 80, 64, 32, 16, 8, 5, 5, 10, 20, 40]
    assert [p.done for p in progress] == [10, 30, 70, 150, 230, 294, 326, 342, 350, 355, 360, 370, 390, 400]
    assert all(p.total == 400 for p in progress)
    assert [c["ranges"][0]["last"] for c in saved[:-1]] == [[p.done] for p in progress[:-1]]
    assert one_range(saved[-1]) == {"last": [400], "done": 400, "total": 400, "complete": True}
    assert_backfilled(engine, 400)


def test_runner_batches_adapt_to_batch_seconds(engine):
    change = expanded_images(engine, 2000)
    sizes: list[int] = []
    # Every real batch takes far longer than a nanosecond: each is half the previous one, down
    # to the smallest batch.
    Runner(engine, batch_seconds=1e-9, on_progress=lambda p: sizes.append(p.batch_size)).migrate(change)
    assert sizes == [1000, 500, 250, 125, 62, 31, 16, 10, 10]
    assert backfill.MIN_BATCH_ROWS == 10
    assert_backfilled(engine, 2000)


def test_runner_batches_grow_towards_a_long_batch_seconds(engine):
    change = expanded_images(engine, 3000)
    sizes: list[int] = []
    Runner(engine, batch_seconds=3600, on_progress=lambda p: sizes.append(p.batch_size)).migrate(change)
    assert sizes == [1000, 2000]  # the second reaches the largest key: the table is done
    assert_backfilled(engine, 3000)


def test_explicit_batch_size_keeps_every_batch_at_that_size(engine):
    change = expanded_images(engine, 30)
    seen: list[Progress] = []
    Runner(engine, batch_size=7, on_progress=seen.append).migrate(change)
    assert [p.batch_size for p in seen] == [7] * 5
    assert [p.done for p in seen] == [7, 14, 21, 28, 30]
    assert_backfilled(engine, 30)


# --- checkpoints -------------------------------------------------------------------------------

def test_interrupted_adaptive_backfill_resumes_after_its_checkpoint_and_fills_each_row_once(engine):
    change = expanded_images(engine, 3000)
    done: list[int] = []

    def check_batch(progress: Progress) -> None:
        # Each batch filled exactly the rows after the previous checkpoint, up to its own.
        assert filled_ids(engine) == list(range(1, progress.done + 1))
        done.append(progress.done)

    def stop_after_three_batches(phase: str, step: str) -> None:
        if step.startswith("batch of") and len(done) == 3:
            raise Interrupt(step)

    with pytest.raises(Interrupt):
        Runner(engine, batch_seconds=1e-9, on_progress=check_batch, on_step=stop_after_three_batches).migrate(change)
    assert done == [1000, 1500, 1750]  # 1000, 500, 250 rows: each batch half the last
    assert one_range(saved_checkpoint(engine, change)) == {"last": [1750], "done": 1750, "total": 3000,
                                                           "complete": False}
    assert Runner(engine).load(change).phase is Phase.MIGRATING
    assert Runner(engine).status(change).backfill == {"images": pytest.approx(1750 / 3000)}

    done.clear()
    Runner(engine, batch_seconds=1e-9, on_progress=check_batch).migrate(change)
    assert done == [2750, 3000]  # a fresh start at 1000 rows, then the 250 left
    assert one_range(saved_checkpoint(engine, change)) == {"last": [3000], "done": 3000, "total": 3000,
                                                           "complete": True}
    assert Runner(engine).load(change).phase is Phase.MIGRATED
    assert Runner(engine).status(change).backfill == {"images": 1.0}
    assert_backfilled(engine, 3000)


def test_a_batch_commits_with_its_checkpoint_or_not_at_all(engine):
    change = expanded_images(engine, 30)
    with engine.connect() as conn:
        table_sync = change.table_syncs(Schema.reflect(conn, change.tables()))["images"]
    saved: list[dict] = []

    def save(conn: sa.Connection, checkpoint: dict) -> None:
        if saved:
            raise Interrupt("the second checkpoint fails")
        saved.append(checkpoint)

    with pytest.raises(Interrupt):
        backfill.backfill_table(engine, for_dialect(engine.dialect), table_sync, {}, save,
                                batches=FixedBatches(10))
    assert filled_ids(engine) == list(range(1, 11))  # the second batch rolled back with its checkpoint

    progress, _ = backfill_images(engine, change, batches=FixedBatches(10))
    assert [p.done for p in progress] == [10, 20, 30]
    assert_backfilled(engine, 30)


# --- letting writers in ------------------------------------------------------------------------

def next_sqlite_try(waited: float) -> float:
    """Seconds until a writer that has waited `waited` seconds for SQLite's lock tries again."""
    tried_at = 0.0
    for delay in itertools.chain(SQLITE_BUSY_DELAYS, itertools.repeat(0.100)):
        tried_at += delay
        if tried_at >= waited:
            return tried_at - waited
    raise AssertionError("unreachable")


def test_sqlite_rests_after_each_batch_until_every_waiting_writer_has_tried_again(engine, dialect_name):
    change = expanded_images(engine, 900)
    durations = [0.002, 0.004, 0.009, 0.02, 0.04, 0.05, 0.06, 0.09, 0.15, 0.4]
    rests: list[float] = []
    backfill_images(engine, change, batches=FixedBatches(100), clock=ScriptedClock(durations), sleep=rests.append)

    if dialect_name != "sqlite":
        assert rests == []  # row locks: a writer waits only for the batch holding its row
        return
    assert len(rests) == 8  # none after the last batch (the ninth: it reached the largest key)
    for took, rest in zip(durations, rests):
        for started_waiting in [took * k / 100 for k in range(100)]:
            assert next_sqlite_try(took - started_waiting) <= rest, (took, started_waiting, rest)
        assert rest <= took + 0.01  # and it is a rest, not a stop


@pytest.mark.parametrize("dialect_name", ["postgresql"])
def test_postgresql_plans_every_batch_for_its_own_key_range(engine):
    """psycopg prepares a statement run five times; a generic plan, made once for any key range,
    once scanned a whole 800,000-row table for every 10-row batch."""
    change = expanded_images(engine, 300)
    one_connection = sa.create_engine(engine.url, pool_size=1, max_overflow=0)
    try:
        backfill_images(one_connection, change, batches=FixedBatches(10))
        with one_connection.connect() as conn:
            custom, generic = conn.execute(sa.text(
                "SELECT coalesce(sum(custom_plans), 0), coalesce(sum(generic_plans), 0) FROM pg_prepared_statements"
                " WHERE statement LIKE 'UPDATE images%'")).one()
    finally:
        one_connection.dispose()
    assert_backfilled(engine, 300)
    assert custom >= 20 and generic == 0  # prepared from the sixth batch on, each planned anew


@pytest.mark.parametrize("pause", [0.0, 0.01])
def test_an_explicit_pause_replaces_the_default_rest(engine, pause):
    change = expanded_images(engine, 300)
    rests: list[float] = []
    backfill_images(engine, change, batches=FixedBatches(100), pause=pause,
                    clock=ScriptedClock(itertools.repeat(0.05)), sleep=rests.append)
    assert rests == ([pause] * 2 if pause else [])  # none after the third batch, which reached the end


# --- options -----------------------------------------------------------------------------------

BAD_OPTIONS = [
    ({"batch_size": 0}, "batch_size"), ({"batch_size": -5}, "batch_size"), ({"batch_size": 2.5}, "batch_size"),
    ({"batch_size": True}, "batch_size"), ({"batch_seconds": 0}, "batch_seconds"),
    ({"batch_seconds": -0.05}, "batch_seconds"), ({"batch_seconds": math.nan}, "batch_seconds"),
    ({"batch_seconds": math.inf}, "batch_seconds"), ({"pause": -1}, "pause"), ({"pause": math.nan}, "pause"),
    ({"batch_size": 100, "batch_seconds": 0.05}, "batch_size and batch_seconds"),
]


def test_bad_backfill_options_are_refused_before_anything_runs(engine):
    change = expanded_images(engine, 30)
    for options, named in BAD_OPTIONS:
        with pytest.raises(BackfillOptionError, match=f"^{named} ") as refused:
            Runner(engine, **options)
        assert isinstance(refused.value, ValueError)
    assert filled_ids(engine) == []
    assert Runner(engine).load(change).phase is Phase.EXPANDED


@pytest.mark.parametrize("args, option", [
    (["--batch-size", "0"], "--batch-size"), (["--batch-seconds", "0"], "--batch-seconds"),
    (["--batch-seconds", "-1"], "--batch-seconds"), (["--batch-seconds", "nan"], "--batch-seconds"),
    (["--pause", "-0.5"], "--pause"), (["--batch-size", "100", "--batch-seconds", "0.05"], "--batch-seconds"),
])
def test_migrate_command_refuses_bad_batch_options_before_touching_the_database(tmp_path, args, option):
    url = f"sqlite:///{tmp_path / 'untouched.db'}"
    result = CliRunner().invoke(app, ["migrate", GLANCE_CHANGES, "--url", url, *args])
    assert result.exit_code == 2, result.output
    assert option in result.output
    assert not (tmp_path / "untouched.db").exists()
