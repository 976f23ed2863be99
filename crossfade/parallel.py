"""Key ranges and workers for the backfill: `jobs` threads fill disjoint ranges of one table.

A table's backfill checkpoint is a list of key ranges, each a resumable unit:
    {"total": rows, "done": rows, "complete": bool, "rate": rows/s, "ranges": [range, ...]}
    range = {"after": key | None, "upto": key | None, "last": key | None, "rows": estimated rows,
             "done": rows, "complete": bool, and for an integer key "span": [low, high]}
A range holds the keys in (after, upto]; None is open. `last` is the key its last committed batch
reached. An integer key's ranges are arithmetic (`span`): each batch is a key interval, found
with one index seek, never an OFFSET scan, so a batch costs the same at any depth of the table.
Other keys (text, composite) are split at sampled keys and walked in OFFSET-bounded batches.

Each batch commits its range's progress with the whole table's checkpoint, composed under one
lock from the other ranges' committed progress: a rerun after a crash finds every range where
its last committed batch left it, and no range is ever recorded past rows not yet committed.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

import sqlalchemy as sa


def plan(conn: sa.Connection, table: sa.Table, key: list, jobs: int) -> dict:
    """A fresh checkpoint: the table's rows split into at most `jobs` ranges."""
    if len(key) == 1:
        total, low, high = conn.execute(sa.select(sa.func.count(), sa.func.min(key[0]), sa.func.max(key[0]))
                                        .select_from(table)).one()
        if _is_int(low) and _is_int(high):
            return _checkpoint(total, arithmetic_ranges(total, low, high, jobs))
    else:
        total = conn.execute(sa.select(sa.func.count()).select_from(table)).scalar()
    return _checkpoint(total, sampled_ranges(conn, table, key, total, jobs))


