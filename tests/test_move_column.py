"""move_column: a column moves to a related table, and every write through either table reaches
the other (DESIGN section 2, cross-table groups). Each test writes rows through the triggers on
real databases and reads them back: SQLite (recursive_triggers off and on), PostgreSQL, MariaDB.

Release N knows users.org_name; release N+1 knows orgs.name (many-to-one through users.org_id).
The one-to-one shape moves users.password to local_users.password through local_users.user_id.
"""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa
from trigger_variants import db, dialect_name, set_recursive_triggers, variant  # noqa: F401 - fixtures

from crossfade import Change, ops
from crossfade.errors import (
    ColumnExistsError,
    DisagreeingRowsError,
    PreflightError,
    TableAlreadyLinkedError,
    UnmovableValuesError,
    ValidationError,
)
from crossfade.runner import Runner
from crossfade.schema import Schema


def release_n(ondelete: str | None = "SET NULL", onupdate: str | None = None) -> tuple[sa.Table, sa.Table]:
    metadata = sa.MetaData()
    orgs = sa.Table("orgs", metadata, sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("title", sa.String(20), nullable=False))
    users = sa.Table("users", metadata, sa.Column("id", sa.Integer, primary_key=True),
                     sa.Column("login", sa.String(20)),
                     sa.Column("org_id", sa.Integer, sa.ForeignKey("orgs.id", ondelete=ondelete, onupdate=onupdate),
                               index=True),
                     sa.Column("org_name", sa.String(40)),
                     sa.Column("org_tier", sa.Integer))
    return orgs, users


def release_n1() -> tuple[sa.Table, sa.Table]:
    """Release N+1's own models: orgs has the name, users no longer has it."""
    metadata = sa.MetaData()
    orgs = sa.Table("orgs", metadata, sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("title", sa.String(20), nullable=False), sa.Column("name", sa.String(40)))
    users = sa.Table("users", metadata, sa.Column("id", sa.Integer, primary_key=True),
                     sa.Column("login", sa.String(20)),
                     sa.Column("org_id", sa.Integer, sa.ForeignKey("orgs.id"), index=True))
    return orgs, users


MOVE = Change(ops.move_column("users", "org_name", to="orgs", via="org_id", new="name"), id="move-org-name")


def build(db: sa.Engine, *, users: list[dict] = (), orgs: int = 3, **keys) -> tuple[sa.Table, sa.Table]:
    """Release N's tables with `orgs` orgs (ids 1..n) and the given users."""
    org_table, user_table = release_n(**keys)
    org_table.metadata.create_all(db)
    with db.begin() as conn:
        for i in range(1, orgs + 1):
            conn.execute(org_table.insert().values(id=i, title=f"t{i}"))
        for row in users:
            conn.execute(user_table.insert().values(row))
    return org_table, user_table


SEED = [{"login": "ann", "org_id": 1, "org_name": "acme"}, {"login": "bob", "org_id": 1, "org_name": "acme"},
        {"login": "cy", "org_id": 2, "org_name": "blue"}, {"login": "di", "org_id": None, "org_name": None}]


def expanded(db: sa.Engine, seed=SEED, *, migrate: bool = True) -> tuple[Runner, sa.Table, sa.Table, sa.Table]:
    _, users = build(db, users=seed)
    runner = Runner(db)
    runner.expand(MOVE)
    if migrate:
        runner.migrate(MOVE)
    orgs_n1, users_n1 = release_n1()
    return runner, users, orgs_n1, users_n1


def names(db: sa.Engine, users: sa.Table) -> dict[str, str | None]:
    """Release N's reading: each user's org_name."""
    with db.connect() as conn:
        return dict(conn.execute(sa.select(users.c.login, users.c.org_name)).all())


def org_names(db: sa.Engine, orgs: sa.Table) -> dict[int, str | None]:
    """Release N+1's reading: each org's name."""
    with db.connect() as conn:
        return dict(conn.execute(sa.select(orgs.c.id, orgs.c.name).order_by(orgs.c.id)).all())


def run(db: sa.Engine, statement) -> sa.CursorResult:
    with db.begin() as conn:
        return conn.execute(statement)


def sibling_writes_reach_siblings(db: sa.Engine) -> bool:
    """MySQL/MariaDB triggers cannot write the table their statement writes (error 1442)."""
    return db.dialect.name != "mysql"


