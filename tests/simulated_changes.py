"""Every operation as a complete rolling upgrade the simulator can run: the change, release N's
metadata and release N+1's metadata (what each release's application code knows)."""

from __future__ import annotations

import decimal
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

from crossfade import Change, ops, transforms
from crossfade.loader import import_file


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
            down=lambda visibility: visibility == "public"), id="sim_replace_column", new_release_identified=True),
        _table("images", sa.Column("name", sa.String(40)), sa.Column("is_public", sa.Boolean, nullable=False)),
        _table("images", sa.Column("name", sa.String(40)),
               sa.Column("visibility", sa.String(16), nullable=False, server_default="shared")),
        {"images.visibility": VISIBILITIES},
    )


def replace_column_nullable() -> Upgrade:
    """Issue 10's finding 2: orders.amount (nullable) becomes orders.amount_cents (nullable), and
    NULL is a real value in both (an unknown amount): release N+1 writes NULL often, before the
    backfill has reached the row too."""
    def amounts(rng):
        return None if rng.random() < 0.35 else decimal.Decimal(rng.randint(-100_000, 100_000)).scaleb(-2)

    def cents(rng):
        return None if rng.random() < 0.35 else rng.randint(-100_000, 100_000)

    return Upgrade(
        Change(ops.replace_column(
            "orders", "amount", sa.Column("amount_cents", sa.BigInteger, nullable=True),
            up=lambda amount: transforms.scaled(amount, 100), down=lambda cents: transforms.unscaled(cents, 100)),
            id="sim_replace_column_nullable", new_release_identified=True),
        _table("orders", sa.Column("note", sa.String(20)), sa.Column("amount", sa.Numeric(12, 2))),
        _table("orders", sa.Column("note", sa.String(20)), sa.Column("amount_cents", sa.BigInteger)),
        {"orders.amount": amounts, "orders.amount_cents": cents},
    )


def rename_column() -> Upgrade:
    return Upgrade(
        Change(ops.rename_column("users", "login", "username"), id="sim_rename_column", new_release_identified=True),
        _table("users", sa.Column("login", sa.String(40), nullable=False), sa.Column("email", sa.String(60))),
        _table("users", sa.Column("username", sa.String(40), nullable=False), sa.Column("email", sa.String(60))),
    )


def add_column_computed() -> Upgrade:
    """A derived column: full_name follows first_name and last_name (one way)."""
    return Upgrade(
        Change(ops.add_column("users", sa.Column("full_name", sa.String(81)),
                              backfill=lambda row: row.first_name + " " + row.last_name), id="sim_add_column", new_release_identified=True),
        _table("users", sa.Column("first_name", sa.String(40)), sa.Column("last_name", sa.String(40))),
        _table("users", sa.Column("first_name", sa.String(40)), sa.Column("last_name", sa.String(40)),
               sa.Column("full_name", sa.String(81))),
    )


