"""The documentation site builds with `mkdocs build --strict`: a broken link, a missing page in the
nav, an anchor that is not there or an API reference that does not resolve fails the suite."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_site_builds_without_a_warning(tmp_path):
    site = tmp_path / "site"
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    assert "WARNING" not in proc.stderr, proc.stderr
    print(f"\nmkdocs build --strict: {elapsed:.1f} s")
    for page in ("index.html", "tutorial/index.html", "api/index.html", "landmines/index.html"):
        assert (site / page).is_file(), page
    api = (site / "api" / "index.html").read_text()
    for name in ("replace_column", "scaled", "identify_new_release", "Runner"):
        assert name in api, f"the API page lacks {name}"
    assert 'src="../img/phases.svg"' in (site / "concepts" / "index.html").read_text()
    assert (site / "img" / "phases.svg").read_text().startswith("<svg")
