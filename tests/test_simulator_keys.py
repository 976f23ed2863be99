"""The simulator on tables whose keys the application supplies: a string primary key, a composite
primary key, unique columns beside the key, foreign keys between the simulated tables, and the
sources of a derived value that the op needs to agree (Keystone's identity tables have all of
them). Each run writes through real triggers on a real database; the tests then read what the
writers left there."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from crossfade import Change, ops
from crossfade.errors import CrossfadeError
from crossfade.testing import Settings, simulate
from crossfade.testing.model import plan_tables

DOMAINS = ["default", "ldap", "heat"]


def url_of(engine: sa.Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def _release(new: bool) -> sa.MetaData:
    """accounts: a String(36) key the application makes and a unique email; memberships: the
    key (org, login), a unique (org, nick), and account_id -> accounts.id. Release N+1 renames
    memberships.score to points and accounts.title to label."""
    metadata = sa.MetaData()
    sa.Table("accounts", metadata, sa.Column("id", sa.String(36), primary_key=True),
             sa.Column("email", sa.String(80), nullable=False, unique=True),
             sa.Column("label" if new else "title", sa.String(20)))
    sa.Table("memberships", metadata,
             sa.Column("org", sa.String(16), primary_key=True), sa.Column("login", sa.String(40), primary_key=True),
             sa.Column("account_id", sa.String(36), sa.ForeignKey("accounts.id"), nullable=False, index=True),
             sa.Column("nick", sa.String(40), nullable=False),
             sa.Column("points" if new else "score", sa.Integer),
             sa.UniqueConstraint("org", "nick", name="uq_memberships_org_nick"))
    return metadata


KEYED = Change(ops.rename_column("accounts", "title", "label"),
               ops.rename_column("memberships", "score", "points"), id="sim_supplied_keys")
VALUES = {"memberships.org": DOMAINS}


def test_the_simulator_writes_string_and_composite_keys_and_unique_columns_through_every_phase(engine):
    url = url_of(engine)
    engine.dispose()
    result = simulate(KEYED, _release(False), _release(True), url,
                      Settings(values=VALUES, seed_rows=30, writes_per_phase=150))
    assert result.ok, {n: (c.summary, c.details[:3]) for n, c in result.checks.items() if not c.ok}

    with engine.connect() as conn:
        accounts = conn.execute(sa.text("SELECT id, email FROM accounts")).all()
        memberships = conn.execute(sa.text("SELECT org, login, account_id, nick FROM memberships")).all()
    # Each writer made its own keys: the seed's, release N's and release N+1's are all there.
    assert {a.id.split("-")[0] for a in accounts} >= {"seed", "N"}
    assert any(m.login.startswith("N+1-") for m in memberships)
    assert {m.org for m in memberships} <= set(DOMAINS) and len({m.org for m in memberships}) > 1
    assert len({(m.org, m.nick) for m in memberships}) == len(memberships)
    assert {m.account_id for m in memberships} <= {a.id for a in accounts}  # the foreign keys held


def _derived(refuse: bool) -> tuple[Change, sa.MetaData, sa.MetaData]:
    """Keystone 014's shape with string keys and a composite-key source whose value is in its key."""
    def release(with_domain: bool) -> sa.MetaData:
        metadata = sa.MetaData()
        sa.Table("people", metadata, sa.Column("id", sa.String(36), primary_key=True), sa.Column("name", sa.String(20)),
                 *([sa.Column("domain", sa.String(16))] if with_domain else []))
        sa.Table("local_people", metadata, sa.Column("id", sa.Integer, primary_key=True),
                 sa.Column("person_id", sa.String(36), sa.ForeignKey("people.id"), unique=True),
                 sa.Column("domain", sa.String(16), nullable=False), sa.Column("login", sa.String(40)))
        sa.Table("remote_people", metadata, sa.Column("domain", sa.String(16), primary_key=True),
                 sa.Column("login", sa.String(40), primary_key=True),
                 sa.Column("person_id", sa.String(36), sa.ForeignKey("people.id"), index=True))
        return metadata

    change = Change(ops.derive_column("people", sa.Column("domain", sa.String(16)),
                                      sources=[("local_people", "domain", "person_id"),
                                               ("remote_people", "domain", "person_id")],
                                      **({} if refuse else {"conflicts": "resolve"})), id="sim_derived_keys")
    return change, release(False), release(True)


def test_the_sources_of_a_value_whose_op_refuses_disagreement_agree_per_target(engine):
    """derive_column refuses users whose sources disagree: the writers keep every source row of
    a person at one domain, so expand goes through, and the database shows it."""
    change, release_n, release_n1 = _derived(refuse=True)
    url = url_of(engine)
    engine.dispose()
    result = simulate(change, release_n, release_n1, url,
                      Settings(values={"local_people.domain": DOMAINS, "remote_people.domain": DOMAINS},
                               seed_rows=30, writes_per_phase=150))
    assert result.ok, {n: (c.summary, c.details[:3]) for n, c in result.checks.items() if not c.ok}
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT person_id, domain FROM local_people WHERE person_id IS NOT NULL UNION ALL "
            "SELECT person_id, domain FROM remote_people WHERE person_id IS NOT NULL")).all()
        people = dict(conn.execute(sa.text("SELECT id, domain FROM people")).all())
        local = conn.execute(sa.text("SELECT person_id FROM local_people WHERE person_id IS NOT NULL")).scalars().all()
    domains: dict[str, set] = {}
    for person, domain in rows:
        domains.setdefault(person, set()).add(domain)
    assert domains and all(len(found) == 1 for found in domains.values())
    assert all(people[person] == found.pop() for person, found in domains.items())  # derived, and kept
    assert len(local) == len(set(local))  # the unique foreign key: one local row per person


def test_a_composite_key_with_rows_hanging_off_it_is_refused_before_anything_runs():
    """split_table keeps a row's columns in another table by the row's key: with a composite key
    the simulator says it cannot verify that, in one line, before it touches a database."""
    def release(split: bool) -> sa.MetaData:
        metadata = sa.MetaData()
        sa.Table("members", metadata, sa.Column("org", sa.Integer, primary_key=True),
                 sa.Column("login", sa.String(20), primary_key=True),
                 *([] if split else [sa.Column("bio", sa.String(40))]))
        if split:
            sa.Table("profiles", metadata, sa.Column("org", sa.Integer, primary_key=True),
                     sa.Column("login", sa.String(20), primary_key=True), sa.Column("bio", sa.String(40)))
        return metadata

    change = Change(ops.split_table("members", "profiles", ["bio"]), id="sim_composite_split")
    with pytest.raises(CrossfadeError) as refused:
        plan_tables(change, release(False), release(True))
    assert "\n" not in str(refused.value).strip()


def test_a_key_that_differs_between_releases_is_refused_in_one_line():
    change, release_n, _ = _derived(refuse=False)
    other = _derived(refuse=False)[2]
    other.remove(other.tables["remote_people"])
    sa.Table("remote_people", other, sa.Column("login", sa.String(40), primary_key=True),
             sa.Column("domain", sa.String(16)), sa.Column("person_id", sa.String(36), sa.ForeignKey("people.id")))
    with pytest.raises(CrossfadeError, match="remote_people.*keep its primary key") as refused:
        plan_tables(change, release_n, other)
    assert "\n" not in str(refused.value).strip()
