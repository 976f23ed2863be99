"""What every worker did: committed writes (the journal), refused writes, and latencies."""

from __future__ import annotations

import threading
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from .deadlocks import Retried


@dataclass(frozen=True)
class Write:
    """One committed statement: `start` is before it was sent, `end` after its commit returned."""

    worker: str
    release: str
    phase: str
    table: str
    key: Any
    kind: str  # insert / update / delete
    values: dict
    start: float
    end: float

    def describe(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self.values.items())
        return f"{self.worker} (release {self.release}, {self.phase}): {self.kind} {self.table} {self.key}" + (
            f" SET {shown}" if shown else "")


class Sample(NamedTuple):
    """One statement a worker attempted, committed or refused: when it began (perf_counter
    seconds) and how long it took until its commit or its error returned."""

    start: float
    seconds: float
    phase: str
    refused: bool


@dataclass(frozen=True)
class Refusal:
    """A statement the database refused: an error the application would have seen."""

    worker: str
    release: str
    phase: str
    kind: str
    table: str
    key: Any
    error: str
    start: float = 0.0  # before the statement was sent
    end: float = 0.0  # when the error came back

    def describe(self) -> str:
        return f"{self.worker} (release {self.release}, {self.phase}): {self.kind} {self.table} {self.key}: {self.error}"


class Stage:
    """The phase the run is in, and how many writes each phase has seen; shared by all threads."""

    def __init__(self, name: str):
        self.name = name
        self._lock = threading.Lock()
        self.counts: dict[tuple[str, str], int] = defaultdict(int)

    def move_to(self, name: str) -> None:
        with self._lock:
            self.name = name

    def count(self, phase: str, release: str) -> None:
        with self._lock:
            self.counts[phase, release] += 1

    def writes_in(self, phase: str, release: str) -> int:
        with self._lock:
            return self.counts[phase, release]


@dataclass
class Journal:
    """One worker's record; only its own thread appends to it."""

    worker: str
    release: str
    writes: list[Write] = field(default_factory=list)
    refusals: list[Refusal] = field(default_factory=list)
    retried: list[Retried] = field(default_factory=list)  # writes failed with a deadlock, then run again
    samples: list[Sample] = field(default_factory=list)  # every statement attempted, in order

    def latencies(self, phase: str) -> list[float]:
        """Seconds of every statement attempted in `phase`, committed or refused."""
        return [s.seconds for s in self.samples if s.phase == phase]

    @property
    def deadlocks(self) -> int:
        return len(self.retried)


class LiveRows:
    """The keys of rows that exist (as far as the workers know), per table; thread-safe."""

    def __init__(self):
        self._lock = threading.Lock()
        self._keys: dict[str, list] = defaultdict(list)

    def add(self, table: str, key) -> None:
        with self._lock:
            self._keys[table].append(key)

    def pick(self, table: str, rng) -> Any | None:
        with self._lock:
            keys = self._keys[table]
            return rng.choice(keys) if keys else None

    def keys(self, table: str) -> list:
        with self._lock:
            return list(self._keys[table])

    def remove(self, table: str, key) -> None:
        with self._lock:
            try:
                self._keys[table].remove(key)
            except ValueError:
                pass
