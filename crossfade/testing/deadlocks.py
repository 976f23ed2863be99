"""Deadlocks the writers retried, and whether crossfade's DDL caused them.

On Galera a DDL statement runs in total order on every node and aborts the transactions it
conflicts with on the other nodes; their writers see error 1213 and retry (oslo.db's
wrap_db_retry does). The simulator's writers retry as such an application does and note when;
the runner's steps are timed (Runner's on_step), so each retried deadlock is put in one of three
bins: it fell while a DDL step of crossfade ran, while a backfill batch ran, or neither (two
writers of the releases, e.g. a cross-table trigger's locks taken in another order).
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from dataclasses import dataclass

# A step's statement is done on the node crossfade talks to when its on_step fires; the other
# nodes apply it at the same point of the total order, but may finish it a little later, and their
# victims only learn of it at their next statement or commit.
APPLY_GRACE = 0.1  # seconds

BINS = ("ddl", "backfill", "writers")


@dataclass(frozen=True)
class Retried:
    """One write the database failed with a deadlock, run again by its writer."""

    at: float  # time.perf_counter() when the writer caught it
    phase: str
    release: str


@dataclass(frozen=True)
class StepWindow:
    start: float
    end: float
    phase: str
    step: str

    @property
    def kind(self) -> str:
        return "backfill" if self.step.startswith("batch of") else "ddl"

    def holds(self, at: float) -> bool:
        return self.start <= at <= self.end + APPLY_GRACE


class StepClock:
    """The runner's steps, each from the end of the previous one (or of the phase's start) to
    the end of its own on_step hook."""

    def __init__(self):
        self._lock = threading.Lock()
        self._since: float | None = None
        self.windows: list[StepWindow] = []

    def begin(self) -> None:
        """A phase's action starts: its first step starts now."""
        self._since = time.perf_counter()

    def step_done(self, phase: str, step: str) -> None:
        now = time.perf_counter()
        with self._lock:
            self.windows.append(StepWindow(self._since if self._since is not None else now, now, phase, step))
            self._since = now

    def end(self) -> None:
        self._since = None

    def bin_of(self, at: float) -> str:
        with self._lock:
            kinds = {w.kind for w in self.windows if w.holds(at)}
        if "ddl" in kinds:
            return "ddl"
        return "backfill" if kinds else "writers"


def count(retried: list[Retried], clock: StepClock) -> dict[str, dict[str, dict[str, int]]]:
    """phase -> release -> {"retried": n, "ddl": .., "backfill": .., "writers": ..}."""
    counts: dict[str, dict[str, dict[str, int]]] = defaultdict(dict)
    for deadlock in sorted(retried, key=lambda r: r.at):  # phases in the order they ran
        figures = counts[deadlock.phase].setdefault(deadlock.release, {"retried": 0, **dict.fromkeys(BINS, 0)})
        figures["retried"] += 1
        figures[clock.bin_of(deadlock.at)] += 1
    return dict(counts)


def caused_by_ddl(counts: dict[str, dict[str, dict[str, int]]]) -> int:
    return sum(f["ddl"] for by_release in counts.values() for f in by_release.values())


def total(counts: dict[str, dict[str, dict[str, int]]]) -> int:
    return sum(f["retried"] for by_release in counts.values() for f in by_release.values())
