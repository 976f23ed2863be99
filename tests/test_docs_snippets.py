"""Every code block of the documentation runs: the pages under docs/ and the README.

A page's blocks run in order, in a temporary directory of their own (with `examples` linked to
this checkout's examples): its `python` blocks in one namespace in this process, its `bash` blocks
each in a fresh bash (`set -euo pipefail`) that inherits the variables earlier blocks exported, with
`crossfade`, `alembic`, `pytest` and `python3` running this checkout's code with this interpreter. A
block under `<!-- file: PATH -->` is written to PATH for a later block to run. The tutorial runs once per database, its
`CROSSFADE_URL` preset to a fresh database of each (it keeps a URL already set).

Blocks that are not code are `text` (output, diagrams drawn in characters) and `mermaid`. A code
block that must not run says why in a comment right above it, `<!-- norun: why -->`; they are
counted, and every other language, or a block without one, fails the check.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import SERVER_URLS, make_engine

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted([*(ROOT / "docs").rglob("*.md"), ROOT / "README.md"])
RUNS = {"python", "bash"}
SHOWN = {"text", "mermaid"}  # output and diagrams: nothing to run
# How many code blocks may say `norun`: adding one is a decision, so it changes this number.
NORUN_BUDGET = 10

_FENCE = re.compile(r"^(?P<indent> *)(?P<fence>```+)(?P<lang>[\w+-]*)\s*$")
_NORUN = re.compile(r"^\s*<!--\s*norun:\s*(?P<why>.*?)\s*-->\s*$")
_FILE = re.compile(r"^\s*<!--\s*file:\s*(?P<path>\S+)\s*-->\s*$")


@dataclass
class Block:
    page: Path
    line: int  # of the opening fence, 1-based
    lang: str
    code: str
    norun: str | None  # the reason, when marked
    file: str | None = None  # `<!-- file: PATH -->`: written there for later blocks to run, not run itself

    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks(page: Path) -> list[Block]:
    """The fenced blocks of a page, each with the `norun` reason written right above it."""
    lines = page.read_text().split("\n")
    found, i = [], 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        indent, fence = len(opening["indent"]), opening["fence"]
        end = next(j for j in range(i + 1, len(lines)) if lines[j].strip() == fence)
        above = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        marked, file = _NORUN.match(above), _FILE.match(above)
        code = "\n".join(line[indent:] for line in lines[i + 1:end])
        found.append(Block(page, i + 1, opening["lang"], code, marked["why"] if marked else None,
                           file["path"] if file else None))
        i = end + 1
    return found


def _page_id(page: Path) -> str:
    return str(page.relative_to(ROOT))


def _runnable(page: Path) -> list[Block]:
    return [b for b in blocks(page) if b.lang in RUNS and b.norun is None]


def test_every_block_is_code_that_runs_output_or_says_why_it_does_not():
    wrong = []
    for page in PAGES:
        for block in blocks(page):
            if block.norun is not None and not block.norun:
                wrong.append(f"{block.where()}: `norun:` without a reason")
            elif block.lang not in RUNS | SHOWN and block.norun is None:
                wrong.append(f"{block.where()}: a `{block.lang or 'plain'}` block that neither runs nor says why")
    assert not wrong, "\n".join(wrong)


def test_blocks_that_do_not_run_are_counted_and_within_budget():
    marked = [b for page in PAGES for b in blocks(page) if b.norun is not None]
    runnable = [b for page in PAGES for b in _runnable(page)]
    print(f"\n{len(runnable)} code blocks run, {len(marked)} marked norun:")
    for block in marked:
        print(f"  {block.where()}: {block.norun}")
    assert len(runnable) > 2 * len(marked)
    assert len(marked) <= NORUN_BUDGET, f"{len(marked)} blocks marked norun; the budget is {NORUN_BUDGET}"


def test_every_test_the_docs_name_exists():
    """A page that says `tests/test_x.py::test_y` proves something names a test that is there."""
    missing = []
    for page in PAGES:
        current = None
        for match in re.finditer(r"`(tests/[\w/]+\.py)?::(test_\w+)", page.read_text()):
            current = match[1] or current
            source = ROOT / current if current else None
            if source is None or not source.is_file() or f"def {match[2]}(" not in source.read_text():
                missing.append(f"{_page_id(page)}: {current}::{match[2]}")
    assert not missing, "\n".join(missing)


# --- running a page ------------------------------------------------------------------------

def _bin_dir(tmp: Path) -> Path:
    """`crossfade`, `alembic`, `pytest` and `python3` commands that run this checkout's code with this
    interpreter."""
    bin_dir = tmp / ".bin"
    bin_dir.mkdir()
    for name, module in (("crossfade", "-m crossfade.cli"), ("alembic", "-m alembic"), ("pytest", "-m pytest"),
                         ("python3", "")):
        script = bin_dir / name
        script.write_text(f'#!/bin/sh\nexec "{sys.executable}" {module} "$@"\n')
        script.chmod(0o755)
    return bin_dir


class PageRun:
    """The state a page's blocks share: the directory, the environment, the Python namespace."""

    def __init__(self, tmp: Path, monkeypatch, env: dict[str, str]):
        self.tmp = tmp
        (tmp / "examples").symlink_to(ROOT / "examples")
        self.env = {**os.environ, **env,
                    "PATH": f"{_bin_dir(tmp)}{os.pathsep}{os.environ['PATH']}",
                    "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
                    "COLUMNS": "100", "TERM": "dumb"}
        self.namespace: dict = {"__name__": "__docs__"}
        self.monkeypatch = monkeypatch
        monkeypatch.chdir(tmp)
        self._export_to_python()

    def run(self, block: Block) -> None:
        if block.file is not None:
            path = self.tmp / block.file
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(block.code + "\n")
        elif block.lang == "python":
            self._python(block)
        else:
            self._bash(block)

    def _python(self, block: Block) -> None:
        try:
            exec(compile(block.code, block.where(), "exec"), self.namespace)  # noqa: S102 (the docs are ours)
        except Exception as exc:
            raise AssertionError(f"{block.where()}: the python block failed: {exc!r}\n{block.code}") from exc

    def _bash(self, block: Block) -> None:
        env_file = self.tmp / ".env-after"
        script = (f"set -euo pipefail\n{block.code}\n"
                  f"{sys.executable} -c 'import json, os; print(json.dumps(dict(os.environ)))' > {env_file}\n")
        proc = subprocess.run(["bash", "-c", script], cwd=self.tmp, env=self.env, capture_output=True,
                              text=True, timeout=600, check=False)
        assert proc.returncode == 0, (f"{block.where()}: the bash block exited {proc.returncode}\n{block.code}\n"
                                      f"--- stdout\n{proc.stdout[-3000:]}\n--- stderr\n{proc.stderr[-3000:]}")
        self.env = json.loads(env_file.read_text())
        self._export_to_python()

    def _export_to_python(self) -> None:
        for name in ("CROSSFADE_URL",):
            if name in self.env:
                self.monkeypatch.setenv(name, self.env[name])
            else:
                self.monkeypatch.delenv(name, raising=False)

    def close(self) -> None:
        for value in list(self.namespace.values()):
            if isinstance(value, sa.Engine):
                value.dispose()