# --- the backfill --------------------------------------------------------------------------------

def test_backfill_gives_each_target_row_the_value_its_source_rows_share(db):
    _, _, orgs, _ = expanded(db)
    assert org_names(db, orgs) == {1: "acme", 2: "blue", 3: None}  # org 3 has no users


def test_a_row_release_n_inserts_empty_before_the_backfill_takes_its_siblings_value(db):
    _, users, orgs, _ = expanded(db, migrate=False)
    run(db, users.insert().values(login="eve", org_id=1, org_name=None))  # orgs.name not derived yet
    assert names(db, users) == {"ann": "acme", "bob": "acme", "cy": "blue", "di": None, "eve": "acme"}
    Runner(db).migrate(MOVE)
    assert names(db, users)["eve"] == "acme"
    assert org_names(db, orgs)[1] == "acme"


def test_the_backfill_fills_a_row_left_empty_while_its_target_had_no_value(db):
    _, users, orgs, _ = expanded(db, migrate=False)
    run(db, users.insert().values(login="eve", org_id=3))  # org 3: no users with a name, no name yet
    run(db, orgs.update().where(orgs.c.id == 3).values(name="cyan"))  # release N+1 names it
    assert names(db, users)["eve"] == "cyan"
    Runner(db).migrate(MOVE)
    assert org_names(db, orgs) == {1: "acme", 2: "blue", 3: "cyan"}


# --- release N's writes ----------------------------------------------------------------------------

def test_release_n_updating_every_row_of_a_target_reaches_the_target(db):
    _, users, orgs, _ = expanded(db)
    run(db, users.update().where(users.c.org_id == 1).values(org_name="acme inc"))
    assert org_names(db, orgs)[1] == "acme inc"
    assert names(db, users) == {"ann": "acme inc", "bob": "acme inc", "cy": "blue", "di": None}


def test_release_n_updating_one_row_reaches_the_target_and_where_possible_its_siblings(db):
    _, users, orgs, _ = expanded(db)
    run(db, users.update().where(users.c.login == "ann").values(org_name="acme inc"))
    assert org_names(db, orgs)[1] == "acme inc"
    bob = names(db, users)["bob"]
    assert bob == ("acme inc" if sibling_writes_reach_siblings(db) else "acme")


def test_release_n_inserting_without_the_value_takes_the_targets(db):
    _, users, _, _ = expanded(db)
    run(db, users.insert().values(login="eve", org_id=2))
    assert names(db, users)["eve"] == "blue"


def test_release_n_inserting_a_value_writes_the_target(db):
    _, users, orgs, _ = expanded(db)
    run(db, users.insert().values(login="eve", org_id=3, org_name="cyan"))
    assert org_names(db, orgs)[3] == "cyan"


def test_release_n_moving_a_row_to_another_target_takes_that_targets_value(db):
    _, users, orgs, _ = expanded(db)
    run(db, users.update().where(users.c.login == "cy").values(org_id=1))
    assert names(db, users)["cy"] == "acme"
    assert org_names(db, orgs) == {1: "acme", 2: "blue", 3: None}  # nothing was written to the orgs


def test_a_row_moved_to_a_target_without_a_value_gives_it_its_own(db):
    _, users, orgs, _ = expanded(db)
    run(db, users.update().where(users.c.login == "cy").values(org_id=3))
    assert org_names(db, orgs)[3] == "blue"
    assert names(db, users)["cy"] == "blue"


def test_release_n_clearing_the_value_clears_the_target(db):
    _, users, orgs, _ = expanded(db)
    run(db, users.update().where(users.c.org_id == 2).values(org_name=None))
    assert org_names(db, orgs)[2] is None


def test_an_update_of_unrelated_columns_changes_nothing_across(db):
    _, users, orgs, _ = expanded(db)
    run(db, users.update().where(users.c.login == "ann").values(login="anne"))
    assert org_names(db, orgs) == {1: "acme", 2: "blue", 3: None}
    assert names(db, users)["anne"] == "acme"


# --- release N+1's writes --------------------------------------------------------------------------

def test_release_n1_renaming_the_target_reaches_every_source_row(db):
    _, users, orgs, _ = expanded(db)
    run(db, orgs.update().where(orgs.c.id == 1).values(name="ACME"))
    assert names(db, users) == {"ann": "ACME", "bob": "ACME", "cy": "blue", "di": None}


