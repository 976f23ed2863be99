"""The code blocks of docs/operations/python_backfill.md, data_steps.md and block_writes.md run
as written (on SQLite, which the examples use)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs" / "operations"
PAGES = ("python_backfill.md", "data_steps.md", "block_writes.md")


def blocks(page: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", (DOCS / page).read_text(), re.DOTALL)


@pytest.mark.parametrize("page", PAGES)
def test_every_python_block_of_the_page_runs(page):
    found = blocks(page)
    assert found
    for code in found:
        exec(compile(code, f"{page}", "exec"), {"__name__": "docs"})  # noqa: S102 - our own docs
