"""Preflight reads privileges from the server's privilege tables, never SHOW GRANTS' text
(issue 10, finding 6; DESIGN section 6).

A user without the privilege crossfade's DDL needs is refused before any DDL, with the GRANT to
run; a grant on another database whose name merely contains "trigger" or "super" is not one;
a user that really has them (through a wildcard database grant, or a role owning the table) passes.
Users and roles are named per run (process id) and dropped afterwards.
"""

from __future__ import annotations

import os

import pytest
import sqlalchemy as sa
from test_identifiers import create_table, replace
from test_validation import snapshot

from crossfade.dialects import mysql_grants
from crossfade.errors import PreflightError
from crossfade.runner import Runner
from crossfade.state import Phase

USER = f"cf_priv_{os.getpid()}"
OWNER = f"cf_owner_{os.getpid()}"


def as_user(engine: sa.Engine, user: str) -> sa.Engine:
    return sa.create_engine(engine.url.set(username=user, password=None))


def refused_before_ddl(admin: sa.Engine, engine: sa.Engine, change, *needles: str) -> str:
    before = snapshot(admin)
    with pytest.raises(PreflightError) as caught:
        Runner(engine).expand(change)
    assert snapshot(admin) == before  # no column added, crossfade_state not even created
    for needle in needles:
        assert needle in str(caught.value)
    return str(caught.value)


# --- MariaDB -------------------------------------------------------------------------------------------

def run(conn: sa.Connection, sql: str) -> None:
    conn.exec_driver_sql(sql.replace("%", "%%"))  # no parameters, but the driver still formats


def _like_escape(name: str) -> str:
    return name.replace("\\", "\\\\").replace("_", "\\_").replace("%", "\\%")


def wildcard(database: str) -> str:
    """A database-level grant's name covering the test database: crossfade\\_test\\_% (escaped `_`)."""
    return _like_escape(database.rsplit("_", 1)[0]) + "\\_%"


@pytest.fixture
def mariadb_user(engine):
    """A user with every privilege crossfade needs on the test database (through a wildcard grant,
    crossfade\\_test\\_%) but TRIGGER, which it has only on a database named x_trigger_y; and a grant
    on x_super_y (which a search of SHOW GRANTS' text took for SUPER)."""
    with engine.begin() as conn:
        run(conn, f"DROP USER IF EXISTS '{USER}'@'%'")
        run(conn, f"CREATE USER '{USER}'@'%'")
        run(conn, f"GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, INDEX, DROP "
                  f"ON `{wildcard(engine.url.database)}`.* TO '{USER}'@'%'")
        run(conn, f"GRANT TRIGGER ON `x_trigger_y`.* TO '{USER}'@'%'")
        run(conn, f"GRANT SELECT ON `x_super_y`.* TO '{USER}'@'%'")
    user_engine = as_user(engine, USER)
    yield user_engine
    user_engine.dispose()
    with engine.begin() as conn:
        run(conn, f"DROP USER IF EXISTS '{USER}'@'%'")


@pytest.mark.parametrize("dialect_name", ["mysql"])
def test_mariadb_grant_on_a_database_named_like_trigger_is_not_trigger(engine, mariadb_user):
    create_table(engine, "images")
    message = refused_before_ddl(engine, mariadb_user, replace("images"), "TRIGGER",
                                 f"GRANT TRIGGER ON `{engine.url.database}`.* TO '{USER}'@'%'")
    assert "ALTER privilege" not in message  # it has ALTER


@pytest.mark.parametrize("dialect_name", ["mysql"])
def test_mariadb_privileges_come_from_the_privilege_tables(engine, mariadb_user):
    with mariadb_user.connect() as conn:
        grants = mysql_grants.read_grants(conn)
    assert grants.grantee == f"'{USER}'@'%'"
    assert not grants.has("TRIGGER", engine.url.database)
    assert grants.has("TRIGGER", "x_trigger_y") and grants.has("TRIGGER", "xAtriggerBy")  # `_` is a wildcard
    assert not grants.has_global("SUPER")
    with engine.connect() as conn:
        assert mysql_grants.read_grants(conn).has_global("SUPER")  # root has it


def test_escaped_underscores_in_a_database_grant_match_only_themselves():
    assert mysql_grants.matches("app\\_%", "app_1")
    assert not mysql_grants.matches("app\\_%", "appX1")
    assert mysql_grants.matches("app_%", "appX1")
    assert not mysql_grants.matches("x_trigger_y", "crossfade_test")
    ranked = sorted(["%", "app\\_%", "app", "a%"], key=mysql_grants.specificity, reverse=True)
    assert ranked == ["app", "app\\_%", "a%", "%"]