def test_release_n1_inserting_a_source_row_fills_release_ns_column(db):
    _, users, _, users_n1 = expanded(db)
    run(db, users_n1.insert().values(login="eve", org_id=1))
    assert names(db, users)["eve"] == "acme"


def test_release_n1_inserting_a_target_with_a_value_keeps_it(db):
    _, _, orgs, _ = expanded(db)
    run(db, orgs.insert().values(id=9, title="t9", name="nine"))
    assert org_names(db, orgs)[9] == "nine"


def test_deleting_a_target_row_clears_its_source_rows(db):
    """ON DELETE SET NULL: the users keep their row but no longer have an org, nor its name."""
    _, users, orgs, _ = expanded(db)
    run(db, orgs.delete().where(orgs.c.id == 2))
    assert names(db, users)["cy"] is None


def test_a_failed_statement_leaves_the_triggers_syncing_the_next_one(db):
    _, users, orgs, _ = expanded(db)
    with pytest.raises(sa.exc.DBAPIError), db.begin() as conn:
        conn.execute(users.update().where(users.c.org_id == 1).values(org_name="x"))
        conn.execute(orgs.insert().values(id=1, title="duplicate key"))
    run(db, users.update().where(users.c.org_id == 2).values(org_name="still synced"))
    assert org_names(db, orgs) == {1: "acme", 2: "still synced", 3: None}


# --- contract and rollback -------------------------------------------------------------------------

def test_contract_drops_the_old_column_and_every_trigger(db):
    runner, _, orgs, users_n1 = expanded(db)
    runner.contract(MOVE)
    with db.connect() as conn:
        assert "org_name" not in {c["name"] for c in sa.inspect(conn).get_columns("users")}
    assert org_names(db, orgs) == {1: "acme", 2: "blue", 3: None}
    assert not runner.problems(MOVE)
    run(db, users_n1.insert().values(login="eve", org_id=1))  # plain writes, no trigger left
    run(db, orgs.update().where(orgs.c.id == 1).values(name="ACME"))
    assert org_names(db, orgs)[1] == "ACME"


def test_contract_refuses_a_value_that_found_no_target_row_before_any_ddl(db):
    runner, users, _, _ = expanded(db)
    run(db, users.update().where(users.c.login == "di").values(org_name="nowhere"))  # di has no org
    with pytest.raises(UnmovableValuesError, match="1 row\\(s\\) of 'users' hold org_name but match no 'orgs' row"):
        runner.contract(MOVE)
    with db.connect() as conn:
        assert "org_name" in {c["name"] for c in sa.inspect(conn).get_columns("users")}
    run(db, users.update().where(users.c.login == "di").values(org_name=None))
    runner.contract(MOVE)
    assert not runner.problems(MOVE)


def test_rollback_drops_the_new_column_and_keeps_release_ns(db):
    runner, users, orgs, _ = expanded(db)
    run(db, orgs.update().where(orgs.c.id == 1).values(name="ACME"))
    runner.rollback(MOVE)
    with db.connect() as conn:
        assert "name" not in {c["name"] for c in sa.inspect(conn).get_columns("orgs")}
    assert names(db, users) == {"ann": "ACME", "bob": "ACME", "cy": "blue", "di": None}
    assert not runner.problems(MOVE)


# --- two columns over one relation, and the one-to-one shape -------------------------------------

def test_two_moves_over_the_same_foreign_key_share_one_set_of_triggers(db):
    change = Change(ops.move_column("users", "org_name", to="orgs", via="org_id", new="name"),
                    ops.move_column("users", "org_tier", to="orgs", via="org_id", new="tier"), id="move-two")
    _, users = build(db, users=[{"login": "ann", "org_id": 1, "org_name": "acme", "org_tier": 2}])
    runner = Runner(db)
    runner.expand(change)
    runner.migrate(change)
    orgs = sa.Table("orgs", sa.MetaData(), autoload_with=db)
    with db.connect() as conn:
        assert conn.execute(sa.select(orgs.c.name, orgs.c.tier).where(orgs.c.id == 1)).one() == ("acme", 2)
    run(db, orgs.update().where(orgs.c.id == 1).values(tier=3))
    with db.connect() as conn:
        assert conn.execute(sa.select(users.c.org_name, users.c.org_tier)).one() == ("acme", 3)


