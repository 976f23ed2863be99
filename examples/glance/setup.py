"""Create release N's `images` table and seed it: the database the Glance tutorial starts from.

    python examples/glance/setup.py                       # the database CROSSFADE_URL names
    python examples/glance/setup.py --url sqlite:///glance.db --rows 5000

Release N's table is the one `release_n.py` declares (`is_public` a NOT NULL boolean); every third
image is public. A database that already holds an `images` table is refused, untouched: the
tutorial starts from a database without one (a new SQLite file is created).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import sqlalchemy as sa

from crossfade.engines import open_engine
from crossfade.errors import CrossfadeError
from crossfade.loader import import_file

RELEASE_N = Path(__file__).resolve().parent / "release_n.py"


def seed_rows(count: int) -> list[dict]:
    """`count` images as release N writes them: a name, a status, and every third one public."""
    return [{"id": i, "name": f"image-{i}", "status": "active", "is_public": i % 3 == 0}
            for i in range(1, count + 1)]


def create_release_n(engine: sa.Engine, rows: int) -> None:
    """Create release N's `images` table on `engine` and insert `rows` images, in one transaction
    where the database allows it; refuse (touching nothing) when `images` exists already."""
    metadata = import_file(RELEASE_N).metadata
    if sa.inspect(engine).has_table("images"):
        raise SystemExit(f"setup: {engine.url.render_as_string()} already has an images table; "
                         "start from an empty database (or drop the table)")
    with engine.begin() as conn:
        metadata.create_all(conn)
        if rows:
            conn.execute(metadata.tables["images"].insert(), seed_rows(rows))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("CROSSFADE_URL"),
                        help="the database (default: $CROSSFADE_URL)")
    parser.add_argument("--rows", type=int, default=1000, help="images to seed (default: 1000)")
    args = parser.parse_args(argv)
    if not args.url:
        parser.error("give --url or set CROSSFADE_URL")
    if args.rows < 0:
        parser.error("--rows must be 0 or more")
    try:
        engine = open_engine(args.url, may_create_file=True)
    except CrossfadeError as exc:
        raise SystemExit(f"setup: {exc}") from None
    try:
        create_release_n(engine, args.rows)
    finally:
        engine.dispose()
    print(f"setup: release N's images table with {args.rows} rows on {engine.url.render_as_string()}")


if __name__ == "__main__":
    main(sys.argv[1:])
