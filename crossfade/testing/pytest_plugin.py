"""pytest plugin: verify an application's changes from its own test suite.

    def test_visibility_change_is_safe(crossfade_verify):
        crossfade_verify(change, release_n.metadata, release_n1.metadata)

`crossfade_verify` runs the simulator on every database given with `--crossfade-url` (repeat it;
or CROSSFADE_VERIFY_URLS, comma-separated), or on a fresh SQLite file when none is given, and
fails the test with every failed check. An unreachable database fails the test: it never skips.
`--crossfade-max-stall SECONDS` (default 1, or CROSSFADE_MAX_STALL) is the longest any one write may take; a settings
keyword (`crossfade_verify(..., max_stall=2.0)`) overrides it for one test.
"""

from __future__ import annotations

import os

import pytest
import sqlalchemy as sa

from ..errors import CrossfadeError
from .phases import Phases
from .report import Report
from .simulator import DEFAULT_MAX_STALL, Settings, verify


def pytest_addoption(parser):
    group = parser.getgroup("crossfade", "crossfade rolling-upgrade simulator")
    group.addoption("--crossfade-url", action="append", default=[], metavar="URL",
                    help="a scratch database for crossfade_verify (repeat for a matrix)")
    group.addoption("--crossfade-writes", type=int, default=300, metavar="N",
                    help="writes per phase in each simulation (default 300)")
    group.addoption("--crossfade-seed-rows", type=int, default=50, metavar="N",
                    help="release N rows before expand (default 50)")
    group.addoption("--crossfade-max-stall", type=float, default=None, metavar="SECONDS",
                    help=f"the latency check fails when one write takes longer (default {DEFAULT_MAX_STALL:g}, "
                         "or CROSSFADE_MAX_STALL)")


@pytest.fixture
def crossfade_urls(request, tmp_path) -> list[str]:
    """The databases crossfade_verify simulates on."""
    urls = list(request.config.getoption("--crossfade-url"))
    urls += [u.strip() for u in os.environ.get("CROSSFADE_VERIFY_URLS", "").split(",") if u.strip()]
    return urls or [f"sqlite:///{tmp_path / 'crossfade-verify.db'}"]


@pytest.fixture
def crossfade_verify(request, crossfade_urls):
    """Call with (change, release_n_metadata, release_n1_metadata, **settings); returns the
    Report, after failing the test if any check failed on any database. `phases=` makes what each
    phase runs (an Alembic revision's: crossfade.alembic.phases.revision_phases)."""
    def run(change, release_n: sa.MetaData, release_n1: sa.MetaData, *, phases: Phases | None = None,
            **settings) -> Report:
        options = {"writes_per_phase": request.config.getoption("--crossfade-writes"),
                   "seed_rows": request.config.getoption("--crossfade-seed-rows")}
        if request.config.getoption("--crossfade-max-stall") is not None:
            options["max_stall"] = request.config.getoption("--crossfade-max-stall")
        options |= settings
        try:
            report = verify(change, release_n, release_n1, crossfade_urls, Settings(**options), phases=phases)
        except CrossfadeError as exc:  # a URL crossfade cannot use: one line, no traceback
            pytest.fail(f"crossfade_verify: {exc}", pytrace=False)
        except sa.exc.OperationalError as exc:
            pytest.fail(f"crossfade_verify: a database is unreachable ({str(exc.orig).strip()}); "
                        "a missing database fails, it never skips", pytrace=False)
        if not report.ok:
            pytest.fail(f"crossfade_verify: {change.id} failed\n{report.failures()}", pytrace=False)
        return report
    return run
