"""Packaging: one version, written in crossfade/__init__.py; the sdist and wheel as released pass
`twine check` and carry py.typed, the version and the pytest plugin (scripts/check-package, which
CI's .ci/run also runs; scripts/lowest-dependencies runs crossfade at the lowest versions allowed)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import tomllib

import crossfade

ROOT = Path(__file__).resolve().parents[1]


def test_the_version_is_written_once_in_the_package_and_read_by_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in project["project"] and project["project"]["dynamic"] == ["version"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "crossfade.__version__"}
    assert crossfade.__version__.count(".") == 2
    assert f"## [{crossfade.__version__}]" in (ROOT / "CHANGELOG.md").read_text()


def test_the_type_hints_ship_with_the_package():
    assert (ROOT / "crossfade" / "py.typed").exists()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "py.typed" in project["tool"]["setuptools"]["package-data"]["crossfade"]


@pytest.mark.slow
def test_the_sdist_and_wheel_build_and_pass_twine_check():
    done = subprocess.run([str(ROOT / "scripts" / "check-package")], capture_output=True, text=True,
                          check=False, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "built and checked (version " + crossfade.__version__ in done.stdout