def one_to_one(db: sa.Engine) -> tuple[sa.Table, sa.Table]:
    metadata = sa.MetaData()
    users = sa.Table("users", metadata, sa.Column("id", sa.Integer, primary_key=True),
                     sa.Column("login", sa.String(20)), sa.Column("password", sa.String(60)))
    local = sa.Table("local_users", metadata, sa.Column("id", sa.Integer, primary_key=True),
                     sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), unique=True,
                               nullable=False))
    metadata.create_all(db)
    return users, local


PASSWORD = Change(ops.move_column("users", "password", to="local_users", via="user_id"), id="move-password")


def test_one_to_one_the_target_row_release_n_adds_after_the_source_takes_its_value(db):
    users, local = one_to_one(db)
    run(db, users.insert().values(id=1, login="ann", password="h1"))
    run(db, local.insert().values(user_id=1))
    runner = Runner(db)
    runner.expand(PASSWORD)
    runner.migrate(PASSWORD)
    local_n1 = sa.Table("local_users", sa.MetaData(), autoload_with=db)
    # Release N creates a user, then its local_users row, in one transaction.
    with db.begin() as conn:
        conn.execute(users.insert().values(id=2, login="bob", password="h2"))
        conn.execute(local.insert().values(user_id=2))
    with db.connect() as conn:
        assert dict(conn.execute(sa.select(local_n1.c.user_id, local_n1.c.password)).all()) == {1: "h1", 2: "h2"}
    run(db, local_n1.update().where(local_n1.c.user_id == 2).values(password="h2b"))  # release N+1
    run(db, local_n1.delete().where(local_n1.c.user_id == 1))
    with db.connect() as conn:
        assert dict(conn.execute(sa.select(users.c.id, users.c.password)).all()) == {1: None, 2: "h2b"}
    runner.contract(PASSWORD)
    assert not runner.problems(PASSWORD)


# --- bad input, refused before any DDL -----------------------------------------------------------

def columns_of(db: sa.Engine, table: str) -> list[str]:
    with db.connect() as conn:
        return [c["name"] for c in sa.inspect(conn).get_columns(table)]


@pytest.mark.parametrize("op, error, message", [
    (ops.move_column("users", "nope", to="orgs", via="org_id"), ValidationError, "users.nope does not exist"),
    (ops.move_column("users", "org_name", to="nowhere", via="org_id"), ValidationError, "'nowhere' does not exist"),
    (ops.move_column("users", "org_name", to="users", via="org_id"), ValidationError, "moves to another table"),
    (ops.move_column("users", "org_name", to="orgs", via="login"), ValidationError, "foreign key"),
    (ops.move_column("users", "org_id", to="orgs", via="org_id"), ValidationError, "cannot move itself"),
    (ops.move_column("users", "org_name", to="orgs", via="org_id", new="title"), ColumnExistsError, "title"),
])
def test_a_move_that_cannot_work_is_refused_before_any_ddl(db, op, error, message):
    build(db, users=SEED)
    with pytest.raises(error, match=message):
        Runner(db).expand(Change(op, id="bad"))
    assert columns_of(db, "orgs") == ["id", "title"]


def test_a_relation_without_an_index_is_refused_unless_the_change_creates_one(db):
    """Every write of the value looks up the target's other rows by users.org_id."""
    metadata = sa.MetaData()
    sa.Table("orgs", metadata, sa.Column("id", sa.Integer, primary_key=True))
    sa.Table("users", metadata, sa.Column("id", sa.Integer, primary_key=True),
             sa.Column("org_id", sa.Integer, sa.ForeignKey("orgs.id")), sa.Column("org_name", sa.String(40)))
    metadata.create_all(db)
    move = ops.move_column("users", "org_name", to="orgs", via="org_id")
    if db.dialect.name == "mysql":  # MariaDB indexes every foreign key itself
        Runner(db).expand(Change(move, id="no-index"))
        assert "org_name" in columns_of(db, "orgs")
        return
    with pytest.raises(ValidationError) as refused:
        Runner(db).expand(Change(move, id="no-index"))
    assert str(refused.value).endswith(
        "users.org_id has no index, and the triggers look rows up by it on every write (a scan of users each "
        'time). Add one first, e.g. ops.create_index("users", "ix_users_org_id", "org_id") before the move in '
        "this change")
    assert columns_of(db, "orgs") == ["id"]
    with_index = Change(ops.create_index("users", "ix_users_org_id", "org_id"), move, id="with-index")
    Runner(db).expand(with_index)
    assert "org_name" in columns_of(db, "orgs")


