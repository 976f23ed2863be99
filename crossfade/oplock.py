"""One operator at a time: the crossfade lock, a row of `crossfade_lock` (DESIGN section 6).

Every phase holds it from before it reads the change's state until it has saved its last step,
so two crossfades never interleave their DDL (two expands adding one column twice, a rollback
dropping what a contract is about to keep). It is a row, not GET_LOCK or an advisory lock: a row
is seen from every host and replicates on Galera, where GET_LOCK does not, and it names its
holder (host, pid, command, since) for the one that has to wait.

Taking it is an INSERT of the row (its name is the primary key), or an UPDATE taking over a row
whose holder is gone: on this host a pid that no longer runs (this host: the same host name, so
containers that share a name must share their process table too), from anywhere a heartbeat
older than `STALE_AFTER` seconds. The holder's thread refreshes the heartbeat every `HEARTBEAT`
seconds; times are the database server's clock, the same for every host. Releasing deletes the
row only while it still carries the holder's token. Re-entrant within one OperatorLock, so a
phase that runs another (an Alembic revision's expand runs the change's) holds it once.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
import sqlalchemy.dialects.mysql

from .dialects.base import TriggerDialect
from .errors import OperatorBusyError, OperatorLockLostError
from .locking import LockPolicy, retry_when_busy
from .rerun import again_after_deadlock

LOCK_TABLE = "crossfade_lock"
LOCK_NAME = "crossfade"  # one lock per database: phases of different changes share crossfade_state
HEARTBEAT = 5.0  # seconds between the holder's heartbeats
STALE_AFTER = 60.0  # a holder whose heartbeat is older is gone (a process killed on another host)
_POLL = 0.2  # seconds between two looks at a busy lock while --wait runs

# Fractions of a second on MariaDB too (DATETIME alone keeps whole seconds).
_Time = sa.DateTime().with_variant(sa.dialects.mysql.DATETIME(fsp=6), "mysql", "mariadb")
_metadata = sa.MetaData()
lock_table = sa.Table(
    LOCK_TABLE, _metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("token", sa.String(32), nullable=False),
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("command", sa.String(500), nullable=False),
    sa.Column("since", _Time, nullable=False),
    sa.Column("heartbeat_at", _Time, nullable=False),
)


@dataclass(frozen=True)
class Holder:
    """The crossfade holding the lock, as its row says, and whether it is gone."""

    token: str
    host: str
    pid: int
    command: str
    since: datetime
    heartbeat_age: float  # seconds since its last heartbeat, by the database's clock
    gone: bool

    def describe(self) -> str:
        text = f"'{self.command}' on host {self.host}, pid {self.pid}, since {self.since:%Y-%m-%d %H:%M:%S} UTC"
        if self.gone:
            text += " (gone: the next phase takes its lock over)"
        return text


class OperatorLock:
    """The database's crossfade lock for one Runner: `held(command)` around each phase."""

    def __init__(self, engine: sa.Engine, dialect: TriggerDialect, policy: LockPolicy, wait: float = 0.0,
                 log: Callable[[str], None] | None = None, stale_after: float = STALE_AFTER,
                 heartbeat: float = HEARTBEAT):
        self.engine, self.dialect, self.policy = engine, dialect, policy
        self.wait, self.stale_after, self.heartbeat = wait, stale_after, heartbeat
        self.log = log or (lambda message: None)
        self.command: str | None = None  # what the holder row names; default: the phase and change
        self._depth = 0
        self._token = ""
        self._lost: Holder | None = None
        self._stop = threading.Event()
        self._beating: threading.Thread | None = None

    @property
    def holding(self) -> bool:
        return self._depth > 0

    @contextmanager
    def held(self, command: str) -> Iterator[None]:
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self._acquire(self.command or command)
        self._depth = 1
        try:
            yield
        finally:
            self._depth = 0
            self._stop_heartbeat()
            self._release()
            self._token = ""

    def check(self) -> None:
        """Raise OperatorLockLostError when another crossfade took the lock over meanwhile."""
        if self._lost is not None:
            raise OperatorLockLostError(self._lost.describe())

    def holder(self) -> Holder | None:
        """Who holds the lock (None: nobody), for status and check."""
        with self.engine.connect() as conn:
            if not sa.inspect(conn).has_table(LOCK_TABLE):
                return None
            return self._read(conn)

    # --- taking and giving back --------------------------------------------------------------
    def _acquire(self, command: str) -> None:
        self._ensure_table()
        self._token, self._lost = uuid.uuid4().hex, None
        started = time.monotonic()
        told = False
        while True:
            holder = retry_when_busy(self.dialect, self.policy, lambda: self._try_take(command))
            if holder is None:
                break
            waited = time.monotonic() - started
            if waited >= self.wait:
                raise OperatorBusyError(holder.describe(), waited if self.wait else 0.0)
            if not told:
                self.log(f"waiting up to {self.wait:g}s for another crossfade: {holder.describe()}")
                told = True
            time.sleep(min(_POLL, self.wait - waited))
        self._start_heartbeat()

    def _try_take(self, command: str) -> Holder | None:
        """One short transaction: take the lock (None) or say who holds it."""
        try:
            with self.engine.begin() as conn:
                holder = self._read(conn)
                if holder is None:
                    conn.execute(sa.insert(lock_table).values(name=LOCK_NAME, **self._values(conn, command)))
                    return None
                if not holder.gone:
                    return holder
                # Compare-and-swap on the token: of two crossfades taking over one gone holder,
                # one updates the row and the other finds the new holder next time round.
                taken = conn.execute(sa.update(lock_table).where(lock_table.c.name == LOCK_NAME,
                                                                 lock_table.c.token == holder.token)
                                     .values(**self._values(conn, command))).rowcount
                if taken != 1:
                    return self._read(conn) or holder
                self.log(f"took over the lock of a crossfade that is gone: {holder.describe()}")
                return None
        except sa.exc.IntegrityError:  # another crossfade inserted the row first
            with self.engine.connect() as conn:
                return self._read(conn) or self._try_take(command)

    def _release(self) -> None:
        def delete() -> None:
            with self.engine.begin() as conn:
                conn.execute(sa.delete(lock_table).where(lock_table.c.name == LOCK_NAME,
                                                         lock_table.c.token == self._token))
        try:
            retry_when_busy(self.dialect, self.policy, delete)
        except sa.exc.SQLAlchemyError as exc:  # never hide the phase's own error behind this one
            self.log(f"warning: could not release the crossfade lock ({_first_line(exc)}); the next phase "
                     f"takes it over, at once on this host, from another within {self.stale_after:g}s")

    def _values(self, conn: sa.Connection, command: str) -> dict:
        now = _utc_now(conn, self.dialect)
        return {"token": self._token, "host": socket.gethostname(), "pid": os.getpid(),
                "command": command[:500], "since": now, "heartbeat_at": now}

    def _read(self, conn: sa.Connection) -> Holder | None:
        found = conn.execute(sa.select(lock_table).where(lock_table.c.name == LOCK_NAME)).first()
        if found is None:
            return None
        age = (_utc_now(conn, self.dialect) - _as_datetime(found.heartbeat_at)).total_seconds()
        gone = age > self.stale_after or (found.host == socket.gethostname() and not _running(found.pid))
        return Holder(found.token, found.host, found.pid, found.command, _as_datetime(found.since), age, gone)

    def _ensure_table(self) -> None:
        """CREATE TABLE, racing other crossfades doing the same: the loser finds it made."""
        def create() -> None:
            with self.engine.begin() as conn:
                _metadata.create_all(conn, checkfirst=True)
        try:
            retry_when_busy(self.dialect, self.policy, create)
        except sa.exc.DBAPIError:
            with self.engine.connect() as conn:
                if not sa.inspect(conn).has_table(LOCK_TABLE):
                    raise

    # --- heartbeat ---------------------------------------------------------------------------
    def _start_heartbeat(self) -> None:
        self._stop = threading.Event()
        self._beating = threading.Thread(target=self._beat, args=(self._stop, self._token),
                                         name="crossfade-lock-heartbeat", daemon=True)
        self._beating.start()

    def _stop_heartbeat(self) -> None:
        self._stop.set()
        if self._beating is not None:
            self._beating.join(timeout=self.heartbeat)  # a beat stuck on the database ends on its own
            self._beating = None

    def _beat(self, stop: threading.Event, token: str) -> None:
        while not stop.wait(self.heartbeat):
            try:
                with self.engine.begin() as conn:
                    kept = conn.execute(sa.update(lock_table).where(lock_table.c.name == LOCK_NAME,
                                                                    lock_table.c.token == token)
                                        .values(heartbeat_at=_utc_now(conn, self.dialect))).rowcount
                    if kept != 1 and token == self._token:  # (not a beat late for a lock given back)
                        self._lost = self._read(conn) or Holder("", "?", 0, "nobody", datetime.min, 0.0, True)
                        return
            except sa.exc.SQLAlchemyError:
                continue  # a busy database: the next beat tries again, well within STALE_AFTER


