"""The rolling-upgrade simulator, on real SQLite, PostgreSQL and MariaDB.

Every operation must pass all six checks; every deliberately broken variant must be caught by
the check meant to catch it. Runs are short here (`--soak` makes them long).
"""

from __future__ import annotations

import pytest
import simulated_changes
import sqlalchemy as sa

from crossfade import Change, ops
from crossfade.errors import CrossfadeError
from crossfade.testing import Settings, mutants, simulate
from crossfade.testing.model import RELEASE_N, RELEASE_N1, plan_tables


def url_of(engine: sa.Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def settings(request, upgrade, **overrides) -> Settings:
    soak = request.config.getoption("--soak")
    base = {"seed_rows": 200 if soak else 40, "writes_per_phase": 2000 if soak else 120, "values": upgrade.values}
    return Settings(**(base | overrides))


def run(engine, request, upgrade, **overrides):
    return simulate(upgrade.change, upgrade.release_n, upgrade.release_n1, url_of(engine),
                    settings(request, upgrade, **overrides))


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(simulated_changes.ALL))
def test_every_operation_passes_every_check(engine, request, name):
    result = run(engine, request, simulated_changes.ALL[name]())
    failed = {n: c.summary for n, c in result.checks.items() if not c.ok}
    assert result.ok, failed
    every = {"phases", "no refused writes", "sync law", "no lost writes", "clean contract", "latency"}
    assert every <= set(result.checks) <= every | {"python backfill", "data steps"}  # what no trigger does
    phases_written = set(result.latency)
    assert {"release N", "expand", "migrate", "roll", "contract", "release N+1"} <= phases_written
    assert {"N", "N+1"} <= set(result.latency["roll"])  # both releases wrote at once


# --- the simulator must be able to fail --------------------------------------------------------

def _failed(result, check: str) -> str:
    assert not result.checks[check].ok, f"{check} passed on a broken change: {result.checks}"
    return "\n".join(result.checks[check].details)


@pytest.mark.slow
def test_a_trigger_without_its_update_down_sync_breaks_the_sync_law(engine, request):
    with mutants.without_update_down_sync():
        result = run(engine, request, simulated_changes.replace_column())
    details = _failed(result, "sync law")
    assert "is_public != down(visibility)" in details
    assert "release N+1" in details and "update images" in details  # the writes that led there


@pytest.mark.slow
def test_a_trigger_that_overwrites_release_n1_edits_loses_writes(engine, request):
    """The law still holds (B = up(A) is a value down maps back), so only the journals see it."""
    with mutants.overwrites_release_n1_updates():
        result = run(engine, request, simulated_changes.replace_column())
    details = _failed(result, "no lost writes")
    assert "release N+1 wrote visibility" in details


@pytest.mark.slow
def test_a_trigger_without_its_insert_up_sync_breaks_the_sync_law(engine, request):
    with mutants.without_insert_up_sync():
        result = run(engine, request, simulated_changes.replace_column())
    details = _failed(result, "sync law")
    assert "insert images" in details and "release N," in details


@pytest.mark.slow
def test_a_link_without_its_down_sync_breaks_the_sync_law(engine, request):
    """split_table: release N+1's writes to profiles never reach users.bio and users.theme."""
    with mutants.without_link_down_sync():
        result = run(engine, request, simulated_changes.split_table())
    details = _failed(result, "sync law")
    assert "users(bio, theme) != profiles(bio, theme)" in details
    assert "(release N+1," in details and "users.bio=" in details and "profiles.bio=" in details


@pytest.mark.slow
def test_keystones_derive_guard_is_caught_as_a_broken_derived_law(engine, request):
    """derive_column with Keystone 014's hand-written guard (`target <> NEW.value`): a login
    written while its account's domain is NULL never reaches the account."""
    with mutants.keystones_derive_guard():
        result = run(engine, request, simulated_changes.derive_column())
    details = _failed(result, "sync law")
    assert "accounts.domain != its derived value (reads accounts.domain=None, derived=" in details
    assert "_logins " in details  # the history shows the logins written for the account


@pytest.mark.slow
def test_transforms_that_break_the_round_trip_law_are_caught_when_forced_in(engine, request):
    upgrade = simulated_changes.replace_column()
    upgrade.change = Change(ops.replace_column(
        "images", "is_public", sa.Column("visibility", sa.String(16), nullable=False, server_default="shared"),
        up=lambda is_public: sa.case((is_public, "public"), else_="shared"),
        down=lambda visibility: visibility == "shared"), id="sim_broken_round_trip")
    with mutants.past_the_round_trip_law():
        result = run(engine, request, upgrade)
    _failed(result, "sync law")