def test_rows_of_one_target_that_disagree_are_refused_before_any_ddl(db):
    build(db, users=[{"login": "ann", "org_id": 1, "org_name": "acme"}, {"login": "bob", "org_id": 1,
                                                                           "org_name": "ACME"}])
    with pytest.raises(DisagreeingRowsError, match="share one 'orgs' row \\(org_id=1\\).*'acme'.*'ACME'"):
        Runner(db).expand(MOVE)
    assert columns_of(db, "orgs") == ["id", "title"]


def test_a_value_with_no_target_row_is_refused_before_any_ddl(db):
    build(db, users=[{"login": "ann", "org_id": None, "org_name": "lost"}])
    with pytest.raises(UnmovableValuesError, match="expand would lose those values"):
        Runner(db).expand(MOVE)
    assert columns_of(db, "orgs") == ["id", "title"]


def test_a_target_key_that_is_not_unique_is_refused(db):
    metadata = sa.MetaData()
    sa.Table("users", metadata, sa.Column("id", sa.Integer, primary_key=True), sa.Column("password", sa.String(60)))
    sa.Table("logins", metadata, sa.Column("id", sa.Integer, primary_key=True),
             sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id")))
    metadata.create_all(db)
    with pytest.raises(ValidationError, match="logins.user_id is not unique"):
        Runner(db).expand(Change(ops.move_column("users", "password", to="logins", via="user_id"), id="bad"))


def test_a_table_in_two_cross_table_ops_is_refused():
    change = Change(ops.move_column("users", "org_name", to="orgs", via="org_id"),
                    ops.split_table("users", "profiles", ["login"]), id="two")
    _, users = release_n()
    with pytest.raises(TableAlreadyLinkedError, match="'users' is in two cross-table operations"):
        change.validate(Schema.from_metadata(users.metadata))


@pytest.mark.parametrize("dialect_name", ["mysql"])
def test_mysql_refuses_a_foreign_key_whose_update_cascade_would_skip_the_triggers(engine):
    build(engine, users=SEED, onupdate="CASCADE")
    with pytest.raises(PreflightError, match="ON UPDATE CASCADE.*cascades skip triggers"):
        Runner(engine).expand(MOVE)
    assert columns_of(engine, "orgs") == ["id", "title"]


@pytest.mark.parametrize("dialect_name", ["mysql"])
def test_mysql_warns_that_one_rows_write_does_not_reach_its_siblings(engine):
    build(engine, users=SEED)
    runner = Runner(engine)
    runner.expand(MOVE)
    assert any("error 1442" in w and "update them together" in w for w in runner.warnings)


# --- plan: the whole move, reviewable without a database -------------------------------------------

@pytest.mark.parametrize("dialect", ["postgresql", "mysql", "sqlite"])
def test_plan_sql_shows_the_triggers_on_both_tables_and_the_backfill(dialect):
    from crossfade.plan import plan

    orgs, _ = release_n()
    sql = plan([MOVE], dialect, orgs.metadata)

    expand = sql.split("/ expand")[1].split("/ migrate")[0]
    migrate = sql.split("/ migrate")[1].split("/ contract")[0]
    contract = sql.split("/ contract")[1].split("/ rollback")[0]
    assert re.search(r"ALTER TABLE orgs ADD COLUMN (IF NOT EXISTS )?name VARCHAR\(40\)[,;]", expand)
    assert "-- install triggers on orgs" in expand and "-- install triggers on users" in expand
    assert "crossfade_users_move_insert" in expand and "crossfade_orgs_move_update" in expand
    assert "-- backfill orgs (moved from users)" in migrate
    assert "UPDATE orgs" in migrate and "name=crossfade_first.org_name" in migrate
    assert re.search(r"ALTER TABLE users DROP COLUMN (IF EXISTS )?org_name", contract) or "rebuild table users" in contract
    assert "DROP TRIGGER IF EXISTS crossfade_orgs_move_update" in contract


@pytest.mark.parametrize("dialect_name", ["mysql"])
def test_mariadb_a_statement_its_trigger_deadlocked_leaves_the_next_one_synced(engine):
    """MariaDB rolls a deadlock victim back without running the trigger's error handler, so the
    guard it had set stays in the session; it names the statement that set it, and the session's
    next statement syncs as usual."""
    import threading
    import time

    _, users, orgs, _ = expanded(engine)
    with engine.begin() as conn:  # orgs the other transaction will hold: it must be the heavier one
        conn.execute(orgs.insert(), [{"id": i, "title": f"t{i}"} for i in range(10, 300)])
    victim, other = engine.connect(), engine.connect()
    other.execute(orgs.update().where(sa.or_(orgs.c.id == 1, orgs.c.id >= 10)).values(title="held"))
    victim.execute(users.update().where(users.c.org_id == 2).values(org_name="blue 2"))  # locks orgs 2

    def close_the_cycle() -> None:
        time.sleep(0.3)  # the victim waits for orgs 1 by now
        try:
            other.execute(orgs.update().where(orgs.c.id == 2).values(title="x"))
            other.commit()
        except sa.exc.DBAPIError:
            other.rollback()

    thread = threading.Thread(target=close_the_cycle)
    thread.start()
    with pytest.raises(sa.exc.DBAPIError, match="Deadlock"):
        victim.execute(users.update().where(users.c.org_id == 1).values(org_name="acme 2"))  # wants orgs 1
    thread.join(10)
    victim.rollback()
    victim.execute(users.update().where(users.c.org_id == 1).values(org_name="acme 3"))  # the same session
    victim.commit()
    victim.close()
    other.close()
    assert org_names(engine, orgs)[1] == "acme 3"


def test_contract_drops_the_source_tables_triggers_first(db):
    """Between the two tables' trigger drops release N+1 keeps writing. Were the target's to go
    first, a user it inserts would pull the old value from release N's copies and push it into
    the org release N+1 just cleared."""
    _, _, orgs, users_n1 = expanded(db)
    drops: list[str] = []

    def release_n1_writes_between_the_drops(phase: str, step: str) -> None:
        if phase == "contracting" and step.startswith("drop triggers on"):
            drops.append(step)
            if len(drops) == 1:
                run(db, orgs.update().where(orgs.c.id == 1).values(name=None))
                run(db, users_n1.insert().values(login="eve", org_id=1))

    Runner(db, on_step=release_n1_writes_between_the_drops).contract(MOVE)
    assert drops == ["drop triggers on users", "drop triggers on orgs"]
    assert org_names(db, orgs)[1] is None


# --- statements that read the other table ----------------------------------------------------------

def test_release_n_inserting_rows_selected_from_the_target_takes_their_values(db):
    _, users, _, _ = expanded(db)
    orgs_n = release_n()[0]
    run(db, users.insert().from_select(["login", "org_id"],
                                       sa.select(sa.literal("new") + sa.cast(orgs_n.c.id, sa.String), orgs_n.c.id)))
    assert {k: v for k, v in names(db, users).items() if k.startswith("new")} == {
        "new1": "acme", "new2": "blue", "new3": None}


@pytest.mark.parametrize("dialect_name", ["mysql"])
def test_mariadb_refuses_a_statement_reading_the_target_whose_trigger_must_write_it(engine):
    """Error 1442, documented and warned about at expand: the statement fails whole, nothing half-synced."""
    _, users = build(engine, users=SEED)
    runner = Runner(engine)
    runner.expand(MOVE)
    runner.migrate(MOVE)
    assert any("error 1442" in w and "INSERT INTO users ... SELECT ... FROM orgs" in w for w in runner.warnings)
    orgs_n = release_n()[0]
    with pytest.raises(sa.exc.OperationalError, match="1442"):
        run(engine, users.update().where(users.c.org_id.in_(sa.select(orgs_n.c.id).where(orgs_n.c.title == "t1")))
            .values(org_name="renamed"))
    assert names(engine, users) == {"ann": "acme", "bob": "acme", "cy": "blue", "di": None}
    run(engine, users.update().where(users.c.org_id == 1).values(org_name="renamed"))  # as two statements: fine
    assert names(engine, users)["ann"] == "renamed"