def _utc_now(conn: sa.Connection, dialect: TriggerDialect) -> datetime:
    return _as_datetime(conn.exec_driver_sql(dialect.utc_now_sql).scalar())


def _as_datetime(value: datetime | str) -> datetime:
    """SQLite hands DATETIME back as text."""
    return value.replace(tzinfo=None) if isinstance(value, datetime) else datetime.fromisoformat(str(value))


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: running
        return True
    return True


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def one_operator(phase: str, refuse_first: str | None = None) -> Callable:
    """A phase method of a runner (with `.operator`) held under the operator lock, run again when
    a deadlock aborted it (rerun.py). `refuse_first`:
    a method of the runner that raises what the phase would refuse, called before the lock is
    taken, so that a refused change leaves the database untouched (not even the lock's table);
    the phase itself decides again under the lock."""
    def wrap(method: Callable) -> Callable:
        def run(self, change, *args, **kwargs):
            def whole_phase():
                if refuse_first is not None and not self.operator.holding:
                    getattr(self, refuse_first)(change)
                with self.operator.held(f"crossfade {phase} {change.id}"):
                    return method(self, change, *args, **kwargs)
            return again_after_deadlock(self.operator.dialect, self.operator.log, phase, whole_phase)
        run.__name__, run.__qualname__, run.__doc__ = method.__name__, method.__qualname__, method.__doc__
        run.__wrapped__ = method
        return run
    return wrap


__all__ = ["HEARTBEAT", "LOCK_TABLE", "STALE_AFTER", "Holder", "OperatorLock", "lock_table", "one_operator"]
