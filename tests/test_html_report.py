"""`verify --report FILE.html`: one self-contained page per run, opened in headless Chromium (Debian's
package; scripts/ensure-chromium installs it) to check that its script drew the charts: a dot for
every statement the writers attempted, a band for every phase, a mark for every DDL step."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

import pytest
import simulated_changes
import sqlalchemy as sa
from test_verify_latency import run_stalled

from crossfade.testing import Report, Settings, simulate
from crossfade.testing.html_report import render, write_report

CHANGES = str(Path(__file__).resolve().parents[1] / "examples" / "glance" / "changes")
SHORT = {"seed_rows": 40, "writes_per_phase": 150}


def url_of(engine: sa.Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def crossfade(*args: str) -> subprocess.CompletedProcess:
    """The installed command, as a user runs it (its output and exit code)."""
    return subprocess.run([sys.executable, "-m", "crossfade.cli", *args], capture_output=True, text=True,
                          check=False, timeout=600)


@pytest.fixture(scope="session")
def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        message = "Chromium is not installed (scripts/ensure-chromium installs Debian's package)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message + " (CI never skips)", pytrace=False)
        pytest.skip(message)
    return found


class Elements(HTMLParser):
    """Every element of a page as (tag, attributes), in document order."""

    def __init__(self, text: str):
        super().__init__()
        self.found: list[tuple[str, dict]] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.found.append((tag, dict(attrs)))

    def classed(self, tag: str, word: str) -> list[dict]:
        return [a for t, a in self.found if t == tag and word in (a.get("class") or "").split()]


def rendered_dom(chromium: str, page: Path) -> Elements:
    """The page's DOM after its script ran, as headless Chromium serialises it."""
    done = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom",
                           page.resolve().as_uri()], check=False, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    return Elements(done.stdout)


def test_the_page_draws_every_write_phase_and_ddl_step_of_the_run(engine, tmp_path, chromium):
    upgrade = simulated_changes.replace_column()
    result = simulate(upgrade.change, upgrade.release_n, upgrade.release_n1, url_of(engine),
                      Settings(values=upgrade.values, **SHORT))
    assert result.ok, {n: c.summary for n, c in result.checks.items() if not c.ok}
    page = write_report(tmp_path / "verify.html", [Report(upgrade.change.id, [result])])
    dom = rendered_dom(chromium, page)

    [body] = [a for t, a in dom.found if t == "body"]
    assert body["data-rendered"] == "1"
    [svg] = dom.classed("svg", "chart")
    timeline = result.timeline
    assert int(svg["data-points"]) == timeline.samples == len(dom.classed("circle", "write")) == result.writes
    released = Counter(a["class"].split()[1] for a in dom.classed("circle", "write"))
    assert released == {"n": len(timeline.writes["N"]), "n1": len(timeline.writes["N+1"])}
    assert [a["data-phase"] for a in dom.classed("rect", "phase")] == [
        "release N", "expand", "migrate", "roll", "contract", "release N+1"]
    ddl = [s for s in timeline.steps if s.kind == "ddl"]
    assert ddl and int(svg["data-steps"]) == len(ddl) == len(dom.classed("line", "ddl"))
    assert len(dom.classed("line", "bound")) == 1  # the default 1 s bound, drawn across
    matrix = dom.classed("table", "matrix")
    assert matrix and len(dom.classed("td", "ok")) == 6 and not dom.classed("td", "fail")


def test_a_stall_above_the_bound_is_a_marked_dot_and_a_failed_cell_with_its_details(tmp_path, chromium):
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'stall.db'}")
    result = run_stalled(engine, max_stall=0.5)
    page = write_report(tmp_path / "stall.html", [Report("stalled", [result])])
    dom = rendered_dom(chromium, page)
    stalled = [s for samples in result.timeline.writes.values() for s in samples if s[1] > 0.5]
    assert stalled and len(dom.classed("circle", "stall")) == len(stalled)
    [failed] = dom.classed("td", "fail")
    assert failed["class"] == "fail"
    text = page.read_text()
    assert "migrate took" in text and "FAIL" in text  # "during migrate" or "during expand and migrate"


def test_the_page_needs_nothing_from_the_network(engine, tmp_path):
    upgrade = simulated_changes.replace_column()
    result = simulate(upgrade.change, upgrade.release_n, upgrade.release_n1, url_of(engine),
                      Settings(values=upgrade.values, seed_rows=10, writes_per_phase=30))
    text = render([Report(upgrade.change.id, [result])])
    assert re.findall(r"https?://[^\s\"']+", text) == ["http://www.w3.org/2000/svg"]  # a namespace, never fetched
    assert not re.search(r"<(link|img|iframe)\b|\bsrc=|@import|url\(", text)


def test_a_value_that_looks_like_markup_is_shown_as_text(tmp_path):
    text = render([Report("</script><b>x</b>", [])])
    assert "<b>x</b>" not in text and "&lt;/script&gt;&lt;b&gt;x&lt;/b&gt;" in text


@pytest.mark.parametrize("dialect_name", ["sqlite"])
def test_verify_report_writes_the_page(engine, tmp_path, chromium):
    page = tmp_path / "upgrade.html"
    result = crossfade("verify", CHANGES, "--writes", "60", "--seed-rows", "20", "--report", str(page),
                       "--url", url_of(engine))
    assert result.returncode == 0, result.stdout + result.stderr
    dom = rendered_dom(chromium, page)
    [svg] = dom.classed("svg", "chart")
    assert int(svg["data-points"]) >= 6 * 60 and "0001_visibility" in page.read_text()


@pytest.mark.parametrize("where", ["missing/dir/report.html", "."])
def test_a_report_path_that_cannot_be_written_is_refused_before_anything_runs(tmp_path, where):
    database = tmp_path / "untouched.db"
    result = crossfade("verify", CHANGES, "--report", str(tmp_path / where), "--url", f"sqlite:///{database}")
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert "--report" in line and ("does not exist" in line or "is a directory" in line)
    assert not database.exists()
