"""Prove a change: run release N and release N+1 at once through every phase (DESIGN section 7).

    from crossfade.testing import verify
    report = verify(change, release_n_metadata, release_n1_metadata, [url, ...])
    assert report.ok, report.failures()
"""

from .report import CheckResult, DialectReport, Report
from .simulator import Settings, simulate, verify

__all__ = ["CheckResult", "DialectReport", "Report", "Settings", "simulate", "verify"]