def arithmetic_ranges(total: int, low: int, high: int, jobs: int) -> list[dict]:
    """`jobs` ranges of equal key width between `low` and `high`. The first is open below (a key
    under `low` is still covered); the last ends at `high`: a row inserted since was derived by
    the triggers, and a walk to the table's moving end would chase the writers' inserts (on
    Galera, with small batches, for minutes)."""
    width = high - low + 1
    count = max(1, min(jobs, width))
    bounds = [low - 1 + (width * i) // count for i in range(count + 1)]
    ranges = []
    for i in range(count):
        rows = total * (bounds[i + 1] - bounds[i]) // width
        ranges.append(_range(None if i == 0 else [bounds[i]], [bounds[i + 1]], rows, span=[bounds[i], bounds[i + 1]]))
    ranges[-1]["rows"] += total - sum(r["rows"] for r in ranges)  # integer division's remainder
    return ranges


def sampled_ranges(conn: sa.Connection, table: sa.Table, key: list, total: int, jobs: int) -> list[dict]:
    """Ranges of about total / jobs rows each, bounded by the keys found at those positions."""
    count = max(1, min(jobs, total))
    bounds: list = [None]
    for i in range(1, count):
        found = conn.execute(sa.select(*key).select_from(table).order_by(*key)
                             .offset(total * i // count - 1).limit(1)).first()
        bounds.append(list(found))
    bounds.append(None)
    ranges = [_range(bounds[i], bounds[i + 1], total * (i + 1) // count - total * i // count) for i in range(count)]
    return ranges


def from_checkpoint(checkpoint: dict) -> dict | None:
    """The checkpoint in ranges form; a single-range checkpoint of an earlier crossfade
    ({"last", "done", "total", "complete"}) becomes one OFFSET-walked range; None: not planned yet."""
    if not checkpoint or checkpoint.get("total") is None:
        return None
    if "ranges" in checkpoint:
        return {**checkpoint, "ranges": [dict(r) for r in checkpoint["ranges"]]}
    single = _range(None, None, checkpoint["total"], last=checkpoint.get("last"),
                    done=checkpoint.get("done", 0), complete=bool(checkpoint.get("complete")))
    return _checkpoint(checkpoint["total"], [single])


class SharedCheckpoint:
    """The table's checkpoint as committed, shared by the workers.

    `commit(index, reached, write)` runs `write(checkpoint)` (which saves and commits the batch)
    under the lock, with every other range as last committed; only once it returned does the
    range's progress count. Also measures the rows per second of this run."""

    def __init__(self, checkpoint: dict):
        self.checkpoint = checkpoint
        self.lock = threading.Lock()
        self.started = time.perf_counter()
        self.done_at_start = checkpoint["done"]

    def commit(self, index: int, reached: dict, write: Callable[[dict], None]) -> dict:
        with self.lock:
            ranges = list(self.checkpoint["ranges"])
            ranges[index] = reached
            composed = self._compose(ranges, time.perf_counter())
            write(composed)
            self.checkpoint = composed
            return composed

    def _compose(self, ranges: list[dict], at: float) -> dict:
        total = self.checkpoint["total"]
        complete = all(r["complete"] for r in ranges)
        done = total if complete else min(total, sum(r["done"] for r in ranges))
        composed = _checkpoint(total, ranges, done=done, complete=complete)
        elapsed = at - self.started
        composed["rate"] = (done - self.done_at_start) / elapsed if elapsed > 0 else self.checkpoint.get("rate")
        return composed


def eta(checkpoint: dict) -> float | None:
    """Seconds left at the recorded rate (None: no rate yet)."""
    rate = checkpoint.get("rate")
    if checkpoint.get("complete"):
        return 0.0
    if not rate or rate <= 0:
        return None
    return max(0, checkpoint["total"] - checkpoint["done"]) / rate


def run_workers(ranges: list[int], jobs: int, work: Callable[[int, threading.Event], None]) -> None:
    """`work(range_index, stop)` for every range, at most `jobs` at a time; one failing stops the
    others after their batch in flight, and its error is raised here. One job runs in this thread."""
    stop = threading.Event()
    if jobs <= 1 or len(ranges) <= 1:
        for index in ranges:
            work(index, stop)
        return
    pending = list(ranges)
    errors: list[BaseException] = []
    taking = threading.Lock()

    def worker() -> None:
        while not stop.is_set():
            with taking:
                if not pending:
                    return
                index = pending.pop(0)
            try:
                work(index, stop)
            except BaseException as exc:  # noqa: BLE001 (raised by the calling thread)
                errors.append(exc)
                stop.set()

    threads = [threading.Thread(target=worker, name=f"crossfade-backfill-{i}", daemon=True)
               for i in range(min(jobs, len(ranges)))]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            thread.join()
    except BaseException:  # Ctrl-C: the workers stop after their batch in flight (its checkpoint with it)
        stop.set()
        for thread in threads:
            thread.join()
        raise
    if errors:
        raise errors[0]


def next_integer_batch(conn: sa.Connection, table: sa.Table, key: list, rng: dict, width: int):
    """(lower, upper, complete) of an arithmetic range's next batch: the keys in (lower, upper],
    starting at the first key after the range's last (one index seek, so gaps cost nothing).
    lower None: from the start; upper None: to the end. None when no key is left in the range."""
    lower = rng["last"] if rng["last"] is not None else rng["after"]
    query = sa.select(key[0]).select_from(table).order_by(key[0]).limit(1)
    if lower is not None:
        query = query.where(key[0] > _typed(key[0], lower[0]))
    if rng["upto"] is not None:
        query = query.where(key[0] <= _typed(key[0], rng["upto"][0]))
    first = conn.execute(query).scalar()
    if first is None:
        return None
    upper = first + width - 1
    if upper >= rng["span"][1]:
        return lower, rng["upto"], True
    return lower, [upper], False


def integer_done(rng: dict, upper) -> int:
    """Rows of an arithmetic range done once its keys up to `upper` are, estimated by key width."""
    low, high = rng["span"]
    if upper is None or high <= low:
        return rng["rows"]
    return min(rng["rows"], math.floor(rng["rows"] * (upper[0] - low) / (high - low)))


def _typed(column, value):
    return sa.literal(value, getattr(column, "type", None))


def _range(after, upto, rows: int, *, last=None, done: int = 0, complete: bool = False, span=None) -> dict:
    found = {"after": after, "upto": upto, "last": last, "rows": rows, "done": done, "complete": complete}
    return found if span is None else {**found, "span": span}


def _checkpoint(total: int, ranges: list[dict], *, done: int | None = None, complete: bool | None = None) -> dict:
    if complete is None:
        complete = total == 0 or all(r["complete"] for r in ranges)
    if done is None:
        done = total if complete else sum(r["done"] for r in ranges)
    return {"total": total, "done": done, "complete": complete, "ranges": ranges}


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
