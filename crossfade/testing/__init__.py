"""Prove a change: run release N and release N+1 at once through every phase (DESIGN section 7).

    from crossfade.testing import verify
    report = verify(change, release_n_metadata, release_n1_metadata, [url, ...])
    assert report.ok, report.failures()

`hypothesis_verify(change, release_n, release_n1, url)` is the Hypothesis mode: single writes and
phases as stateful rules, a failure shrunk to a minimal sequence (needs the `hypothesis` package).
"""

from .report import CheckResult, DialectReport, Report
from .simulator import Settings, simulate, verify

__all__ = ["CheckResult", "DialectReport", "Report", "Settings", "hypothesis_verify", "simulate",
           "upgrade_machine", "verify"]


def __getattr__(name: str):
    # Imported on first use: hypothesis is a test dependency, the CLI's `verify` must not need it.
    if name in ("hypothesis_verify", "upgrade_machine"):
        from . import stateful
        return getattr(stateful, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
