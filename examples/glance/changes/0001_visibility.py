"""Glance (Ocata): the boolean `images.is_public` becomes `images.visibility`.

Release N writes `is_public`; release N+1 writes `visibility`, which is finer: `private` and
`community` images are both "not public" to release N. `up` maps release N's value to release
N+1's, `down` maps back, and down(up(a)) == a for both booleans (crossfade checks this in the
database before it installs the triggers).
"""

from pathlib import Path

import sqlalchemy as sa

from crossfade import Change, ops
from crossfade.loader import import_file

# Release N's schema, so `crossfade plan` can render every phase's SQL without a database,
# and release N+1's, so `crossfade verify` can run both releases' code at once.
metadata = import_file(Path(__file__).resolve().parents[1] / "release_n.py").metadata
metadata_n1 = import_file(Path(__file__).resolve().parents[1] / "release_n1.py").metadata
# What release N+1 writes to visibility (any string would do for crossfade, these are Glance's).
simulator_values = {"images.visibility": ["public", "private", "shared", "community"]}

change = Change(
    ops.replace_column(
        "images", "is_public",
        sa.Column("visibility", sa.String(16), nullable=False, server_default="shared"),
        up=lambda is_public: sa.case((is_public, "public"), else_="shared"),
        down=lambda visibility: visibility == "public",
    ),
    id="0001_visibility",
)
