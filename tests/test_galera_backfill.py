"""The backfill on Galera: it starts with small batches there (a big one loses certification to
other nodes' writes again and again), and a batch failed by a deadlock runs again from the same
checkpoint, half as big. Real servers: the single MariaDB and the 3-node cluster."""

from __future__ import annotations

import random
import threading
import time

import pytest
import sqlalchemy as sa
from test_backfill import assert_backfilled, backfill_images, expanded_images

from crossfade import backfill
from crossfade.backfill import AdaptiveBatches
from crossfade.dialects import for_dialect, galera
from crossfade.schema import Schema


@pytest.mark.parametrize("dialect_name", ["mysql"])
def test_a_batch_failed_by_a_deadlock_runs_again_from_its_checkpoint_half_as_big(engine):
    """A real deadlock: another transaction holds rows 100-400 and waits for row 1, which the
    first batch holds; the batch then asks for row 200. InnoDB fails the lighter of the two,
    the batch (50 rows against 301)."""
    change = expanded_images(engine, 500)
    with engine.connect() as conn:
        table_sync = change.table_syncs(Schema.reflect(conn, change.tables()))["images"]
    holding, other_error = threading.Event(), []

    def other_writer() -> None:
        try:
            with engine.begin() as conn:
                conn.exec_driver_sql("UPDATE images SET size = size + 1 WHERE id BETWEEN 100 AND 400")
                holding.set()
                conn.exec_driver_sql("UPDATE images SET size = size + 1 WHERE id = 1")  # waits for the batch
        except Exception as exc:  # noqa: BLE001 - asserted below
            other_error.append(exc)

    tries: list[int] = []
    threads: list[threading.Thread] = []

    def save(conn: sa.Connection, checkpoint: dict) -> None:
        tries.append(checkpoint["done"])
        if len(tries) == 1:  # the first batch, rows 1-50 locked: close the cycle
            threads.append(threading.Thread(target=other_writer))
            threads[0].start()
            holding.wait(10)
            time.sleep(0.3)  # the other transaction now waits for row 1
            conn.exec_driver_sql("UPDATE images SET size = size WHERE id = 200")

    progress: list = []
    backfill.backfill_table(engine, for_dialect(engine.dialect), table_sync, {}, save,
                            batches=AdaptiveBatches(rows=50), on_batch=progress.append)
    threads[0].join()
    assert not other_error  # the other transaction won and committed
    assert tries[:2] == [50, 25]  # the lost batch, then the same checkpoint with half the rows
    assert progress[0].batch_size == 25 and progress[0].done == 25
    assert_backfilled(engine, 500)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT size FROM images WHERE id = 200").scalar() == 201


@pytest.mark.parametrize("dialect_name", ["mysql"])
def test_a_single_server_keeps_the_default_first_batch(engine):
    change = expanded_images(engine, 1500)
    progress, _ = backfill_images(engine, change)
    assert progress[0].batch_size == backfill.FIRST_BATCH_ROWS
    assert_backfilled(engine, 1500)


class NodeWriter(threading.Thread):
    """An application on another node: one transaction per write, retried on 1213 (oslo.db)."""

    def __init__(self, url: str, rows: int, seed: int):
        super().__init__(daemon=True)
        self.engine, self.rows, self.rng = sa.create_engine(url), rows, random.Random(seed)
        self.stop, self.errors, self.aborted = threading.Event(), [], 0

    def run(self) -> None:
        dialect = for_dialect(self.engine.dialect)
        while not self.stop.is_set():
            try:
                with self.engine.begin() as conn:  # an unsynced column: the backfill's rows, not its values
                    conn.exec_driver_sql(f"UPDATE images SET name = 'w' WHERE id = {self.rng.randint(1, self.rows)}")
            except sa.exc.DBAPIError as exc:
                if not dialect.is_deadlock(exc):
                    self.errors.append(exc)
                    return
                self.aborted += 1
            time.sleep(0.005)
        self.engine.dispose()


@pytest.mark.galera
def test_the_backfill_on_galera_starts_small_and_finishes_under_other_nodes_writers(galera_nodes):
    engine = sa.create_engine(galera_nodes.ddl)
    try:
        change = expanded_images(engine, 2000)
        time.sleep(0.2)  # the other nodes have applied the table
        writers = [NodeWriter(url, 2000, seed) for seed, url in enumerate(galera_nodes.urls[1:])]
        for writer in writers:
            writer.start()
        try:
            time.sleep(0.2)
            progress, _ = backfill_images(engine, change)
        finally:
            for writer in writers:
                writer.stop.set()
            for writer in writers:
                writer.join()
        assert [w.errors for w in writers] == [[], []]
        assert progress[0].batch_size <= galera.FIRST_BATCH_ROWS  # less when its first try lost
        assert progress[-1].done == 2000
        assert_backfilled(engine, 2000)
    finally:
        engine.dispose()


def test_the_walk_ends_at_the_last_key_the_table_had_when_it_began(engine):
    """Rows inserted meanwhile were derived by the triggers: a backfill that walked them too
    would chase the writers' inserts (on Galera, with its small batches, for minutes)."""
    change = expanded_images(engine, 30)
    with engine.connect() as conn:
        table_sync = change.table_syncs(Schema.reflect(conn, change.tables()))["images"]
    progress: list = []

    def save(conn: sa.Connection, checkpoint: dict) -> None:
        if not progress and checkpoint["done"] == 10:  # the writers insert 100 rows meanwhile
            conn.execute(sa.text("INSERT INTO images (id, name, is_public, size) VALUES (:id, 'w', TRUE, 1)"),
                         [{"id": i} for i in range(31, 131)])

    backfill.backfill_table(engine, for_dialect(engine.dialect), table_sync, {}, save,
                            batches=backfill.FixedBatches(10), on_batch=progress.append)
    assert [p.done for p in progress] == [10, 20, 30]
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM images WHERE visibility IS NULL").scalar() == 0
