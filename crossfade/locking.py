"""Run DDL so that application traffic never queues behind crossfade for long.

A DDL statement waiting for a table lock blocks every writer that arrives after it. So each
attempt waits at most `lock_timeout`, then gives the table back, sleeps with backoff, and tries
again, until `max_wait` runs out (DESIGN section 6).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import sqlalchemy as sa

from .ddl import Step
from .dialects.base import TriggerDialect
from .errors import LockHolder, LockTimeoutError

T = TypeVar("T")


@dataclass(frozen=True)
class LockPolicy:
    lock_timeout: float = 0.05  # seconds one attempt may wait for a lock
    max_wait: float = 120.0  # seconds before giving up with LockTimeoutError
    # An attempt that worked this long before losing its lock (MariaDB takes an online build's
    # final metadata lock at the end) threw that work away; after `max_lost_work` of them, stop
    # and say so rather than rebuild again and again for two minutes.
    long_attempt: float = 1.0
    max_lost_work: int = 3


def backoff(attempt: int, lock_timeout: float, worked: float = 0.0) -> float:
    """The pause before the next attempt. An attempt that waited lets the writers queued behind
    it through first, so the pause grows. An attempt that cannot wait at all (MariaDB counts
    whole seconds, so a short timeout means NOWAIT) blocks nobody while it fails; it must instead
    retry often, or a table that is never idle for long would never be caught free. But one that
    failed only after `worked` seconds spent them working, and work may block writes (MariaDB's
    ALGORITHM=COPY copies under a shared lock, then loses the copy to a reader at its final
    lock): pause as long again, so writers get at least half the time. Measured behind a reader
    holding a 30,000-row table: writers had spent 95% of the wait blocked."""
    if lock_timeout == 0:
        return max(0.002, worked)
    return min(0.005 * (2 ** attempt), 0.25)


def run_with_lock_timeout(conn: sa.Connection, dialect: TriggerDialect, statements: list[str],
                          policy: LockPolicy, rebuild: str | None = None, concurrent: bool = False) -> int:
    """Run `statements` in one attempt-transaction, retried on lock timeouts and deadlocks.
    Returns attempts."""
    started = time.monotonic()
    attempt = lost_work = 0
    while True:
        attempt += 1
        attempt_started = time.monotonic()
        if conn.in_transaction():
            conn.rollback()  # end any read transaction left by catalog probes
        try:
            with dialect.ddl_transaction(conn, policy.lock_timeout, rebuild=rebuild, concurrent=concurrent):
                for statement in statements:
                    conn.exec_driver_sql(statement)
            return attempt
        except sa.exc.DBAPIError as exc:
            # A deadlock with the application's writers (a cross-table trigger's locking reads,
            # a step's validation query) is as passing as a lock timeout: the database undid the
            # attempt, so it runs again.
            if not (dialect.is_lock_timeout(exc) or dialect.is_deadlock(exc)):
                raise
            if conn.in_transaction():
                conn.rollback()
            waited, worked = time.monotonic() - started, time.monotonic() - attempt_started
            if worked >= policy.long_attempt:
                lost_work += 1
            if waited >= policy.max_wait or lost_work >= policy.max_lost_work:
                raise LockTimeoutError(statements[0], attempt, waited, lost_work=lost_work,
                                       holders=name_lock_holders(conn, dialect, statements)) from exc
            time.sleep(backoff(attempt, dialect.effective_lock_timeout(policy.lock_timeout), worked))


def name_lock_holders(conn: sa.Connection, dialect: TriggerDialect, statements: list[str]) -> list[LockHolder]:
    """The sessions holding the tables `statements` name, so the operator knows whom to wait for
    or stop. Asked once, when a step gives up (never in the retry loop), on a connection of its
    own: the DDL connection's session settings are the step's. Not being able to ask never hides
    the LockTimeoutError it is for."""
    try:
        with conn.engine.connect() as probe:
            return dialect.lock_holders(probe, sorted(_identifiers(statements)))
    except Exception as exc:  # noqa: BLE001 - a failed diagnosis must not replace the error it is for
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        return [LockHolder("unknown", lock=f"could not ask the database who holds it: {reason}")]


_IDENTIFIER = re.compile(r'"((?:[^"]|"")+)"|`((?:[^`]|``)+)`|\b([A-Za-z_][A-Za-z0-9_$]*)\b')


def _identifiers(statements: list[str]) -> set[str]:
    """Every name the statements could mean a table by (quoted as written; bare also folded to
    lower case, as PostgreSQL folds it). The dialect keeps those that are tables."""
    names: set[str] = set()
    for double, back, bare in _IDENTIFIER.findall("\n".join(statements)):
        if bare:
            names |= {bare, bare.lower()}
        else:
            names.add(double.replace('""', '"') if double else back.replace("``", "`"))
    return names


def retry_when_busy(dialect: TriggerDialect, policy: LockPolicy, work: Callable[[], T]) -> T:
    """Run `work` (its own transaction), again while the database says it is locked, for up to
    `policy.max_wait`. For crossfade's small writes (its state, a backfill batch): on SQLite a busy
    application can keep the single write lock from them longer than the busy timeout, and a
    backfill batch of a cross-table op can deadlock with the writers it shares two tables with
    (the database fails one side; the batch's checkpoint has not moved, so it simply runs again)."""
    return run_again(work, transient=lambda exc: dialect.is_lock_timeout(exc) or dialect.is_deadlock(exc),
                     more=lambda attempt, waited: waited < policy.max_wait)


def run_again(work: Callable[[], T], *, transient: Callable[[sa.exc.DBAPIError], bool],
              more: Callable[[int, float], bool],
              before_again: Callable[[sa.exc.DBAPIError], None] | None = None) -> T:
    """Run `work`; while it fails with an error `transient` accepts and `more(attempts, seconds
    waited)` allows another try, back off and run it again (after `before_again(error)`)."""
    started = time.monotonic()
    attempt = 0
    while True:
        attempt += 1
        try:
            return work()
        except sa.exc.DBAPIError as exc:
            if not transient(exc) or not more(attempt, time.monotonic() - started):
                raise
            if before_again is not None:
                before_again(exc)
            time.sleep(backoff(attempt, 0.05))


def run_step(conn: sa.Connection, dialect: TriggerDialect, step: Step, policy: LockPolicy) -> bool:
    """Run a step unless its probe says it already happened. Returns whether it ran."""
    if step.is_done is not None:
        done = step.is_done(conn)
        if conn.in_transaction():
            conn.rollback()  # the probe's read transaction must not hold locks or block begin()
        if done:
            return False
    if step.concurrent:
        # CONCURRENTLY's lock waits stall no writer (SHARE UPDATE EXCLUSIVE does not conflict with
        # theirs), and an interrupted build starts over: one attempt that may wait as long as the phase.
        patient = LockPolicy(policy.max_wait, policy.max_wait)
        run_with_lock_timeout(conn, dialect, step.sql, patient, concurrent=True)
    elif step.one_transaction:
        try:
            run_with_lock_timeout(conn, dialect, step.sql, policy, rebuild=step.rebuild)
        except sa.exc.DBAPIError as exc:
            # The table refuses the ALGORITHM asked for (MariaDB says why): the step's other forms.
            if not (step.fallback and dialect.is_algorithm_refused(exc)):
                raise
            for alternative in step.fallback:
                run_step(conn, dialect, alternative, policy)
    else:
        for statement in step.sql:
            run_with_lock_timeout(conn, dialect, [statement], policy)
    return True
