"""A clean install works: crossfade and its CLI need neither pytest nor Hypothesis (test
dependencies) until a command asks for them, and `crossfade --help` imports no database code.

Each test runs a fresh interpreter in which the test dependencies cannot be imported, as on a
machine where `pip install crossfade` ran without the test extras (.ci/run checks that too, in a
real fresh virtual environment).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from crossfade import backfill, cli

ROOT = Path(__file__).resolve().parents[1]
CHANGES = ROOT / "examples" / "glance" / "changes"
# Poisoned entries in sys.modules: `import hypothesis` raises ModuleNotFoundError, as when absent.
WITHOUT_TEST_DEPENDENCIES = "import sys; sys.modules.update(dict.fromkeys(['hypothesis', 'pytest', '_pytest']))\n"


def crossfade_without_test_dependencies(*args: str, then: str = "") -> subprocess.CompletedProcess:
    """`crossfade ARGS` in a fresh interpreter without pytest and Hypothesis; `then` runs after it."""
    code = (WITHOUT_TEST_DEPENDENCIES + "import crossfade.cli\n"
            f"sys.argv = ['crossfade', *{list(args)!r}]\n"
            "try:\n    crossfade.cli.main()\nexcept SystemExit as exc:\n    code = exc.code\nelse:\n    code = 0\n"
            f"{then}\nsys.exit(code)\n")
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          check=False)


def test_the_readme_demo_runs_without_the_test_dependencies():
    proc = crossfade_without_test_dependencies("demo", "--rows", "50")
    assert proc.returncode == 0, proc.stderr
    assert "phase: contracted, problems: none" in proc.stdout


def test_import_crossfade_needs_no_test_dependency_and_loads_its_parts_on_first_use():
    code = WITHOUT_TEST_DEPENDENCIES + (
        "import crossfade\n"
        "assert 'sqlalchemy' not in sys.modules\n"
        "from crossfade import Change, CrossfadeError, Runner, ops, transforms\n"
        "import crossfade.testing\n"
        "print(Change.__name__, Runner.__name__, ops.replace_column.__name__, crossfade.ops is ops)\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["Change", "Runner", "replace_column", "True"]


# What --help must not import: the database layer, Alembic, the simulator, the test dependencies.
HEAVY = ("sqlalchemy", "alembic", "psycopg", "pymysql", "hypothesis", "pytest", "rich.progress",
         "crossfade.runner", "crossfade.testing", "crossfade.dialects")


def test_help_starts_without_importing_the_database_layer():
    proc = crossfade_without_test_dependencies(
        "--help", then=f"print('imported:', *sorted(m for m in {HEAVY!r} if sys.modules.get(m)))")
    assert proc.returncode == 0, proc.stderr
    assert "expand" in proc.stdout and "verify" in proc.stdout
    assert proc.stdout.splitlines()[-1] == "imported:"


def test_verify_hypothesis_without_hypothesis_names_the_package_in_one_line(tmp_path):
    proc = crossfade_without_test_dependencies("verify", str(CHANGES), "--hypothesis",
                                               "--url", f"sqlite:///{tmp_path / 'scratch.db'}")
    assert proc.returncode == 1
    assert proc.stderr == ("error: verify --hypothesis needs the hypothesis package, which is not installed: "
                           "pip install hypothesis\n")
    assert not (tmp_path / "scratch.db").exists()


def test_the_cli_states_backfills_default_batch_duration():
    assert cli.DEFAULT_BATCH_SECONDS == backfill.DEFAULT_BATCH_SECONDS
