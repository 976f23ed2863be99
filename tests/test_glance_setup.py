"""examples/glance/setup.py: the Glance tutorial's starting point, release N's seeded table, on
every database; a database that already has `images` is refused and left as it was."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa

from crossfade.loader import import_file

ROOT = Path(__file__).resolve().parents[1]
SETUP = ROOT / "examples" / "glance" / "setup.py"
setup = import_file(SETUP)


def test_setup_creates_release_n_table_with_every_third_image_public(engine):
    setup.create_release_n(engine, rows=30)
    columns = {c["name"]: c for c in sa.inspect(engine).get_columns("images")}
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT id, is_public FROM images ORDER BY id")).all()
    assert set(columns) == {"id", "name", "status", "is_public"}
    assert columns["is_public"]["nullable"] is False
    assert len(rows) == 30
    assert [r.id for r in rows if r.is_public] == list(range(3, 31, 3))


def test_setup_refuses_a_database_with_an_images_table_and_leaves_it_untouched(engine):
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE images (id INTEGER PRIMARY KEY, label VARCHAR(20))"))
        conn.execute(sa.text("INSERT INTO images (id, label) VALUES (1, 'mine')"))
    try:
        setup.create_release_n(engine, rows=5)
    except SystemExit as exc:
        message = str(exc)
    else:
        raise AssertionError("setup went ahead on a database that has an images table")
    assert "already has an images table" in message and "\n" not in message
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT id, label FROM images")).all() == [(1, "mine")]
    assert {c["name"] for c in sa.inspect(engine).get_columns("images")} == {"id", "label"}


def test_setup_without_a_url_says_so_in_one_line(tmp_path, monkeypatch):
    monkeypatch.delenv("CROSSFADE_URL", raising=False)
    proc = subprocess.run([sys.executable, str(SETUP)], cwd=tmp_path, capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}, timeout=120, check=False)
    assert proc.returncode == 2
    assert "give --url or set CROSSFADE_URL" in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_setup_from_the_command_line_creates_a_sqlite_file(tmp_path):
    url = f"sqlite:///{tmp_path / 'glance.db'}"
    proc = subprocess.run([sys.executable, str(SETUP), "--url", url, "--rows", "7"], cwd=tmp_path,
                          capture_output=True, text=True, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM images")).scalar_one() == 7
    engine.dispose()
