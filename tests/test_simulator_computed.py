"""The simulator knows what no trigger does: Python backfills (compute_column), data steps and
blocked writes; and it catches a mutant of each. On SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import pytest
import simulated_changes
import sqlalchemy as sa

from crossfade.testing import Settings, mutants, simulate
from crossfade.testing.computed import declared_refusal
from crossfade.testing.journal import Refusal
from crossfade.testing.model import RELEASE_N, RELEASE_N1, plan_tables


def run(engine, upgrade, **overrides):
    settings = Settings(**({"seed_rows": 40, "writes_per_phase": 120, "values": upgrade.values,
                            "runner_options": {"batch_size": 10}} | overrides))
    return simulate(upgrade.change, upgrade.release_n, upgrade.release_n1,
                    engine.url.render_as_string(hide_password=False), settings)


def failed(result) -> dict:
    return {n: c.summary for n, c in result.checks.items() if not c.ok}


def test_keystones_credential_encryption_passes_every_check(engine):
    result = run(engine, simulated_changes.compute_column())
    assert result.ok, failed(result)
    assert {"python backfill", "no refused writes", "no lost writes", "clean contract"} <= set(result.checks)
    assert "refused, as declared" in result.checks["no refused writes"].summary


def test_with_release_n1_identified_it_keeps_writing_while_release_n_is_blocked(engine, dialect_name):
    """No refusal of release N+1's writes is declared where the database tells the releases apart:
    'no refused writes' would fail on one."""
    result = run(engine, simulated_changes.compute_column_identified())
    assert result.ok, failed(result)
    assert ("N+1" in result.latency.get("expand", {})) == (dialect_name != "sqlite")


def test_a_data_step_passes_every_check(engine):
    result = run(engine, simulated_changes.data_step())
    assert result.ok, failed(result)
    assert result.checks["data steps"].ok


def test_the_simulator_catches_a_block_that_is_not_installed(engine):
    with mutants.block_not_installed():
        result = run(engine, simulated_changes.compute_column())
    assert not result.checks["python backfill"].ok, result.checks
    assert "not computed (all NULL)" in "\n".join(result.checks["python backfill"].details)


def test_the_simulator_catches_a_python_backfill_that_skips_a_batch(engine):
    # Release N may only delete while Keystone's rule blocks its writes: with 100 rows and 120
    # writes a phase, the table was sometimes empty by the backfill's end and nothing was left to judge.
    with mutants.backfill_skips_a_batch():
        result = run(engine, simulated_changes.compute_column(), seed_rows=300, writes_per_phase=40)
    assert not result.checks["python backfill"].ok, result.checks
    assert "not computed (all NULL)" in "\n".join(result.checks["python backfill"].details)


def test_the_simulator_catches_a_data_step_run_twice(engine):
    with mutants.data_step_runs_twice():
        result = run(engine, simulated_changes.data_step())
    assert not result.checks["data steps"].ok, result.checks
    assert "ran 2 time(s)" in "\n".join(result.checks["data steps"].details)


def test_a_block_error_outside_the_blocks_window_or_for_an_unblocked_release_is_not_declared():
    upgrade = simulated_changes.compute_column_identified()
    plans = plan_tables(upgrade.change, upgrade.release_n, upgrade.release_n1)
    message = plans["secrets"].blocks[0].message

    def refusal(release="N", kind="insert", start=5.0):
        return Refusal("w", release, "roll", kind, "secrets", 1, message, start, start + 0.1)

    window = (1.0, 9.0)
    assert declared_refusal(refusal(), plans, upgrade.change, "postgresql", window)
    assert not declared_refusal(refusal(start=0.5), plans, upgrade.change, "postgresql", window)  # before expand
    assert not declared_refusal(refusal(start=9.5), plans, upgrade.change, "postgresql", window)  # after contract
    assert not declared_refusal(refusal(kind="delete"), plans, upgrade.change, "postgresql", window)
    assert not declared_refusal(refusal(release=RELEASE_N1), plans, upgrade.change, "postgresql", window)
    assert declared_refusal(refusal(release=RELEASE_N1), plans, upgrade.change, "sqlite", window)  # cannot tell
    assert RELEASE_N == "N"


def test_a_table_only_a_data_step_writes_is_no_workers_table():
    upgrade = simulated_changes.data_step()
    assert set(plan_tables(upgrade.change, upgrade.release_n, upgrade.release_n1)) == {"items"}


@pytest.mark.parametrize("name", ["compute_column", "compute_column_identified", "data_step"])
def test_the_new_simulated_changes_validate_against_release_n(name):
    upgrade = simulated_changes.ALL[name]()
    from crossfade.schema import Schema

    upgrade.change.validate(Schema.from_metadata(upgrade.release_n))
    assert isinstance(upgrade.release_n1, sa.MetaData)
