"""One operator at a time (issue 10, finding 4): the crossfade lock held in `crossfade_lock`.

Real `crossfade` processes against real databases: two phases started together never interleave
(the second waits with --wait or stops naming the first, exit code 75), a holder killed with
SIGKILL leaves a lock the next phase takes over, and every pair ends in a state a rerun finishes.
"""

from __future__ import annotations

import itertools
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from crossfade.cli import BUSY, app
from crossfade.loader import import_file, load_changes
from crossfade.oplock import LOCK_TABLE, lock_table
from crossfade.runner import Runner
from crossfade.state import Phase

ROOT = Path(__file__).resolve().parents[1]
GLANCE = ROOT / "examples" / "glance"
CHANGES = str(GLANCE / "changes")
CHANGE = load_changes(CHANGES).changes[0]
release_n = import_file(GLANCE / "release_n.py")
ROWS = 40

cli = CliRunner()

FORK = multiprocessing.get_context("fork")


def _crossfade(args: tuple[str, ...], pause_after: str, slow: str, go, stdout: str, stderr: str) -> None:
    """A forked `crossfade` process: its imports are done already, so two of them start their
    phase within a millisecond of each other when `go` is set. pause_after="step=seconds" holds it
    after that step, with the lock, for a second crossfade to meet it there; slow="method=seconds"
    before each call of that Runner method."""
    sys.stdout, sys.stderr = open(stdout, "w"), open(stderr, "w")  # noqa: SIM115 - closed by os._exit
    if slow:
        method, delay = slow.rsplit("=", 1)
        original = getattr(Runner, method)

        def slowed(self, *args, **kwargs):
            time.sleep(float(delay))
            return original(self, *args, **kwargs)
        setattr(Runner, method, slowed)
    if pause_after:
        step, seconds = pause_after.rsplit("=", 1)
        after_step = Runner._after_step

        def pausing(self, phase: str, name: str) -> None:
            after_step(self, phase, name)
            if name == step:
                time.sleep(float(seconds))
        Runner._after_step = pausing
    go.wait()
    code = 1
    try:
        app(list(args), prog_name="crossfade")
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


class Crossfade:
    """One `crossfade` process, forked at once, started at `go()`."""

    def __init__(self, tmp_path: Path, name: str, *args: str, pause_after: str = "", slow: str = ""):
        self.stdout, self.stderr = tmp_path / f"{name}.out", tmp_path / f"{name}.err"
        self._go = FORK.Event()
        self.proc = FORK.Process(target=_crossfade, args=(args, pause_after, slow, self._go, str(self.stdout),
                                                          str(self.stderr)))
        self.proc.start()

    def go(self) -> None:
        self._go.set()

    def running(self) -> bool:
        return self.proc.is_alive()

    def kill(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)

    def finish(self) -> tuple[int, str, str]:
        self.proc.join(120)  # reaped: its pid is gone
        return self.proc.exitcode, self.stdout.read_text(), self.stderr.read_text()