@pytest.mark.parametrize("dialect_name", ["mysql"])
def test_mariadb_user_with_trigger_through_a_wildcard_grant_passes(engine, mariadb_user):
    with engine.begin() as conn:
        run(conn, f"GRANT TRIGGER ON `{wildcard(engine.url.database)}`.* TO '{USER}'@'%'")
    create_table(engine, "images")
    runner = Runner(mariadb_user)
    change = replace("images")
    runner.expand(change)
    assert runner.load(change).phase is Phase.EXPANDED
    runner.rollback(change)


@pytest.mark.parametrize("dialect_name", ["mysql"])
def test_mariadb_grant_by_name_hides_a_wildcard_grant_of_trigger(engine, mariadb_user):
    """The server takes the most specific matching database grant alone: TRIGGER through the
    wildcard does not count once the database is also granted by name (it would fail with 1142)."""
    database = engine.url.database
    with engine.begin() as conn:
        run(conn, f"GRANT TRIGGER ON `{wildcard(database)}`.* TO '{USER}'@'%'")
        run(conn, f"GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, INDEX, DROP ON `{database}`.* "
                  f"TO '{USER}'@'%'")
    create_table(engine, "images")
    refused_before_ddl(engine, mariadb_user, replace("images"), "lacks the TRIGGER privilege")


@pytest.mark.parametrize("dialect_name", ["mysql"])
def test_mariadb_trigger_through_a_role_the_user_cannot_read_is_a_warning(engine, mariadb_user):
    """information_schema does not show a role's grants, and mysql.* is closed to the user: crossfade
    cannot tell, so it warns (naming the role) instead of refusing a user that may be entitled."""
    role = f"{USER}_role"
    with engine.begin() as conn:
        run(conn, f"DROP ROLE IF EXISTS {role}")
        run(conn, f"CREATE ROLE {role}")
        run(conn, f"GRANT TRIGGER ON `{wildcard(engine.url.database)}`.* TO {role}")
        run(conn, f"GRANT {role} TO '{USER}'@'%'")
        run(conn, f"SET DEFAULT ROLE {role} FOR '{USER}'@'%'")
    try:
        create_table(engine, "images")
        runner = Runner(mariadb_user)
        runner.expand(replace("images"))
        assert any("TRIGGER" in w and role in w for w in runner.warnings)
        with engine.connect() as conn:  # root reads the role's grants from mysql.*
            run(conn, f"SET ROLE {role}")
            assert mysql_grants.read_grants(conn).unread_roles == []
    finally:
        with engine.begin() as conn:
            run(conn, f"DROP ROLE IF EXISTS {role}")


# --- PostgreSQL ----------------------------------------------------------------------------------------

@pytest.fixture
def pg_user(engine):
    """A login role that may use and create in the schema, and read and write the table, but neither
    owns it nor has TRIGGER on it."""
    with engine.begin() as conn:
        for role in (USER, OWNER):
            conn.exec_driver_sql(f"DROP ROLE IF EXISTS {role}")
        conn.exec_driver_sql(f"CREATE ROLE {USER} LOGIN")
        conn.exec_driver_sql(f"CREATE ROLE {OWNER}")
        conn.exec_driver_sql(f"GRANT USAGE, CREATE ON SCHEMA public TO {USER}")
    user_engine = as_user(engine, USER)
    yield user_engine
    user_engine.dispose()
    engine.dispose()
    with engine.begin() as conn:
        for role in (USER, OWNER):
            conn.exec_driver_sql(f"REASSIGN OWNED BY {role} TO CURRENT_USER")
            conn.exec_driver_sql(f"DROP OWNED BY {role}")
            conn.exec_driver_sql(f"DROP ROLE {role}")


@pytest.mark.parametrize("dialect_name", ["postgresql"])
def test_postgresql_role_without_trigger_or_ownership_is_refused(engine, pg_user):
    create_table(engine, "images")
    with engine.begin() as conn:
        conn.exec_driver_sql(f"GRANT SELECT, INSERT, UPDATE ON images TO {USER}")
    refused_before_ddl(engine, pg_user, replace("images"), "TRIGGER privilege on table images",
                       f"GRANT TRIGGER ON TABLE public.images TO {USER}", "does not own table images",
                       f"GRANT postgres TO {USER}")


@pytest.mark.parametrize("dialect_name", ["postgresql"])
def test_postgresql_member_of_the_owning_role_passes(engine, pg_user):
    create_table(engine, "images")
    with engine.begin() as conn:
        conn.exec_driver_sql(f"ALTER TABLE images OWNER TO {OWNER}")
        conn.exec_driver_sql(f"GRANT {OWNER} TO {USER}")
    runner = Runner(pg_user)
    change = replace("images")
    runner.expand(change)
    assert runner.load(change).phase is Phase.EXPANDED
    runner.rollback(change)
