"""Every operation as a complete rolling upgrade the simulator can run: the change, release N's
metadata and release N+1's metadata (what each release's application code knows)."""

from __future__ import annotations

from dataclasses import dataclass, field

import sqlalchemy as sa

from crossfade import Change, ops


@dataclass
class Upgrade:
    change: Change
    release_n: sa.MetaData
    release_n1: sa.MetaData
    values: dict = field(default_factory=dict)


def _table(name: str, *columns: sa.Column) -> sa.MetaData:
    metadata = sa.MetaData()
    sa.Table(name, metadata, sa.Column("id", sa.Integer, primary_key=True), *columns)
    return metadata


VISIBILITIES = ["public", "private", "shared", "community"]


def replace_column() -> Upgrade:
    """Glance: the boolean images.is_public becomes the finer images.visibility."""
    return Upgrade(
        Change(ops.replace_column(
            "images", "is_public", sa.Column("visibility", sa.String(16), nullable=False, server_default="shared"),
            up=lambda is_public: sa.case((is_public, "public"), else_="shared"),
            down=lambda visibility: visibility == "public"), id="sim_replace_column"),
        _table("images", sa.Column("name", sa.String(40)), sa.Column("is_public", sa.Boolean, nullable=False)),
        _table("images", sa.Column("name", sa.String(40)),
               sa.Column("visibility", sa.String(16), nullable=False, server_default="shared")),
        {"images.visibility": VISIBILITIES},
    )


def rename_column() -> Upgrade:
    return Upgrade(
        Change(ops.rename_column("users", "login", "username"), id="sim_rename_column"),
        _table("users", sa.Column("login", sa.String(40), nullable=False), sa.Column("email", sa.String(60))),
        _table("users", sa.Column("username", sa.String(40), nullable=False), sa.Column("email", sa.String(60))),
    )


def add_column_computed() -> Upgrade:
    """A derived column: full_name follows first_name and last_name (one way)."""
    return Upgrade(
        Change(ops.add_column("users", sa.Column("full_name", sa.String(81)),
                              backfill=lambda row: row.first_name + " " + row.last_name), id="sim_add_column"),
        _table("users", sa.Column("first_name", sa.String(40)), sa.Column("last_name", sa.String(40))),
        _table("users", sa.Column("first_name", sa.String(40)), sa.Column("last_name", sa.String(40)),
               sa.Column("full_name", sa.String(81))),
    )


def add_column_with_default() -> Upgrade:
    return Upgrade(
        Change(ops.add_column("items", sa.Column("status", sa.String(10), nullable=False, server_default="new")),
               id="sim_add_column_default"),
        _table("items", sa.Column("name", sa.String(40))),
        _table("items", sa.Column("name", sa.String(40)),
               sa.Column("status", sa.String(10), nullable=False, server_default="new")),
    )


def drop_column() -> Upgrade:
    """Release N+1 no longer knows items.size, which release N still requires."""
    return Upgrade(
        Change(ops.drop_column("items", "size", fill=0), id="sim_drop_column"),
        _table("items", sa.Column("name", sa.String(40)), sa.Column("size", sa.Integer, nullable=False)),
        _table("items", sa.Column("name", sa.String(40))),
    )


def set_not_null() -> Upgrade:
    """Release N may still write NULL categories; the fill replaces them until contract."""
    return Upgrade(
        Change(ops.set_not_null("items", "category", fill="misc"), id="sim_set_not_null"),
        _table("items", sa.Column("name", sa.String(40)), sa.Column("category", sa.String(20))),
        _table("items", sa.Column("name", sa.String(40)), sa.Column("category", sa.String(20), nullable=False)),
    )


ALL = {f.__name__: f for f in (replace_column, rename_column, add_column_computed, add_column_with_default,
                               drop_column, set_not_null)}