@pytest.mark.slow
def test_a_trigger_left_behind_after_contract_fails_the_clean_contract_check(engine, request):
    with mutants.triggers_left_behind():
        result = run(engine, request, simulated_changes.replace_column())
    assert "crossfade_images" in _failed(result, "clean contract")


@pytest.mark.slow
def test_contract_while_release_n_still_writes_reports_release_n_failures(engine, request):
    result = run(engine, request, simulated_changes.replace_column(), drain=False)
    details = _failed(result, "no refused writes")
    assert "(release N, contract)" in details or "(release N, release N+1)" in details


# --- cross-table changes: one logical table, stored two ways ------------------------------------

def test_a_table_release_n1_stores_another_table_in_is_no_table_of_its_own():
    split, rename = simulated_changes.split_table(), simulated_changes.rename_table()
    plans = plan_tables(split.change, split.release_n, split.release_n1)
    assert list(plans) == ["users"]
    assert plans["users"].table_names(RELEASE_N) == ["users"]
    assert plans["users"].table_names(RELEASE_N1) == ["users", "profiles"]
    assert plans["users"].column(RELEASE_N1, "bio").table.name == "profiles"
    assert plans["users"].with_required(RELEASE_N1, ["bio"]) == ["bio", "theme"]  # a new profile needs a theme
    plans = plan_tables(rename.change, rename.release_n, rename.release_n1)
    assert list(plans) == ["users"] and plans["users"].table_names(RELEASE_N1) == ["accounts"]


def test_release_n1_metadata_keeping_a_moved_column_is_refused():
    upgrade = simulated_changes.split_table()
    sa.Table("users", upgrade.release_n1, sa.Column("bio", sa.String(200)), extend_existing=True)
    with pytest.raises(CrossfadeError, match="bio in 'users' and in profiles"):
        plan_tables(upgrade.change, upgrade.release_n, upgrade.release_n1)


# --- bad input -----------------------------------------------------------------------------------

def test_metadata_missing_a_table_of_the_change_is_refused_before_anything_runs(engine):
    upgrade = simulated_changes.rename_column()
    with pytest.raises(CrossfadeError, match="release N\\+1's metadata has no table 'users'"):
        simulate(upgrade.change, upgrade.release_n, sa.MetaData(), url_of(engine))
    assert not sa.inspect(engine).get_table_names()


def test_a_column_type_without_values_must_be_given_values(engine):
    upgrade = simulated_changes.rename_column()
    sa.Table("users", upgrade.release_n, sa.Column("blob", sa.LargeBinary), extend_existing=True)
    with pytest.raises(CrossfadeError, match="users.blob"):
        simulate(upgrade.change, upgrade.release_n, upgrade.release_n1, url_of(engine))


def test_settings_refuse_nonsense():
    with pytest.raises(ValueError, match="writes_per_phase"):
        Settings(writes_per_phase=0)


def test_block_writes_refusals_are_declared_not_failures(engine, request):
    result = run(engine, request, simulated_changes.block_writes())
    assert result.ok, {n: c.summary for n, c in result.checks.items() if not c.ok}
    assert "writes to blocked columns refused, as declared" in result.checks["no refused writes"].summary


# --- the NULL ambiguity (issue 10, finding 2) ----------------------------------------------------

def test_release_n1_starts_after_expand_only_where_it_identifies_its_writes(engine, request):
    result = run(engine, request, simulated_changes.replace_column_nullable())
    assert result.ok, {n: c.summary for n, c in result.checks.items() if not c.ok}
    assert ("N+1" in result.latency.get("expand", {})) == (engine.dialect.name != "sqlite")


@pytest.mark.slow
@pytest.mark.parametrize("dialect_name", ["postgresql", "mysql"])
def test_triggers_that_ignore_writer_identification_lose_release_n1_nulls(engine, request):
    """Release N+1 writes NULL amounts from expand on; triggers blind to who writes take them for
    rows not derived yet, and the oracle (no "not derived yet" exemption for N+1) sees it."""
    with mutants.ignores_identification():  # many rows the backfill has not reached yet
        result = run(engine, request, simulated_changes.replace_column_nullable(), seed_rows=150, writes_per_phase=240)
    details = _failed(result, "sync law")
    assert "amount != down(amount_cents)" in details and "release N+1" in details