def add_column_with_default() -> Upgrade:
    return Upgrade(
        Change(ops.add_column("items", sa.Column("status", sa.String(10), nullable=False, server_default="new")),
               id="sim_add_column_default", new_release_identified=True),
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


def split_column() -> Upgrade:
    """full_name becomes first_name and last_name (split at the first space), each wide enough for
    any full_name release N can store (a name without a space is all first name): the round-trip
    law covers the type's whole domain."""
    return Upgrade(
        Change(ops.split_column(
            "people", "full_name", [sa.Column("first_name", sa.String(81)), sa.Column("last_name", sa.String(80))],
            up=lambda full: (transforms.before(full, " "), transforms.after(full, " ")),
            down=lambda first, last: transforms.join(" ", first, last)), id="sim_split_column", new_release_identified=True),
        _table("people", sa.Column("full_name", sa.String(81)), sa.Column("email", sa.String(60))),
        _table("people", sa.Column("first_name", sa.String(81)), sa.Column("last_name", sa.String(80)),
               sa.Column("email", sa.String(60))),
        {"people.full_name": ["Ada King", "Alan Mathison Turing", "Grace", "", " lead", "trail "],
         "people.first_name": ["Ada", "Alan", "", "Grace"], "people.last_name": ["King", "Mathison Turing", ""]},
    )


def merge_columns() -> Upgrade:
    """version_major and version_minor become one version string ('3.14'). Two strings joined
    by a separator would not do: the round-trip law refuses 'a, b' + 'c', as it should."""
    to_int = lambda text: sa.cast(text, sa.Integer)
    return Upgrade(
        Change(ops.merge_columns(
            "releases", ["major", "minor"], sa.Column("version", sa.String(24), nullable=False),
            up=lambda major, minor: transforms.join(".", sa.cast(major, sa.String), sa.cast(minor, sa.String)),
            down=lambda version: (to_int(transforms.before(version, ".")), to_int(transforms.after(version, ".")))),
            id="sim_merge_columns", new_release_identified=True),
        _table("releases", sa.Column("major", sa.Integer, nullable=False), sa.Column("minor", sa.Integer, nullable=False),
               sa.Column("name", sa.String(40))),
        _table("releases", sa.Column("version", sa.String(24), nullable=False), sa.Column("name", sa.String(40))),
        {"releases.version": ["1.0", "2.13", "-3.7", "10.0"]},
    )


def create_index() -> Upgrade:
    metadata_n1 = _table("items", sa.Column("name", sa.String(40)), sa.Column("size", sa.Integer))
    sa.Index("ix_items_size", metadata_n1.tables["items"].c.size)
    return Upgrade(
        Change(ops.create_index("items", "ix_items_size", "size"), id="sim_create_index", new_release_identified=True),
        _table("items", sa.Column("name", sa.String(40)), sa.Column("size", sa.Integer)),
        metadata_n1,
    )


def add_unique() -> Upgrade:
    """Release N never writes duplicate codes (its values are unique), so contract may add it."""
    metadata_n1 = _table("items", sa.Column("code", sa.String(40)), sa.Column("size", sa.Integer))
    metadata_n1.tables["items"].append_constraint(sa.UniqueConstraint("code", name="uq_items_code"))
    unique = lambda rng: f"{rng.getrandbits(64):016x}"
    return Upgrade(
        Change(ops.add_unique("items", "uq_items_code", "code"), id="sim_add_unique", new_release_identified=True),
        _table("items", sa.Column("code", sa.String(40)), sa.Column("size", sa.Integer)),
        metadata_n1,
        {"items.code": unique},
    )


def add_check() -> Upgrade:
    return Upgrade(
        Change(ops.add_check("items", "ck_items_size", lambda row: row.size > -100_000), id="sim_add_check", new_release_identified=True),
        _table("items", sa.Column("name", sa.String(40)), sa.Column("size", sa.Integer)),
        _table("items", sa.Column("name", sa.String(40)), sa.Column("size", sa.Integer)),
    )


def add_foreign_key() -> Upgrade:
    """items.owner_id gets its foreign key; release N only ever writes existing owners (the
    simulator seeds owners 1..seed_rows and no worker writes that table)."""
    def with_owners(*columns: sa.Column) -> sa.MetaData:
        metadata = _table("items", *columns)
        sa.Table("owners", metadata, sa.Column("id", sa.Integer, primary_key=True), sa.Column("name", sa.String(40)))
        return metadata

    metadata_n1 = with_owners(sa.Column("owner_id", sa.Integer, sa.ForeignKey("owners.id", name="fk_items_owner")))
    return Upgrade(
        Change(ops.add_foreign_key("items", "fk_items_owner", "owner_id", "owners", "id"), id="sim_add_foreign_key", new_release_identified=True),
        with_owners(sa.Column("owner_id", sa.Integer)),
        metadata_n1,
        {"items.owner_id": list(range(1, 21))},
    )


def block_writes() -> Upgrade:
    """A column no trigger can sync: writes to it are refused until contract drops it."""
    return Upgrade(
        Change(ops.block_writes("docs", "legacy_format"), ops.drop_column("docs", "legacy_format"),
               id="sim_block_writes", new_release_identified=True),
        _table("docs", sa.Column("title", sa.String(40)),
               sa.Column("legacy_format", sa.String(10), nullable=False, server_default="v1")),
        _table("docs", sa.Column("title", sa.String(40))),
    )


def compute_column() -> Upgrade:
    """Keystone 003 (examples/keystone/k003_credential_encryption): the blob encrypted in Python,
    writes blocked by Keystone's own rule for everyone (release N+1 is not identified), blob dropped."""
    k003 = import_file(Path(__file__).resolve().parents[1] / "examples" / "keystone" / "k003_credential_encryption"
                       / "change.py")
    change = Change(*k003.operations(), id="sim_compute_column")
    unique = lambda rng: f"{rng.getrandbits(64):016x}"
    return Upgrade(change, k003.metadata, k003.metadata_n1, {"credential.id": unique})


def _digest(rows) -> list[str]:
    return [hashlib.sha256(row.plain.encode()).hexdigest()[:32] for row in rows]


def compute_column_identified() -> Upgrade:
    """A value only Python computes, with release N+1 identified: only release N's writes are
    blocked (on PostgreSQL and MariaDB), so release N+1 writes from expand on (SQLite cannot tell:
    there both releases' blocked writes are refused until contract)."""
    rule = lambda new, old: sa.or_(new.hashed.is_(None), new.plain.is_distinct_from(old.plain))
    return Upgrade(
        Change(ops.compute_column("secrets", sa.Column("hashed", sa.String(32), nullable=False), _digest,
                                  reads="plain"),
               ops.block_writes("secrets", insert=True, update=rule, old_release_only=True,
                                message="secrets are being hashed; release N may not write them"),
               ops.drop_column("secrets", "plain", relax=True),
               id="sim_compute_column_identified", new_release_identified=True),
        _table("secrets", sa.Column("plain", sa.String(40), nullable=False), sa.Column("note", sa.String(20))),
        _table("secrets", sa.Column("note", sa.String(20)), sa.Column("hashed", sa.String(32), nullable=False)),
    )


def _upgrade_log(metadata: sa.MetaData) -> sa.MetaData:
    sa.Table("upgrade_log", metadata, sa.Column("id", sa.Integer, primary_key=True),
             sa.Column("note", sa.String(40), nullable=False))
    return metadata


def _log_the_upgrade(conn: sa.Connection) -> None:
    conn.execute(sa.text("INSERT INTO upgrade_log (note) VALUES ('status added')"))


def data_step() -> Upgrade:
    """A migrate step that writes rows no column transform could: one line in upgrade_log."""
    return Upgrade(
        Change(ops.add_column("items", sa.Column("status", sa.String(10), nullable=False, server_default="new")),
               ops.data_step("log the upgrade", _log_the_upgrade, tables="upgrade_log"),
               id="sim_data_step", new_release_identified=True),
        _upgrade_log(_table("items", sa.Column("name", sa.String(40)))),
        _upgrade_log(_table("items", sa.Column("name", sa.String(40)),
                            sa.Column("status", sa.String(10), nullable=False, server_default="new"))),
    )


def _users(name: str, metadata: sa.MetaData, *columns: sa.Column) -> sa.Table:
    return sa.Table(name, metadata, sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("name", sa.String(40), nullable=False), *columns,
                    sa.Column("score", sa.Integer, server_default="7"))


def _profile_columns() -> list[sa.Column]:
    return [sa.Column("bio", sa.String(200)), sa.Column("theme", sa.String(20), nullable=False)]


def rename_table() -> Upgrade:
    """users becomes accounts: release N+1 reads and writes accounts (a view on PostgreSQL and
    MariaDB, a mirror table on SQLite) while release N still writes users."""
    release_n, release_n1 = sa.MetaData(), sa.MetaData()
    _users("users", release_n, *_profile_columns())
    _users("accounts", release_n1, *_profile_columns())
    return Upgrade(Change(ops.rename_table("users", "accounts"), id="sim_rename_table", new_release_identified=True), release_n, release_n1)


def split_table() -> Upgrade:
    """users.bio and users.theme move to profiles (one row per user, keyed by its id). theme is
    NOT NULL: expand relaxes it on users, and release N+1 gives a new profile one."""
    release_n, release_n1 = sa.MetaData(), sa.MetaData()
    _users("users", release_n, *_profile_columns())
    _users("users", release_n1)
    sa.Table("profiles", release_n1,
             sa.Column("id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
             *_profile_columns())
    return Upgrade(Change(ops.split_table("users", "profiles", ["bio", "theme"]), id="sim_split_table", new_release_identified=True),
                   release_n, release_n1)


def move_column() -> Upgrade:
    """users.org_name moves to orgs.name (many-to-one through users.org_id): release N keeps the
    name on every user of an org, release N+1 on the org. Users belong to orgs 1-3, so each org
    has many users, and both releases write the name at once."""
    def release(org_name_on: str) -> sa.MetaData:
        metadata = sa.MetaData()
        sa.Table("orgs", metadata, sa.Column("id", sa.Integer, primary_key=True), sa.Column("title", sa.String(20)),
                 *([sa.Column("name", sa.String(40))] if org_name_on == "orgs" else []))
        sa.Table("users", metadata, sa.Column("id", sa.Integer, primary_key=True), sa.Column("login", sa.String(20)),
                 sa.Column("org_id", sa.Integer, sa.ForeignKey("orgs.id"), nullable=False, index=True),
                 *([sa.Column("org_name", sa.String(40))] if org_name_on == "users" else []))
        return metadata

    return Upgrade(Change(ops.move_column("users", "org_name", to="orgs", via="org_id", new="name"),
                          id="sim_move_column"),
                   release("users"), release("orgs"), {"users.org_id": lambda rng: rng.randint(1, 3)})


def derive_column() -> Upgrade:
    """Keystone 014's shape with integer keys: accounts.domain is derived from
    local_logins.domain and remote_logins.domain (each row's account_id -> accounts.id). Both
    releases write the logins (inserts, domain changes, moves to another account, deletes) and
    the accounts; release N+1 reads accounts.domain, which no release writes directly."""
    def release(with_domain: bool) -> sa.MetaData:
        metadata = sa.MetaData()
        sa.Table("accounts", metadata, sa.Column("id", sa.Integer, primary_key=True),
                 sa.Column("name", sa.String(20)), *([sa.Column("domain", sa.String(16))] if with_domain else []))
        for name in ("local_logins", "remote_logins"):
            sa.Table(name, metadata, sa.Column("id", sa.Integer, primary_key=True),
                     sa.Column("account_id", sa.Integer, sa.ForeignKey("accounts.id"), index=True),
                     sa.Column("domain", sa.String(16)), sa.Column("login", sa.String(20)))
        return metadata

    domains = ["default", "ldap", "heat"]
    return Upgrade(Change(ops.derive_column("accounts", sa.Column("domain", sa.String(16)), sources=[
                              ("local_logins", "domain", "account_id"), ("remote_logins", "domain", "account_id")],
                                            conflicts="resolve"),  # the writers do not keep an account's logins agreeing
                          id="sim_derive_column"),
                   release(False), release(True),
                   {"local_logins.account_id": lambda rng: rng.randint(1, 4),
                    "remote_logins.account_id": lambda rng: rng.randint(1, 4),
                    "local_logins.domain": domains, "remote_logins.domain": domains})


ALL = {f.__name__: f for f in (replace_column, replace_column_nullable, rename_column, add_column_computed, add_column_with_default,
                               drop_column, set_not_null, split_column, merge_columns, block_writes,
                               create_index, add_unique, add_check, add_foreign_key, rename_table, split_table,
                               move_column, derive_column, compute_column, compute_column_identified, data_step)}