def url_of(engine: sa.Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def seed(engine: sa.Engine, phase: Phase) -> None:
    """Release N's images table with ROWS rows, the change brought to `phase`."""
    release_n.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(release_n.images.insert(), [{"name": f"i{i}", "is_public": i % 2 == 0} for i in range(ROWS)])
    runner = Runner(engine)
    steps = {Phase.PENDING: [], Phase.EXPANDED: [runner.expand],
             Phase.MIGRATED: [runner.expand, runner.migrate]}[phase]
    for step in steps:
        step(CHANGE)
    engine.dispose()  # no connection of ours crosses the fork of a Crossfade


def lock_rows(engine: sa.Engine) -> list:
    with engine.connect() as conn:
        if not sa.inspect(conn).has_table(LOCK_TABLE):
            return []
        return conn.execute(sa.select(lock_table)).all()


def columns(engine: sa.Engine) -> set[str]:
    with engine.connect() as conn:
        return {c["name"] for c in sa.inspect(conn).get_columns("images")}


def triggers(engine: sa.Engine) -> dict:
    with engine.connect() as conn:
        return Runner(engine).dialect.catalog_objects(conn, {"images"})


def triggers_or_busy(engine: sa.Engine) -> bool:
    """Whether the triggers are still there (a catalog read racing their DROP may fail: yes)."""
    try:
        return bool(triggers(engine))
    except sa.exc.DBAPIError:
        return True


def assert_finished(engine: sa.Engine, phase: Phase) -> None:
    """The change is wholly contracted or wholly rolled back, and the database agrees."""
    runner = Runner(engine)
    assert runner.load(CHANGE).phase is phase
    assert runner.problems(CHANGE) == []
    expected = {"id", "name", "status", "visibility" if phase is Phase.CONTRACTED else "is_public"}
    assert columns(engine) == expected
    assert triggers(engine) == {}  # no trigger or function left
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM images")).scalar() == ROWS


def finish(engine: sa.Engine, rolling_back: bool) -> Phase:
    """Rerun what the operators meant: rollback if one of them asked for it and it still can,
    otherwise the phases forward to contracted."""
    runner = Runner(engine)
    phase = runner.load(CHANGE).phase
    if rolling_back and phase not in (Phase.CONTRACTING, Phase.CONTRACTED):
        runner.rollback(CHANGE)
        return Phase.PENDING if phase is Phase.PENDING else Phase.ROLLED_BACK  # never expanded: nothing to do
    if phase in (Phase.PENDING, Phase.EXPANDING, Phase.ROLLED_BACK):
        runner.expand(CHANGE)
    if runner.load(CHANGE).phase in (Phase.EXPANDED, Phase.MIGRATING):
        runner.migrate(CHANGE)
    runner.contract(CHANGE)
    return Phase.CONTRACTED


def assert_clean_outcome(code: int, stdout: str, stderr: str) -> None:
    """Done, refused as out of order, or stopped by the lock: never a raw database error."""
    assert "Traceback" not in stderr and "database error" not in stderr, stdout + stderr
    assert code in (0, 1, BUSY), stdout + stderr
    if code == BUSY:
        assert "another crossfade is running on this database: 'crossfade " in stderr
    if code == 1:
        assert ("needs it" in stderr or "can no longer be rolled back" in stderr
                or "nothing to expand" in stderr), stderr


# --- every pair of phases, started together --------------------------------------------------

PHASES = ("expand", "migrate", "contract", "rollback")
START = {"expand": Phase.PENDING, "migrate": Phase.EXPANDED, "contract": Phase.MIGRATED, "rollback": Phase.MIGRATED}
ORDER = [Phase.PENDING, Phase.EXPANDED, Phase.MIGRATED]


@pytest.mark.parametrize(("first", "second"), list(itertools.combinations_with_replacement(PHASES, 2)))
def test_two_phases_started_together_end_in_a_state_a_rerun_finishes(engine, tmp_path, first, second):
    start = min(START[first], START[second], key=ORDER.index)
    seed(engine, start)
    url = url_of(engine)
    # One stops at once if the other holds the lock, the other waits for it: both paths run.
    runs = [Crossfade(tmp_path, "a", first, CHANGES, "--url", url, "--batch-size", "8")
            if first == "migrate" else Crossfade(tmp_path, "a", first, CHANGES, "--url", url),
            Crossfade(tmp_path, "b", second, CHANGES, "--url", url, "--wait", "60")]
    for run in runs:
        run.go()
    outcomes = [run.finish() for run in runs]

    for outcome in outcomes:
        assert_clean_outcome(*outcome)
    assert lock_rows(engine) == []  # both gave the lock back
    assert_finished(engine, finish(engine, rolling_back="rollback" in (first, second)))


# --- finding 4's exact sequence ---------------------------------------------------------------

def test_rollback_50ms_after_contract_stops_naming_the_contract_and_contract_finishes(engine, tmp_path):
    seed(engine, Phase.MIGRATED)
    url = url_of(engine)
    # Contract spends a second on its checks before it records `contracting`: there, rollback
    # (50 ms after contract started) used to drop visibility under it (contract then failed with a
    # raw "column images.visibility does not exist" on PostgreSQL and MariaDB).
    contract = Crossfade(tmp_path, "contract", "contract", CHANGES, "--url", url, slow="_refuse_remaining_nulls=2")
    rollback = Crossfade(tmp_path, "rollback", "rollback", CHANGES, "--url", url)
    contract.go()
    started = time.monotonic()
    while not lock_rows(engine) and time.monotonic() - started < 0.5:  # a loaded machine: its lock first
        time.sleep(0.005)
    time.sleep(0.05)
    rollback.go()
    code, stdout, stderr = rollback.finish()

    assert code == BUSY, stdout + stderr
    line = stderr.strip()
    assert "\n" not in line
    assert line.startswith(f"error: another crossfade is running on this database: 'crossfade contract {CHANGES}' "
                           f"on host {os.uname().nodename}, pid {contract.proc.pid}, since ")
    assert line.endswith("Nothing was changed; run again when it is done, or pass --wait SECONDS")
    code, stdout, stderr = contract.finish()
    assert code == 0, stdout + stderr
    assert cli.invoke(app, ["contract", CHANGES, "--url", url]).exit_code == 0  # a rerun: nothing to do
    assert cli.invoke(app, ["check", CHANGES, "--url", url]).exit_code == 0
    assert_finished(engine, Phase.CONTRACTED)


# --- a holder that is gone ---------------------------------------------------------------------

def wait_for_phase(engine: sa.Engine, phase: Phase, proc: Crossfade, done: int = 0) -> None:
    runner = Runner(engine)
    deadline = time.monotonic() + 60
    while True:
        current = runner.load(CHANGE)
        if current.phase is phase and current.checkpoint.get("images", {}).get("done", 0) >= done:
            return
        assert time.monotonic() < deadline and proc.running(), proc.finish()
        time.sleep(0.01)


def test_a_migrate_killed_mid_way_is_a_problem_for_check_and_its_lock_is_taken_over(engine, tmp_path):
    seed(engine, Phase.EXPANDED)
    url = url_of(engine)
    migrate = Crossfade(tmp_path, "migrate", "migrate", CHANGES, "--url", url, "--batch-size", "1", "--pause", "0.1")
    migrate.go()
    wait_for_phase(engine, Phase.MIGRATING, migrate, done=3)
    migrate.kill()
    migrate.finish()
    [row] = lock_rows(engine)
    assert row.pid == migrate.proc.pid  # left behind by the killed process

    check = cli.invoke(app, ["check", CHANGES, "--url", url])
    assert check.exit_code == 1, check.output  # as the README says: a phase that stopped half-way
    assert "stopped while migrating; run migrate again to finish it" in check.stdout
    [found] = json.loads(cli.invoke(app, ["status", CHANGES, "--url", url, "--json"]).stdout)
    assert f"pid {migrate.proc.pid}" in found["operator"] and "gone" in found["operator"]

    rerun = cli.invoke(app, ["migrate", CHANGES, "--url", url])
    assert rerun.exit_code == 0, rerun.output
    assert "took over the lock of a crossfade that is gone" in rerun.stdout
    assert lock_rows(engine) == []
    assert cli.invoke(app, ["check", CHANGES, "--url", url]).exit_code == 4
    assert cli.invoke(app, ["contract", CHANGES, "--url", url]).exit_code == 0
    assert_finished(engine, Phase.CONTRACTED)


def test_a_contract_killed_mid_way_is_finished_by_a_rerun_and_rollback_refuses_cleanly(engine, tmp_path):
    seed(engine, Phase.MIGRATED)
    url = url_of(engine)
    contract = Crossfade(tmp_path, "contract", "contract", CHANGES, "--url", url,
                         pause_after="drop triggers on images=60")
    contract.go()
    wait_for_phase(engine, Phase.CONTRACTING, contract)
    deadline = time.monotonic() + 60
    while triggers_or_busy(engine):  # wait until contract has dropped them, then kill it
        assert time.monotonic() < deadline and contract.running(), contract.finish()
        time.sleep(0.01)
    contract.kill()
    contract.finish()

    assert cli.invoke(app, ["check", CHANGES, "--url", url]).exit_code == 1
    rollback = cli.invoke(app, ["rollback", CHANGES, "--url", url])
    assert rollback.exit_code == 1 and "can no longer be rolled back" in rollback.stderr  # not a lock error
    rerun = cli.invoke(app, ["contract", CHANGES, "--url", url])
    assert rerun.exit_code == 0, rerun.output
    assert_finished(engine, Phase.CONTRACTED)


def hold_lock(engine: sa.Engine, host: str, pid: int, heartbeat_age: float) -> None:
    """A lock row as another crossfade leaves it, its heartbeat `heartbeat_age` seconds old."""
    runner = Runner(engine)
    runner.operator._ensure_table()
    with engine.begin() as conn:
        now = datetime.fromisoformat(str(conn.exec_driver_sql(runner.dialect.utc_now_sql).scalar()))
        conn.execute(sa.insert(lock_table).values(
            name="crossfade", token="f" * 32, host=host, pid=pid, command="crossfade contract elsewhere",
            since=now - timedelta(seconds=heartbeat_age + 5), heartbeat_at=now - timedelta(seconds=heartbeat_age)))


def test_a_live_holder_on_another_host_stops_a_phase_at_once_and_status_names_it(engine):
    seed(engine, Phase.EXPANDED)
    url = url_of(engine)
    hold_lock(engine, "db-admin-2", 4242, heartbeat_age=1)

    result = cli.invoke(app, ["migrate", CHANGES, "--url", url])

    assert result.exit_code == BUSY
    assert result.stderr.startswith("error: another crossfade is running on this database: "
                                    "'crossfade contract elsewhere' on host db-admin-2, pid 4242, since ")
    assert Runner(engine).load(CHANGE).phase is Phase.EXPANDED  # untouched
    status = cli.invoke(app, ["status", CHANGES, "--url", url])
    assert "operator lock held by 'crossfade contract elsewhere' on host db-admin-2, pid 4242" in status.stdout
    check = cli.invoke(app, ["check", CHANGES, "--url", url])
    assert check.exit_code == 3 and "a phase is running: 'crossfade contract elsewhere'" in check.stdout


def test_wait_gives_up_after_its_seconds_and_goes_on_when_the_holder_finishes(engine):
    seed(engine, Phase.EXPANDED)
    url = url_of(engine)
    hold_lock(engine, "db-admin-2", 4242, heartbeat_age=1)

    started = time.monotonic()
    result = cli.invoke(app, ["migrate", CHANGES, "--url", url, "--wait", "0.6"])
    assert result.exit_code == BUSY and "waited 0.6s" in result.stderr
    assert time.monotonic() - started >= 0.6

    def holder_finishes() -> None:
        time.sleep(0.5)
        with engine.begin() as conn:
            conn.execute(sa.delete(lock_table))
    finisher = threading.Thread(target=holder_finishes)
    finisher.start()
    started = time.monotonic()
    result = cli.invoke(app, ["migrate", CHANGES, "--url", url, "--wait", "30"])
    finisher.join()
    assert result.exit_code == 0, result.output
    assert "waiting up to 30s for another crossfade: 'crossfade contract elsewhere'" in result.stdout
    assert 0.5 <= time.monotonic() - started < 30
    assert Runner(engine).load(CHANGE).phase is Phase.MIGRATED


def test_a_holder_whose_heartbeat_stopped_is_taken_over_from_any_host(engine):
    seed(engine, Phase.EXPANDED)
    hold_lock(engine, "db-admin-2", 4242, heartbeat_age=3600)

    result = cli.invoke(app, ["migrate", CHANGES, "--url", url_of(engine)])

    assert result.exit_code == 0, result.output
    assert "took over the lock of a crossfade that is gone: 'crossfade contract elsewhere'" in result.stdout
    assert lock_rows(engine) == []


def test_a_holder_pid_that_no_longer_runs_on_this_host_is_taken_over_at_once(engine):
    seed(engine, Phase.EXPANDED)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    hold_lock(engine, os.uname().nodename, gone.pid, heartbeat_age=0)

    result = cli.invoke(app, ["migrate", CHANGES, "--url", url_of(engine)])

    assert result.exit_code == 0, result.output
    assert "took over the lock" in result.stdout


def test_the_lock_is_reentrant_within_one_runner_and_released_after_a_failed_phase(engine):
    seed(engine, Phase.EXPANDED)
    runner = Runner(engine)
    with runner.operator.held("crossfade migrate by hand"):
        runner.migrate(CHANGE)  # the runner's own lock: no wait
        [row] = lock_rows(engine)
        assert row.command == "crossfade migrate by hand" and row.pid == os.getpid()
    assert lock_rows(engine) == []

    def fail(phase: str, step: str) -> None:
        raise RuntimeError("crash")
    with pytest.raises(RuntimeError):
        Runner(engine, on_step=fail).contract(CHANGE)
    assert lock_rows(engine) == []


def test_the_heartbeat_keeps_a_long_phase_fresh_and_a_lost_lock_stops_it(engine):
    seed(engine, Phase.EXPANDED)
    runner = Runner(engine, batch_size=1, pause=0.02)
    runner.operator.heartbeat = 0.05
    beats: list[datetime] = []

    def on_step(phase: str, step: str) -> None:
        [row] = lock_rows(engine)
        beats.append(row.heartbeat_at)
        if len(beats) == 20:  # another crossfade decides this one is gone and takes the lock
            with engine.begin() as conn:
                conn.execute(sa.update(lock_table).values(token="e" * 32, host="db-admin-2", pid=1,
                                                          command="crossfade rollback elsewhere"))
            time.sleep(0.3)
    runner.on_step = on_step

    with pytest.raises(Exception, match="lost its operator lock .* to 'crossfade rollback elsewhere' on host db-admin-2"):
        runner.migrate(CHANGE)
    assert len(set(beats)) > 1  # the heartbeat moved while the phase ran
    assert len(beats) <= 22  # stopped between two steps


# --- an Alembic project's phases take the same lock -------------------------------------------------

def test_two_alembic_expands_then_two_contracts_started_together_run_each_plain_operation_once(engine, tmp_path):
    from test_alembic import EXAMPLE as PROJECT
    from test_alembic import release_1_with_tasks, version

    url = url_of(engine)
    release_1_with_tasks(engine, url, rows=10)
    engine.dispose()
    for phase in ("expand", "migrate", "contract"):
        runs = [Crossfade(tmp_path, f"{phase}-{i}", phase, str(PROJECT), "--url", url, *wait)
                for i, wait in enumerate([(), ("--wait", "60")])]
        for run in runs:
            run.go()
        outcomes = [run.finish() for run in runs]
        for code, stdout, stderr in outcomes:
            assert_clean_outcome(code, stdout, stderr)
        ran = [line for _, stdout, _ in outcomes for line in stdout.splitlines()
               if "op.create_table labels" in line and "already done" not in line]
        assert len(ran) <= 1, outcomes
        if phase != "contract" or version(engine) != "0002_task_state":  # (then 0003 is next, not contract)
            result = cli.invoke(app, [phase, str(PROJECT), "--url", url])  # the rerun finishes the phase
            assert result.exit_code == 0, result.output
    assert version(engine) == "0002_task_state"
    assert lock_rows(engine) == []
