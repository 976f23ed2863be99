"""A phase, or a read of the catalog, that a deadlock aborted runs again.

crossfade's DDL and its small writes already retry deadlocks statement by statement (locking.py).
The rest can meet one too: on Galera, DDL anywhere in the cluster, even in another database,
aborts reads of information_schema.TRIGGERS on every node with error 1213 (measured on the
3-node test cluster: 7 of 1,230 such reads while another node created and dropped tables). A
cluster shared by several services (OpenStack's Keystone, Glance and Nova on one) sees that DDL
any time. Every phase finishes when run again after an interruption at any point (the
kill-and-rerun tests), so a phase a deadlock aborted simply runs again; a read reads again.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

import sqlalchemy as sa

from .dialects.base import TriggerDialect
from .locking import run_again

T = TypeVar("T")

RERUNS = 5  # deadlocks in a row before the error goes to the operator


def again_after_deadlock(dialect: TriggerDialect, log: Callable[[str], None], what: str,
                         work: Callable[[], T]) -> T:
    def say_why(exc: sa.exc.DBAPIError) -> None:
        reason = str(exc.orig).splitlines()[0] if exc.orig is not None else type(exc).__name__
        log(f"{what} was aborted by a deadlock ({reason}); running it again")

    return run_again(work, transient=dialect.is_deadlock, more=lambda attempt, waited: attempt <= RERUNS,
                     before_again=say_why)


def rerun_after_deadlock(method: Callable) -> Callable:
    """A read-only Runner method (status, problems) run again when a deadlock aborted it."""
    @functools.wraps(method)
    def run(self, *args, **kwargs):
        return again_after_deadlock(self.dialect, self.log, method.__name__,
                                    lambda: method(self, *args, **kwargs))
    return run
