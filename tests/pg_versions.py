"""PostgreSQL 16, 17 and 18 beside the OS's 15: extra `dialect_name`s for the tests marked pg_versions.

The servers come from PyPI wheels that ship the binaries (scripts/pg-versions starts them on
127.0.0.1:5416, 5417, 5418); CROSSFADE_TEST_PG16_URL, ..._PG17_URL and ..._PG18_URL point
elsewhere. A test takes them as `dialect_name` parameters (`PG_VERSIONS`) and gets conftest's
`engine` on a per-run database of that server, unreachable ones failing under CI=true as the
others do. `-m pg_versions` runs only them; `-m "not pg_versions"` leaves them out.
"""

from __future__ import annotations

import os

import pytest
import sqlalchemy as sa
from conftest import SERVER_URLS, per_run

MAJORS = (16, 17, 18)


def default_url(major: int) -> str:
    return f"postgresql+psycopg://postgres@127.0.0.1:54{major}/crossfade_test"


def _url(major: int) -> str:
    return per_run(os.environ.get(f"CROSSFADE_TEST_PG{major}_URL", default_url(major)))


SERVER_URLS.update({f"postgresql{major}": _url(major) for major in MAJORS})

# `dialect_name` parameters: each carries the pg_versions mark, so -m selects them.
PG_VERSIONS = tuple(pytest.param(f"postgresql{major}", marks=pytest.mark.pg_versions) for major in MAJORS)


def major_of(dialect_name: str) -> int:
    """16 for "postgresql16"."""
    return int(dialect_name.removeprefix("postgresql"))


def server_major(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return conn.dialect.server_version_info[0]
