"""`--jobs N`: workers backfill disjoint key ranges of a table at once, each range resumable, and
the progress (line and `status --json`) carries rows/s and the time left. Real databases.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import glance_schema
import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from crossfade import backfill, parallel
from crossfade.backfill import BackfillOptionError, FixedBatches, Job, Progress
from crossfade.cli import app
from crossfade.dialects import for_dialect
from crossfade.loader import load_changes
from crossfade.runner import Runner
from crossfade.state import Phase

GLANCE = Path(__file__).resolve().parents[1] / "examples" / "glance"
CHANGES = str(GLANCE / "changes")
SERVERS = ["postgresql", "mysql"]


class Interrupt(Exception):
    pass


def expanded_images(engine: sa.Engine, rows: int, change_id: str = "visibility"):
    glance_schema.create_images(engine, [{"id": i, "name": f"i{i}", "is_public": i % 2 == 0, "size": i}
                                         for i in range(1, rows + 1)])
    change = glance_schema.visibility_change(change_id)
    Runner(engine).expand(change)
    return change


def synced(engine: sa.Engine) -> tuple[int, int]:
    """(rows, rows whose visibility is not what is_public says)."""
    with engine.connect() as conn:
        return conn.execute(sa.text(
            "SELECT count(*), sum(CASE WHEN visibility = (CASE WHEN is_public THEN 'public' ELSE 'shared' END) "
            "THEN 0 ELSE 1 END) FROM images")).one()


def saved_checkpoint(engine: sa.Engine, change_id: str) -> dict:
    with engine.connect() as conn:
        saved = conn.execute(sa.text("SELECT checkpoint FROM crossfade_state WHERE change_id = :c"),
                             {"c": change_id}).scalar_one()
    return json.loads(saved)["images"]


class Writer(threading.Thread):
    """Release N's application while the backfill runs: inserts and flips of is_public."""

    def __init__(self, engine: sa.Engine, rows: int):
        super().__init__(daemon=True)
        self.engine, self.rows, self.writes = engine, rows, 0
        self.stop, self.error = threading.Event(), None

    def run(self) -> None:
        rng = random.Random(3)
        try:
            with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                while not self.stop.is_set():
                    if self.writes % 2:
                        conn.execute(sa.text("INSERT INTO images (id, name, is_public) VALUES (:id, 'w', TRUE)"),
                                     {"id": self.rows + 1 + self.writes})
                    else:
                        conn.execute(sa.text("UPDATE images SET is_public = NOT is_public WHERE id = :id"),
                                     {"id": rng.randint(1, self.rows)})
                    self.writes += 1
        except BaseException as exc:  # noqa: BLE001 (the test raises it)
            self.error = exc


# --- every row, once, with the application writing --------------------------------------------

@pytest.mark.parametrize("dialect_name", SERVERS)
def test_jobs_fill_every_row_right_while_release_n_writes(engine):
    change = expanded_images(engine, 4000)
    writer = Writer(engine, 4000)
    writer.start()
    try:
        Runner(engine, jobs=4, batch_size=100).migrate(change)
    finally:
        writer.stop.set()
        writer.join()
    assert writer.error is None and writer.writes > 0
    rows, wrong = synced(engine)
    assert rows >= 4000 and wrong == 0
    checkpoint = saved_checkpoint(engine, change.id)
    assert len(checkpoint["ranges"]) == 4 and all(r["complete"] for r in checkpoint["ranges"])
    assert checkpoint["done"] == checkpoint["total"] >= 4000  # the writer's rows before migrate counted
    assert Runner(engine).load(change).phase is Phase.MIGRATED


KEY_SHAPES = {
    # name: (key columns, rows' keys)
    "gaps": ([sa.Column("k", sa.BigInteger, primary_key=True, autoincrement=False)],
             [(k,) for k in [1, 2, 3, 1000, 1001, *range(5000, 5200), 10**12, 10**12 + 5]]),
    "negative": ([sa.Column("k", sa.Integer, primary_key=True, autoincrement=False)],
                 [(k,) for k in range(-500, 501, 3)]),
    "composite": ([sa.Column("a", sa.Integer, primary_key=True, autoincrement=False),
                   sa.Column("b", sa.String(20), primary_key=True)],
                  [(a, f"b{b:03d}") for a in range(-3, 7) for b in range(0, 30, 2)]),
    "text": ([sa.Column("k", sa.String(20), primary_key=True)], [(f"key-{k:05d}",) for k in range(0, 700, 7)]),
}