def run_page(page: Path, tmp: Path, monkeypatch, env: dict[str, str] | None = None) -> int:
    run = PageRun(tmp, monkeypatch, env or {})
    try:
        runnable = _runnable(page)
        for block in runnable:
            run.run(block)
        return len(runnable)
    finally:
        run.close()


TUTORIAL = ROOT / "docs" / "tutorial.md"


# Pages whose blocks run the simulator (a minute or two on this machine): --quick leaves them out.
SIMULATING = {ROOT / "docs" / name for name in ("alembic.md", "verify.md", "verify-report.md",
                                                      "pytest-plugin.md", "cli.md")}


@pytest.mark.parametrize("page", [pytest.param(p, marks=[pytest.mark.slow] if p in SIMULATING else [])
                                  for p in PAGES if p != TUTORIAL and _runnable(p)], ids=_page_id)
def test_the_code_blocks_of_each_page_run_in_order(page, tmp_path, monkeypatch):
    monkeypatch.delenv("CROSSFADE_URL", raising=False)
    assert run_page(page, tmp_path, monkeypatch) > 0


@pytest.mark.parametrize("dialect", ["sqlite", pytest.param("postgresql", marks=pytest.mark.slow),
                                     pytest.param("mysql", marks=pytest.mark.slow)])
def test_the_tutorial_runs_from_an_empty_database_to_contract(dialect, tmp_path, monkeypatch):
    if dialect == "sqlite":
        url = f"sqlite:///{tmp_path / 'glance.db'}"
    else:
        make_engine(dialect, tmp_path).dispose()  # a fresh, empty database of this run
        url = SERVER_URLS[dialect]
    work = tmp_path / "work"
    work.mkdir()
    ran = run_page(TUTORIAL, work, monkeypatch, {"CROSSFADE_URL": url})
    assert ran >= 8
    engine = sa.create_engine(url)
    try:
        columns = {c["name"] for c in sa.inspect(engine).get_columns("images")}
        with engine.connect() as conn:
            visibility = dict(conn.execute(sa.text("SELECT id, visibility FROM images WHERE id IN (3, 4, 2002)")).all())
    finally:
        engine.dispose()
    assert columns == {"id", "name", "status", "visibility"}
    assert visibility == {3: "public", 4: "shared", 2002: "community"}


def test_a_block_marked_norun_is_not_run_and_an_unknown_language_is_reported(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(textwrap.dedent("""\
        # A page

        <!-- norun: needs a server -->
        ```bash
        exit 1
        ```

        ```sql
        SELECT 1
        ```
        """))
    found = blocks(page)
    assert [(b.lang, b.norun) for b in found] == [("bash", "needs a server"), ("sql", None)]
    assert [b.lang for b in found if b.lang in RUNS and b.norun is None] == []
