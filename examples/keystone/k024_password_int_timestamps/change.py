"""Keystone 024 (Pike): `password.created_at` and `password.expires_at` (DateTime) become
`created_at_int` and `expires_at_int` (BigInteger, microseconds since 1970-01-01 UTC).

Keystone wrote that "using triggers to convert datetime objects to integers is complex and
error-prone", added the integer columns empty and made the application write both forms. Here
both columns change in one Change, kept in step by crossfade's triggers in both directions:
release N writes the DateTime columns, release N+1 only the integers.
"""

from pathlib import Path

import sqlalchemy as sa

from crossfade import Change, ops, transforms
from crossfade.loader import import_file

_here = Path(__file__).resolve().parent
metadata = import_file(_here / "release_n.py").metadata
metadata_n1 = import_file(_here / "release_n1.py").metadata
simulator_values = import_file(_here / "_values.py").VALUES

change = Change(
    ops.replace_column(
        "password", "created_at", sa.Column("created_at_int", sa.BigInteger, nullable=False, server_default="0"),
        up=transforms.epoch_micros, down=transforms.from_epoch_micros,
    ),
    ops.replace_column(
        "password", "expires_at", sa.Column("expires_at_int", sa.BigInteger, nullable=True),
        up=transforms.epoch_micros, down=transforms.from_epoch_micros,
    ),
    id="keystone_024",
    new_release_identified=True,
)