def hits_table(engine: sa.Engine, shape: str) -> sa.Table:
    """A table of the shape's keys with a `hits` count a backfill job adds one to per row it fills."""
    key_columns, keys = KEY_SHAPES[shape]
    table = sa.Table("ranged", sa.MetaData(), *[c._copy() for c in key_columns],
                     sa.Column("hits", sa.Integer, nullable=False, server_default="0"))
    table.create(engine)
    names = [c.name for c in key_columns]
    with engine.begin() as conn:
        conn.execute(table.insert(), [dict(zip(names, k)) for k in keys])
    return table


def counting_job(table: sa.Table) -> Job:
    return Job("ranged", table, lambda where: [sa.update(table).where(where).values(hits=table.c.hits + 1)])


def hits(engine: sa.Engine, table: sa.Table) -> list[int]:
    with engine.connect() as conn:
        return list(conn.execute(sa.select(table.c.hits)).scalars())


@pytest.mark.parametrize("shape", list(KEY_SHAPES))
def test_ranges_are_disjoint_and_cover_every_key(engine, dialect_name, shape):
    table = hits_table(engine, shape)
    jobs = 1 if dialect_name == "sqlite" else 3
    saved: list[dict] = []
    final = backfill.backfill_table(engine, for_dialect(engine.dialect), counting_job(table), {},
                                    lambda conn, checkpoint: saved.append(checkpoint),
                                    batches=FixedBatches(7), jobs=jobs)
    assert hits(engine, table) == [1] * len(KEY_SHAPES[shape][1])  # each row filled by exactly one batch
    assert len(final["ranges"]) == jobs and final["complete"] and final["done"] == final["total"]
    arithmetic = shape in ("gaps", "negative")
    assert all(("span" in r) is arithmetic for r in final["ranges"])
    # Neighbouring ranges meet: each one's end is the next one's start. The first is open below; the
    # last ends at the greatest key when planned for integer keys (later rows are the triggers').
    ranges = final["ranges"]
    assert ranges[0]["after"] is None
    assert ranges[-1]["upto"] == (list(max(KEY_SHAPES[shape][1])) if arithmetic else None)
    assert all(a["upto"] == b["after"] is not None for a, b in itertools.pairwise(ranges))


@pytest.mark.parametrize("dialect_name", SERVERS)
def test_integer_ranges_skip_a_gap_of_a_trillion_keys_in_one_seek(engine):
    table = hits_table(engine, "gaps")
    batches: list[int] = []
    backfill.backfill_table(engine, for_dialect(engine.dialect), counting_job(table), {},
                            lambda conn, checkpoint: None, batches=FixedBatches(100),
                            on_batch=lambda p: batches.append(p.done))
    # 1..100, 1000..1099 (5000.. lies past it), 5000..5099, 5100..5199, 10**12..10**12+99: five batches
    assert len(batches) == 5 and batches[-1] == len(KEY_SHAPES["gaps"][1])


# --- crash and rerun ------------------------------------------------------------------------

@pytest.mark.parametrize("dialect_name", SERVERS)
@pytest.mark.parametrize("shape", ["negative", "text"])
def test_a_worker_failing_mid_range_stops_the_others_and_a_rerun_fills_each_row_exactly_once(engine, shape):
    table = hits_table(engine, shape)
    dialect = for_dialect(engine.dialect)
    committed: dict = {}
    seen: list[Progress] = []

    def save(conn: sa.Connection, checkpoint: dict) -> None:
        committed.clear()
        committed.update(json.loads(json.dumps(checkpoint)))  # what the batch's transaction commits

    def fail_on_the_fifth_batch(progress: Progress) -> None:
        seen.append(progress)
        if len(seen) == 5:
            raise Interrupt("a worker dies")

    with pytest.raises(Interrupt):
        backfill.backfill_table(engine, dialect, counting_job(table), {}, save, batches=FixedBatches(5),
                                on_batch=fail_on_the_fifth_batch, jobs=3)
    assert not committed["complete"]
    assert sorted(set(hits(engine, table))) == [0, 1]  # some rows filled once, none twice
    assert sum(hits(engine, table)) >= 5  # every batch starts at a row
    # Exactly the rows each range's checkpoint says it reached are filled: none past them.
    with engine.connect() as conn:
        for r in committed["ranges"]:
            reached = sa.and_(sa.true(), *([table.c.k > r["after"][0]] if r["after"] else []),
                              *([table.c.k <= r["last"][0]] if r["last"] else [sa.false()]))
            if r["complete"]:
                reached = sa.and_(*([table.c.k > r["after"][0]] if r["after"] else [sa.true()]),
                                  *([table.c.k <= r["upto"][0]] if r["upto"] else []))
            rest = sa.and_(sa.true(), *([table.c.k > (r["last"] or r["after"])[0]] if r["last"] or r["after"] else []),
                           *([table.c.k <= r["upto"][0]] if r["upto"] else []))
            assert set(conn.execute(sa.select(table.c.hits).where(reached)).scalars()) <= {1}
            assert r["complete"] or set(conn.execute(sa.select(table.c.hits).where(rest)).scalars()) <= {0}

    backfill.backfill_table(engine, dialect, counting_job(table), committed, save, batches=FixedBatches(5), jobs=3)
    assert hits(engine, table) == [1] * len(KEY_SHAPES[shape][1])  # nothing lost, nothing done twice
    assert committed["complete"]


