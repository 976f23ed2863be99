"""One database reached through several nodes of a cluster (a Galera cluster's nodes).

    verify(change, release_n, release_n1, [Nodes("mysql+pymysql://root@node1/app",
                                                 "mysql+pymysql://root@node2/app",
                                                 "mysql+pymysql://root@node3/app")])

crossfade's DDL runs on the first node, release N's writers on the second, release N+1's on the
third: what a rolling upgrade on a cluster does, where each application node talks to its own
database node. With two URLs both releases write on the second; with one, everything runs on it
(a single server, as before). The oracle reads on the first node, after the reads wait for every
write the cluster has committed (TriggerDialect.consistent_read_settings).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import sqlalchemy as sa

from ..errors import CrossfadeError

MAX_NODES = 3  # crossfade's DDL, release N's writers, release N+1's writers

# A comma followed by a URL's scheme starts the next URL: a comma inside one URL (a query
# string's value) does not.
_NEXT_URL = re.compile(r",\s*(?=[A-Za-z][A-Za-z0-9+.-]*://)")


class NodesError(CrossfadeError, ValueError):
    """URLs that cannot be the nodes of one database; raised before anything connects."""


@dataclass(frozen=True, init=False)
class Nodes:
    urls: tuple[str, ...]

    def __init__(self, *urls: str):
        if len(urls) == 1 and not isinstance(urls[0], str):
            urls = tuple(urls[0])
        object.__setattr__(self, "urls", tuple(str(u) for u in urls))
        _check(self.urls)

    @classmethod
    def parse(cls, text: str) -> Nodes:
        """`a,b,c`: one database through three nodes (the CLI's `--url a,b,c`)."""
        return cls(*[part.strip() for part in _NEXT_URL.split(text.strip())])

    @property
    def ddl(self) -> str:
        return self.urls[0]

    @property
    def release_n(self) -> str:
        return self.urls[min(1, len(self.urls) - 1)]

    @property
    def release_n1(self) -> str:
        return self.urls[min(2, len(self.urls) - 1)]

    def describe(self) -> str:
        return ",".join(sa.make_url(u).render_as_string(hide_password=True) for u in self.urls)


Database = str | Nodes  # what verify() and simulate() take for one database


def as_nodes(database: Database | sa.URL) -> Nodes:
    if isinstance(database, Nodes):
        return database
    if isinstance(database, sa.URL):
        return Nodes(database.render_as_string(hide_password=False))
    return Nodes.parse(database)


def _check(urls: tuple[str, ...]) -> None:
    if not urls or any(not u for u in urls):
        raise NodesError("a database needs at least one URL")
    if len(urls) > MAX_NODES:
        raise NodesError(f"{len(urls)} URLs for one database: at most {MAX_NODES} (crossfade's DDL, release N's "
                         "writers, release N+1's writers), one per node")
    parsed = [sa.make_url(u) for u in urls]
    first = parsed[0]
    for other in parsed[1:]:
        if other.get_backend_name() != first.get_backend_name():
            raise NodesError(f"the nodes of one database must be one kind of server: {_shown(first)} is "
                             f"{first.get_backend_name()}, {_shown(other)} is {other.get_backend_name()}")
        if other.database != first.database:
            raise NodesError(f"the nodes of one database must name the same database: {_shown(first)} names "
                             f"{first.database!r}, {_shown(other)} names {other.database!r}")
    if len(urls) > 1 and first.get_backend_name() == "sqlite":
        raise NodesError("SQLite has no nodes: give one URL for it")


def _shown(url: sa.URL) -> str:
    return url.render_as_string(hide_password=True)
