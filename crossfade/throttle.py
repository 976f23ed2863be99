"""Throttle: the backfill waits between batches while replicas lag or the server is loaded.

As pt-online-schema-change and gh-ost do, before each batch crossfade looks at
- replication lag, against `max_lag` seconds (default 1 s; None: not looked at):
  PostgreSQL: every replica `pg_stat_replication` lists on the primary. `replay_lag` alone misses a
  paused or stalled replica (its lag is only measured when replay moves), so a replica whose
  `replay_lsn` is behind the primary's WAL and has not moved counts as lagging by the time it has
  stood still. MariaDB/MySQL: a primary does not know its replicas' lag, so, as pt-osc's
  `--recursion-method=dsn`, the operator names them (`replicas`, repeatable `--replica URL`) and
  crossfade reads `SHOW REPLICA STATUS` on each: `Seconds_Behind_Master` NULL (SQL or IO thread
  stopped) is lagging. A PostgreSQL replica URL is read the same way on the replica itself (a
  cascaded replica the primary does not list). Galera: flow control, when the node crossfade runs on
  is a Galera node (`wsrep_flow_control_paused_ns` moved since the last look: the cluster was paused
  because a node could not keep up).
- server load, against `max_load` thresholds (default none: what a busy server is depends on the
  machine, and a default that waits forever on one would surprise): `Threads_running=25` (any
  numeric global status variable) on MariaDB/MySQL, as pt-osc's `--max-load`; `active_backends=N`
  (client sessions running a statement, from pg_stat_activity) or `backends=N` on PostgreSQL.

A wait holds nothing: it runs between batches, after one committed and before the next begins,
and each look is one autocommitted read on a connection returned to its pool at once.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import sqlalchemy as sa

from .errors import CrossfadeError

DEFAULT_MAX_LAG = 1.0
# Seconds between two looks while batches run: a look costs 1-3 ms (a query on each source) and a
# batch ~40 ms, so looking before every batch cost 5% on PostgreSQL (benchmarks/throttle.py); a
# quarter second reacts well within a lag limit of seconds.
LOOK_EVERY = 0.25
POLL = 0.1  # seconds between two looks while waiting
_PG_LOAD = {  # the load counters PostgreSQL offers to --max-load, read from pg_stat_activity
    "active_backends": "state = 'active'",
    "backends": "true",
}


class ThrottleOptionError(CrossfadeError, ValueError):
    """A throttle option that makes no sense or a replica that cannot be read; raised before anything runs."""

    def __init__(self, option: str, problem: str):
        self.option, self.problem = option, problem
        super().__init__(f"{option} {problem}")


@dataclass(frozen=True)
class ThrottleOptions:
    """When the backfill waits: `max_lag` seconds of replication lag (None: never for lag),
    `max_load` {status variable: threshold} (empty: never for load), `replicas` URLs to read lag on."""

    max_lag: float | None = DEFAULT_MAX_LAG
    max_load: dict[str, float] = field(default_factory=dict)
    replicas: tuple[str, ...] = ()

    def __post_init__(self):
        check_options(self.max_lag, self.max_load, self.replicas)


def parse_max_load(text: str | None) -> dict[str, float]:
    """`Threads_running=25,Threads_connected=200` as {name: threshold}; '' or None: no load limit."""
    limits: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in (text or "").split(","))):
        name, sep, value = part.partition("=")
        if not sep or not name.strip():
            raise ThrottleOptionError("--max-load", f"takes VARIABLE=THRESHOLD[,...] (got {part!r})")
        try:
            limits[name.strip()] = float(value)
        except ValueError:
            raise ThrottleOptionError("--max-load", f"threshold of {name.strip()} must be a number "
                                      f"(got {value!r})") from None
    check_options(None, limits, ())
    return limits


def check_options(max_lag: float | None, max_load: dict[str, float], replicas: tuple[str, ...]) -> None:
    """Raise ThrottleOptionError for values that make no sense (what the database must tell,
    a status variable's existence, a replica's reachability, is `Throttle.check_ready`'s)."""
    if max_lag is not None and not (_is_number(max_lag) and max_lag > 0):
        raise ThrottleOptionError("--max-lag", f"must be a positive number of seconds (got {max_lag!r})")
    for name, limit in max_load.items():
        if not (_is_number(limit) and limit > 0):
            raise ThrottleOptionError("--max-load", f"threshold of {name} must be a positive number (got {limit!r})")
    for url in replicas:
        try:
            sa.make_url(url)
        except sa.exc.ArgumentError:
            raise ThrottleOptionError("--replica", f"is not a database URL: {url!r}") from None


class Throttle:
    """The sources of a wait for one database, opened by `check_ready`, closed by `close`."""

    def __init__(self, engine: sa.Engine, options: ThrottleOptions,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep):
        self.engine, self.options, self.clock, self.sleep = engine, options, clock, sleep
        self.sources: list = []
        self.waited = 0.0  # seconds spent waiting, over the throttle's life
        self._looked = -math.inf  # when the sources were last looked at

    def check_ready(self) -> Throttle:
        """Open every source and read it once; a bad one raises ThrottleOptionError (one line)."""
        self.sources = _sources(self.engine, self.options)
        for source in self.sources:
            source.reason(self.clock())
        return self

    def reason(self) -> str | None:
        """Why the next batch must wait, or None. A source that cannot be read any more (a replica
        restarting) is a reason: waiting is safe, and the look repeats until it can be read."""
        now = self._looked = self.clock()
        reasons = []
        for source in self.sources:
            try:
                reasons.append(source.reason(now))
            except ThrottleOptionError as exc:
                reasons.append(str(exc).removeprefix(f"{exc.option} "))
        return "; ".join(why for why in reasons if why) or None

    def wait(self, report: Callable[[str], None] | None = None) -> float:
        """Sleep while there is a reason, telling `report` why at every look; the seconds waited.
        Looks at most every LOOK_EVERY seconds: sooner, it returns at once."""
        started = self.clock()
        if not self.sources or started - self._looked < LOOK_EVERY:
            return 0.0
        while (why := self.reason()) is not None:
            if report is not None:
                report(why)
            self.sleep(POLL)
        took = self.clock() - started
        self.waited += took
        return took

    def close(self) -> None:
        for source in self.sources:
            source.close()
        self.sources = []


def _sources(engine: sa.Engine, options: ThrottleOptions) -> list:
    name = engine.dialect.name
    if name == "sqlite":
        if options.max_load:
            raise ThrottleOptionError("--max-load", "needs a database server: SQLite has no server load to read")
        if options.replicas:
            raise ThrottleOptionError("--replica", "needs a database server: SQLite has no replicas")
        return []
    sources: list = []
    if options.max_load:
        sources.append(ServerLoad(engine, options.max_load))
    if options.max_lag is None:
        return sources
    if name == "postgresql":
        sources.append(PostgresReplicas(engine, options.max_lag))
    else:
        sources.append(GaleraFlowControl(engine))
    sources += [_replica(url, options.max_lag) for url in options.replicas]
    return sources


def _replica(url: str, max_lag: float):
    try:
        # One pooled connection: connecting anew for every look cost ~45 ms on MariaDB here.
        engine = sa.create_engine(url, pool_size=1, max_overflow=0, pool_pre_ping=True,
                                  connect_args=_connect_timeout(url))
    except (sa.exc.ArgumentError, ImportError) as exc:
        raise ThrottleOptionError("--replica", f"{_where(url)}: {exc}") from None
    return PostgresReplica(engine, max_lag) if engine.dialect.name == "postgresql" else MariaReplica(engine, max_lag)


def _connect_timeout(url: str) -> dict:
    driver = sa.make_url(url).get_backend_name()
    return {"connect_timeout": 5} if driver in ("postgresql", "mysql", "mariadb") else {}


class _Source:
    engine: sa.Engine

    def _read(self, what: str, sql: str, named: bool = False) -> list:
        """The rows of one autocommitted read (`named`: as dicts); a failure as ThrottleOptionError."""
        try:
            with self.engine.connect() as conn:
                result = conn.exec_driver_sql(sql)
                rows = [dict(zip(result.keys(), row)) if named else row for row in result]
                conn.rollback()  # nothing stays open on the pooled connection
                return rows
        except sa.exc.DBAPIError as exc:
            raise ThrottleOptionError(what, f"cannot be read on {_where(self.engine.url)}: "
                                      f"{str(exc.orig).strip().splitlines()[0]}") from None

    def close(self) -> None:
        pass


class PostgresReplicas(_Source):
    """The primary's view of its streaming replicas (pg_stat_replication)."""

    def __init__(self, engine: sa.Engine, max_lag: float):
        self.engine, self.max_lag = engine, max_lag
        self._last: dict[int, str] = {}  # walsender pid -> replay_lsn at the last look
        self._standing: dict[int, float] = {}  # walsender pid -> since when it is behind and has not moved

    def reason(self, now: float) -> str | None:
        rows = self._read("--max-lag", "SELECT r.pid, coalesce(r.application_name, ''), r.client_addr::text, "
                          "r.replay_lsn::text, extract(epoch FROM r.replay_lag), "
                          "pg_wal_lsn_diff(pg_current_wal_lsn(), r.replay_lsn), EXISTS (SELECT FROM "
                          "pg_replication_slots s WHERE s.active_pid = r.pid AND s.slot_type = 'logical') "
                          "FROM pg_stat_replication r")
        live = {row[0] for row in rows}
        self._last = {pid: lsn for pid, lsn in self._last.items() if pid in live}
        lagging = [why for why in (self._lag(now, *row) for row in rows) if why]
        return "; ".join(lagging) or None

    def _lag(self, now: float, pid: int, name: str, addr: str | None, lsn: str | None,
             replay_lag: float | None, behind: float | None, logical: bool) -> str | None:
        who = f"{'logical subscriber' if logical else 'replica'} {name or addr or pid}"
        if lsn is None or behind is None:  # not streaming yet, or not ours to see (needs pg_monitor)
            return None
        if logical:  # it confirms positions only every so often (wal_receiver_status_interval): replay_lag alone
            lag = float(replay_lag or 0)
            return f"{who} is {lag:.2f} s behind (max lag {self.max_lag:g} s)" if lag > self.max_lag else None
        previous, self._last[pid] = self._last.get(pid), lsn
        if behind <= 0:
            self._standing.pop(pid, None)
            return None
        if previous != lsn or pid not in self._standing:
            self._standing[pid] = now  # behind, and standing still from here on
        lag = max(float(replay_lag or 0), now - self._standing[pid])
        if lag <= self.max_lag:
            return None
        if previous == lsn:
            return (f"{who} has replayed nothing for {lag:.1f} s while {_bytes(behind)} of WAL wait "
                    f"(paused? max lag {self.max_lag:g} s)")
        return f"{who} is {lag:.2f} s behind (max lag {self.max_lag:g} s)"


class PostgresReplica(_Source):
    """A PostgreSQL replica read directly (--replica URL): replay paused, or behind by time."""

    def __init__(self, engine: sa.Engine, max_lag: float):
        self.engine, self.max_lag = engine, max_lag

    def reason(self, now: float) -> str | None:
        [(recovering, paused, lag)] = self._read("--replica", (
            "SELECT pg_is_in_recovery(), pg_is_in_recovery() AND pg_is_wal_replay_paused(), "
            "CASE WHEN pg_last_wal_receive_lsn() IS NULL OR pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() "
            "THEN 0 ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp()) END"))
        where = _where(self.engine.url)
        if not recovering:
            raise ThrottleOptionError("--replica", f"{where} is not a replica (pg_is_in_recovery() is false)")
        if paused:
            return f"replica {where} has its replay paused (pg_wal_replay_pause)"
        if lag is not None and float(lag) > self.max_lag:
            return f"replica {where} is {float(lag):.1f} s behind (max lag {self.max_lag:g} s)"
        return None

    def close(self) -> None:
        self.engine.dispose()


class MariaReplica(_Source):
    """A MariaDB/MySQL replica (--replica URL): SHOW REPLICA STATUS's Seconds_Behind_Master."""

    def __init__(self, engine: sa.Engine, max_lag: float):
        self.engine, self.max_lag = engine, max_lag

    def reason(self, now: float) -> str | None:
        where = _where(self.engine.url)
        rows = self._read("--replica", "SHOW SLAVE STATUS", named=True)  # MariaDB 10.5+, MySQL 8: also REPLICA
        if not rows:
            raise ThrottleOptionError("--replica", f"{where} is not a replica (SHOW REPLICA STATUS is empty)")
        lagging = [why for why in (self._lag(where, row) for row in rows) if why]
        return "; ".join(lagging) or None

    def _lag(self, where: str, row: dict) -> str | None:
        behind = row.get("Seconds_Behind_Master")
        if behind is None:
            stopped = [t for t in ("IO", "SQL") if row.get(f"Slave_{t}_Running") != "Yes"]
            return (f"replica {where} is not replicating ({' and '.join(stopped) or 'SQL'} thread stopped: "
                    "Seconds_Behind_Master is NULL)")
        if float(behind) > self.max_lag:
            return f"replica {where} is {behind} s behind (max lag {self.max_lag:g} s)"
        return None

    def close(self) -> None:
        self.engine.dispose()


class GaleraFlowControl(_Source):
    """On a Galera node: wait while flow control paused the cluster since the last look (a node's
    receive queue passed its limit), as its cumulative `wsrep_flow_control_paused_ns` shows."""

    def __init__(self, engine: sa.Engine):
        self.engine = engine
        self._paused_ns: int | None = None
        self._galera = True  # until a look shows otherwise

    def reason(self, now: float) -> str | None:
        if not self._galera:
            return None
        found = dict(self._read("--max-lag", "SHOW GLOBAL STATUS WHERE Variable_name IN "
                                "('wsrep_flow_control_paused_ns', 'wsrep_local_recv_queue')"))
        if "wsrep_flow_control_paused_ns" not in found:  # not a Galera node: no need to look again
            self._galera = False
            return None
        paused, self._paused_ns = self._paused_ns, int(found["wsrep_flow_control_paused_ns"])
        if paused is None or self._paused_ns <= paused:
            return None
        return (f"Galera flow control paused the cluster for {(self._paused_ns - paused) / 1e9:.2f} s "
                f"(receive queue here: {found.get('wsrep_local_recv_queue', '?')})")


class ServerLoad(_Source):
    """Status counters against --max-load thresholds on the server the backfill writes to."""

    def __init__(self, engine: sa.Engine, limits: dict[str, float]):
        self.engine, self.limits = engine, limits

    def reason(self, now: float) -> str | None:
        values = self._values()
        over = [f"{name}={values[name]:g} (max {limit:g})" for name, limit in self.limits.items()
                if values[name] > limit]
        return f"server load: {', '.join(over)}" if over else None

    def _values(self) -> dict[str, float]:
        if self.engine.dialect.name == "postgresql":
            unknown = sorted(set(self.limits) - set(_PG_LOAD))
            if unknown:
                raise ThrottleOptionError("--max-load", f"knows no PostgreSQL counter {unknown[0]!r} "
                                          f"(PostgreSQL offers {', '.join(sorted(_PG_LOAD))})")
            counts = ", ".join(f"count(*) FILTER (WHERE {_PG_LOAD[name]})" for name in self.limits)
            [row] = self._read("--max-load", f"SELECT {counts} FROM pg_stat_activity "
                               "WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()")
            return dict(zip(self.limits, map(float, row)))
        names = ", ".join(f"'{name}'" for name in self.limits if name.replace("_", "").isalnum())
        found = {name.lower(): value for name, value in
                 self._read("--max-load", f"SHOW GLOBAL STATUS WHERE Variable_name IN ({names or 'NULL'})")}
        values = {}
        for name in self.limits:
            value = found.get(name.lower())
            if value is None or not _is_numeric_text(value):
                raise ThrottleOptionError("--max-load", f"knows no numeric global status variable {name!r} "
                                          f"on {_where(self.engine.url)} (e.g. Threads_running)")
            values[name] = float(value)
        return values


def _where(url: str | sa.URL) -> str:
    parsed = sa.make_url(url)
    return f"{parsed.host or 'localhost'}:{parsed.port}" if parsed.port else (parsed.host or str(parsed.database))


def _bytes(count: float) -> str:
    for unit in ("bytes", "kB", "MB", "GB"):
        if count < 1024 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "bytes" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count} bytes"


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_numeric_text(value) -> bool:
    try:
        float(value)
        return True
    except (TypeError, ValueError):
        return False


__all__ = ["DEFAULT_MAX_LAG", "Throttle", "ThrottleOptionError", "ThrottleOptions", "parse_max_load"]