@pytest.mark.parametrize("dialect_name", ["postgresql"])
def test_migrate_with_jobs_killed_by_sigkill_is_finished_by_a_rerun(engine, tmp_path):
    url = engine.url.render_as_string(hide_password=False)
    seed = load_changes(CHANGES)
    glance_schema.create_images(engine, [{"id": i, "name": f"i{i}", "is_public": i % 3 == 0, "size": i}
                                         for i in range(1, 6001)])
    [change] = seed.changes
    Runner(engine).expand(change)
    command = [sys.executable, "-m", "crossfade.cli", "migrate", CHANGES, "--url", url,
               "--jobs", "3", "--batch-size", "20", "--pause", "0.01"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               cwd=Path(__file__).resolve().parents[1], start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None:
            done = saved_checkpoint_or_none(engine, change.id)
            if done is not None and 300 <= done["done"] < 4000:
                break
            time.sleep(0.05)
        assert process.poll() is None, process.stderr.read().decode()
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait()
    interrupted = saved_checkpoint(engine, change.id)
    assert not interrupted["complete"] and len(interrupted["ranges"]) == 3
    assert Runner(engine).load(change).phase is Phase.MIGRATING

    result = CliRunner().invoke(app, ["migrate", CHANGES, "--url", url, "--jobs", "3"])
    assert result.exit_code == 0, result.output
    rows, wrong = synced(engine)
    assert rows == 6000 and wrong == 0
    assert Runner(engine).load(change).phase is Phase.MIGRATED


def saved_checkpoint_or_none(engine: sa.Engine, change_id: str) -> dict | None:
    try:
        return saved_checkpoint(engine, change_id)
    except (KeyError, sa.exc.NoResultFound):
        return None


def test_a_single_range_checkpoint_of_an_earlier_crossfade_resumes_where_it_stopped(engine):
    table = hits_table(engine, "negative")
    keys = [k for (k,) in KEY_SHAPES["negative"][1]]
    with engine.begin() as conn:  # what an earlier crossfade committed: rows up to -200
        conn.execute(sa.update(table).where(table.c.k <= -200).values(hits=1))
    earlier = {"last": [-200], "done": 101, "total": len(keys), "complete": False}
    final = backfill.backfill_table(engine, for_dialect(engine.dialect), counting_job(table), earlier,
                                    lambda conn, checkpoint: None, batches=FixedBatches(50))
    assert hits(engine, table) == [1] * len(keys)
    assert final["complete"] and final["done"] == len(keys)


# --- options --------------------------------------------------------------------------------

@pytest.mark.parametrize("jobs", [0, -2, 2.5, True, "4"])
def test_bad_jobs_are_refused_before_anything_runs(engine, jobs):
    change = expanded_images(engine, 30)
    with pytest.raises(BackfillOptionError, match=r"^jobs must be a whole number of workers, at least 1 \(got "):
        Runner(engine, jobs=jobs)
    assert Runner(engine).load(change).phase is Phase.EXPANDED


@pytest.mark.parametrize("value, says", [("0", "at least 1"), ("-1", "at least 1"), ("two", "valid integer"),
                                         ("1.5", "valid integer")])
def test_migrate_command_refuses_bad_jobs_before_touching_the_database(tmp_path, value, says):
    url = f"sqlite:///{tmp_path / 'untouched.db'}"
    result = CliRunner().invoke(app, ["migrate", CHANGES, "--url", url, "--jobs", value], env={"COLUMNS": "300"})
    assert result.exit_code == 2, result.output
    assert "Invalid value for '--jobs'" in result.output and says in result.output
    assert not (tmp_path / "untouched.db").exists()


@pytest.mark.parametrize("dialect_name", ["sqlite"])
def test_sqlite_runs_one_job_and_says_so(engine):
    change = expanded_images(engine, 500)
    logged: list[str] = []
    runner = Runner(engine, jobs=4, log=logged.append)
    runner.migrate(change)
    note = "sqlite lets one writer in at a time: the backfill runs 1 job, not 4"
    assert runner.warnings == [note] and note in logged
    assert len(saved_checkpoint(engine, change.id)["ranges"]) == 1
    assert synced(engine) == (500, 0)


@pytest.mark.parametrize("dialect_name", ["postgresql"])
def test_jobs_beyond_the_engines_pool_are_capped_with_a_note(engine):
    change = expanded_images(engine, 600)
    small = sa.create_engine(engine.url, pool_size=4, max_overflow=0)
    try:
        runner = Runner(small, jobs=8, batch_size=50)
        runner.migrate(change)
    finally:
        small.dispose()
    assert runner.warnings == ["the engine's pool holds 4 connections: the backfill runs 2 jobs, not 8"]
    assert len(saved_checkpoint(engine, change.id)["ranges"]) == 2
    assert synced(engine) == (600, 0)


# --- progress: rows/s and ETA -----------------------------------------------------------------

def test_progress_carries_rows_per_second_and_the_time_left(engine, dialect_name):
    change = expanded_images(engine, 3000)
    seen: list[Progress] = []
    Runner(engine, jobs=2, batch_size=200, on_progress=seen.append).migrate(change)
    assert len(seen) >= 15
    assert all(p.rate is not None and p.rate > 0 for p in seen)
    assert all(p.eta is not None and p.eta >= 0 for p in seen)
    assert seen[-1].eta == 0 and seen[-1].done == 3000
    for p in seen[:-1]:  # the time left is the rows left at the rate so far
        assert p.eta == pytest.approx((p.total - p.done) / p.rate)
    assert all(p.waiting is None for p in seen)


def test_the_progress_line_shows_rows_per_second_eta_and_why_it_waits():
    from crossfade.cli import _speed_text

    assert _speed_text(Progress("images", 500, 1000, 100, rate=1234.4, eta=3725.2)) == "1,234 rows/s, ETA 1:02:05"
    assert (_speed_text(Progress("images", 500, 1000, 100, rate=10.0, eta=50.0, waiting="replica lag 3.2 s > 1 s"))
            == "10 rows/s, ETA 0:00:50, waiting: replica lag 3.2 s > 1 s")
    assert _speed_text(Progress("images", 0, 1000)) == ""


def test_migrate_command_prints_rows_per_second_and_eta(engine, dialect_name, tmp_path):
    url = engine.url.render_as_string(hide_password=False)
    release_n_rows(engine, 2000)
    [change] = load_changes(CHANGES).changes
    Runner(engine).expand(change)
    result = CliRunner().invoke(app, ["migrate", CHANGES, "--url", url, "--jobs", "2", "--batch-size", "500"],
                                env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert " rows/s" in result.output and "ETA 0:00:00" in result.output


def release_n_rows(engine: sa.Engine, rows: int) -> None:
    glance_schema.create_images(engine, [{"id": i, "name": f"i{i}", "is_public": i % 2 == 0, "size": i}
                                         for i in range(1, rows + 1)])


@pytest.mark.parametrize("dialect_name", SERVERS)
def test_status_json_shows_rows_rate_and_eta_of_a_migrate_in_progress(engine):
    url = engine.url.render_as_string(hide_password=False)
    release_n_rows(engine, 3000)
    [change] = load_changes(CHANGES).changes
    Runner(engine).expand(change)
    batches: list[str] = []

    def stop_after_six_batches(phase: str, step: str) -> None:
        if step.startswith("batch of"):
            batches.append(step)
            if len(batches) == 6:
                raise Interrupt(step)

    with pytest.raises(Interrupt):
        Runner(engine, jobs=2, batch_size=100, on_step=stop_after_six_batches).migrate(change)
    result = CliRunner().invoke(app, ["status", CHANGES, "--url", url, "--json"])
    assert result.exit_code == 0, result.output
    [found] = json.loads(result.stdout)
    rows = found["backfill_rows"]["images"]
    assert found["phase"] == "migrating"
    assert rows["total"] == 3000 and 600 <= rows["done"] < 3000 and not rows["complete"]
    assert rows["rows_per_second"] > 0
    assert rows["eta_seconds"] == pytest.approx((3000 - rows["done"]) / rows["rows_per_second"])
    assert rows["waiting"] is None and rows["ranges"] == 2
    assert found["backfill"]["images"] == pytest.approx(rows["done"] / 3000)

    table = CliRunner().invoke(app, ["status", CHANGES, "--url", url], env={"COLUMNS": "200"})
    assert f"{rows['done']:,} of 3,000 rows" in table.output and "rows/s, ETA" in table.output


def test_eta_of_a_checkpoint():
    assert parallel.eta({"total": 1000, "done": 400, "rate": 200.0, "complete": False}) == 3.0
    assert parallel.eta({"total": 1000, "done": 400, "complete": False}) is None
    assert parallel.eta({"total": 1000, "done": 1000, "rate": 200.0, "complete": True}) == 0.0
