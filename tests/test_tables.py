"""rename_table and split_table: both releases write through their own table names, and every
write is read back through the other release's names (DESIGN section 2, cross-table groups).

Release N writes `users` with every column; release N+1 writes `accounts` (rename) or `users`
plus `profiles` (split). Each test runs on SQLite (recursive_triggers off and on), PostgreSQL
and MariaDB.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from trigger_variants import db, dialect_name, set_recursive_triggers, variant  # noqa: F401 - fixtures

from crossfade import Change, ops
from crossfade.errors import TableExistsError, ValidationError
from crossfade.runner import Runner


def release_n() -> tuple[sa.MetaData, sa.Table]:
    metadata = sa.MetaData()
    users = sa.Table("users", metadata,
                     sa.Column("id", sa.Integer, primary_key=True),
                     sa.Column("name", sa.String(40), nullable=False),
                     sa.Column("bio", sa.String(200)),
                     sa.Column("theme", sa.String(20), nullable=False),
                     sa.Column("score", sa.Integer, server_default="7"))
    return metadata, users


def accounts_table() -> sa.Table:
    """Release N+1's name for the renamed table, as its own code declares it."""
    _, users = release_n()
    return users.to_metadata(sa.MetaData(), name="accounts")


def split_tables() -> tuple[sa.Table, sa.Table]:
    """Release N+1's users (without bio and theme) and its profiles table."""
    metadata = sa.MetaData()
    users = sa.Table("users", metadata,
                     sa.Column("id", sa.Integer, primary_key=True),
                     sa.Column("name", sa.String(40), nullable=False),
                     sa.Column("score", sa.Integer, server_default="7"))
    profiles = sa.Table("profiles", metadata,
                        sa.Column("id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
                        sa.Column("bio", sa.String(200)),
                        sa.Column("theme", sa.String(20), nullable=False))
    return users, profiles


def build(db: sa.Engine, rows: list[dict] = ()) -> sa.Table:
    metadata, users = release_n()
    metadata.create_all(db)
    with db.begin() as conn:
        for row in rows:
            conn.execute(users.insert().values(row))
    return users


def rows(db: sa.Engine, table: sa.Table, *columns: str) -> list[tuple]:
    columns = columns or tuple(c.name for c in table.columns)
    with db.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.select(*[table.c[c] for c in columns]).order_by(table.c.id))]


def insert(db: sa.Engine, table: sa.Table, **values) -> int:
    with db.begin() as conn:
        return conn.execute(table.insert().values(**values)).inserted_primary_key[0]


def update(db: sa.Engine, table: sa.Table, row_id: int, **values) -> None:
    with db.begin() as conn:
        conn.execute(table.update().where(table.c.id == row_id).values(**values))


def delete(db: sa.Engine, table: sa.Table, row_id: int) -> None:
    with db.begin() as conn:
        conn.execute(table.delete().where(table.c.id == row_id))


def tables(db: sa.Engine) -> set[str]:
    inspector = sa.inspect(db)
    return set(inspector.get_table_names()) | set(inspector.get_view_names())


# Keys left to the database (1 and 2), so PostgreSQL's sequence counts on from them.
SEED = [{"name": "ann", "bio": "hi", "theme": "dark", "score": 3},
        {"name": "bob", "bio": None, "theme": "light", "score": None}]


# --- rename_table --------------------------------------------------------------------------

RENAME = Change(ops.rename_table("users", "accounts"), id="rename-users")


def test_rename_table_both_names_read_and_write_the_same_rows(db):
    users = build(db, SEED)
    runner = Runner(db)
    runner.expand(RENAME)
    runner.migrate(RENAME)
    accounts = accounts_table()
    assert rows(db, accounts) == rows(db, users) == [(1, "ann", "hi", "dark", 3), (2, "bob", None, "light", None)]

    new_id = insert(db, accounts, name="cat", theme="red")  # release N+1, by its new name
    assert new_id == 3  # the generated key is reported through the new name too
    old_id = insert(db, users, name="dan", theme="blue", bio="x")  # release N, by the old name
    assert old_id == 4
    update(db, users, 3, bio="from N")
    update(db, accounts, 4, theme="from N+1")
    update(db, accounts, 1, name="ANN")
    delete(db, users, 2)
    delete(db, accounts, 3)
    expected = [(1, "ANN", "hi", "dark", 3), (4, "dan", "x", "from N+1", 7)]
    assert rows(db, users) == expected
    assert rows(db, accounts) == expected
    assert insert(db, accounts, name="eve", theme="t") == 5  # keys keep counting on both sides
    assert rows(db, users, "id", "name")[-1] == (5, "eve")


def test_rename_table_contract_leaves_only_the_new_name_with_every_row(db):
    build(db, SEED)
    runner = Runner(db)
    runner.expand(RENAME)
    runner.migrate(RENAME)
    insert(db, accounts_table(), name="cat", theme="red")
    runner.contract(RENAME)
    names = tables(db)
    assert "accounts" in names and "users" not in names
    assert not runner.problems(RENAME)
    assert rows(db, accounts_table(), "id", "name") == [(1, "ann"), (2, "bob"), (3, "cat")]
    assert insert(db, accounts_table(), name="dan", theme="x") == 4
    runner.contract(RENAME)  # a rerun does nothing


def test_rename_table_rollback_leaves_release_n_as_it_was(db):
    users = build(db, SEED)
    runner = Runner(db)
    runner.expand(RENAME)
    insert(db, accounts_table(), name="cat", theme="red")
    runner.rollback(RENAME)
    assert "accounts" not in tables(db)
    assert rows(db, users, "id", "name") == [(1, "ann"), (2, "bob"), (3, "cat")]
    assert not runner.problems(RENAME)


def test_rename_table_to_a_name_in_use_is_refused_before_any_ddl(db):
    build(db)
    with db.begin() as conn:
        conn.execute(sa.text("CREATE VIEW accounts AS SELECT id FROM users"))
    with pytest.raises(TableExistsError, match="'accounts' already exists"):
        Runner(db).expand(RENAME)
    with db.connect() as conn:
        assert sa.inspect(conn).get_table_names() == ["users"]


def test_rename_table_must_be_alone_on_its_table():
    with pytest.raises(ValidationError, match="must be the only op on table 'users'"):
        Change(ops.rename_table("users", "accounts"), ops.drop_column("users", "bio")).validate(None)


# --- split_table ---------------------------------------------------------------------------

SPLIT = Change(ops.split_table("users", "profiles", ["bio", "theme"]), id="split-profiles")


def expanded_split(db: sa.Engine, seed=SEED) -> tuple[Runner, sa.Table, sa.Table, sa.Table]:
    users_n = build(db, seed)
    runner = Runner(db)
    runner.expand(SPLIT)
    users_n1, profiles = split_tables()
    return runner, users_n, users_n1, profiles


def test_split_table_backfill_copies_every_row_with_a_value(db):
    runner, _users_n, _, profiles = expanded_split(db)
    runner.migrate(SPLIT)
    assert rows(db, profiles) == [(1, "hi", "dark"), (2, None, "light")]


def test_split_table_release_n_writes_reach_the_new_table(db):
    _runner, users_n, _, profiles = expanded_split(db, seed=[])
    new = insert(db, users_n, name="ann", bio="hi", theme="dark")
    assert rows(db, profiles) == [(new, "hi", "dark")]
    update(db, users_n, new, bio="changed")
    assert rows(db, profiles) == [(new, "changed", "dark")]
    update(db, users_n, new, name="unrelated")
    assert rows(db, profiles) == [(new, "changed", "dark")]
    delete(db, users_n, new)
    assert rows(db, profiles) == []


def test_split_table_release_n1_writes_reach_release_n_columns(db):
    _runner, users_n, users_n1, profiles = expanded_split(db, seed=[])
    with db.begin() as conn:  # release N+1 inserts both rows, as its ORM would
        new = conn.execute(users_n1.insert().values(name="cat")).inserted_primary_key[0]
        conn.execute(profiles.insert().values(id=new, bio="b", theme="t"))
    assert rows(db, users_n, "id", "bio", "theme") == [(new, "b", "t")]
    update(db, profiles, new, theme="t2")
    assert rows(db, users_n, "id", "bio", "theme") == [(new, "b", "t2")]
    delete(db, profiles, new)
    assert rows(db, users_n, "id", "bio", "theme") == [(new, None, None)]


def test_split_table_update_on_a_row_not_yet_backfilled_creates_its_new_row(db):
    runner, users_n, _, profiles = expanded_split(db)
    update(db, users_n, 2, bio="late")
    assert rows(db, profiles) == [(2, "late", "light")]
    runner.migrate(SPLIT)
    assert rows(db, profiles) == [(1, "hi", "dark"), (2, "late", "light")]


def test_split_table_contract_drops_the_moved_columns(db):
    runner, _users_n, _users_n1, profiles = expanded_split(db)
    runner.migrate(SPLIT)
    runner.contract(SPLIT)
    with db.connect() as conn:
        assert [c["name"] for c in sa.inspect(conn).get_columns("users")] == ["id", "name", "score"]
    assert rows(db, profiles) == [(1, "hi", "dark"), (2, None, "light")]
    assert not runner.problems(SPLIT)
    with db.begin() as conn:  # no trigger is left: release N+1's writes are plain writes
        conn.execute(profiles.update().where(profiles.c.id == 1).values(bio="after"))
    assert rows(db, profiles, "id", "bio")[0] == (1, "after")


def test_split_table_rollback_drops_the_new_table(db):
    runner, users_n, _, _profiles = expanded_split(db)
    runner.migrate(SPLIT)
    update(db, users_n, 1, bio="kept")
    runner.rollback(SPLIT)
    assert "profiles" not in tables(db)
    assert rows(db, users_n, "id", "bio", "theme") == [(1, "kept", "dark"), (2, None, "light")]
    assert not runner.problems(SPLIT)


@pytest.mark.parametrize("op, message", [
    (ops.split_table("users", "profiles", ["nope"]), "users.nope does not exist"),
    (ops.split_table("users", "profiles", ["id"]), "primary key"),
    (ops.split_table("users", "users", ["bio"]), "'users' already exists"),
    (ops.split_table("users", "profiles", ["bio", "bio"]), "named twice"),
    (ops.split_table("users", "profiles", ["bio"], ondelete="EXPLODE"), "ondelete must be"),
])
def test_split_table_bad_input_is_refused_before_any_ddl(db, op, message):
    build(db)
    with pytest.raises(ValidationError, match=message):
        Runner(db).expand(Change(op, id="bad"))
    with db.connect() as conn:
        assert sa.inspect(conn).get_table_names() == ["users"]


@pytest.mark.parametrize("dialect", ["postgresql", "mysql", "sqlite"])
def test_plan_sql_shows_split_tables_new_table_triggers_and_backfill(dialect):
    from crossfade.plan import plan

    metadata, _ = release_n()
    sql = plan([SPLIT], dialect, metadata)

    expand = sql.split("/ expand")[1].split("/ migrate")[0]
    migrate = sql.split("/ migrate")[1].split("/ contract")[0]
    assert "CREATE TABLE profiles" in expand
    assert "-- install triggers on profiles" in expand and "-- install triggers on users" in expand
    assert "-- backfill profiles" in migrate and "INSERT INTO profiles (id, bio, theme) SELECT" in migrate


# --- races the simulator found ----------------------------------------------------------------------

@pytest.mark.parametrize("dialect_name", ["postgresql", "mysql"])
def test_split_backfill_skips_a_row_release_n_deletes_meanwhile(engine):
    """The backfill's copy must not insert a profiles row for a users row whose DELETE commits
    while the copy runs: the foreign key would refuse it and stop migrate."""
    import threading

    _, users_n, _, profiles = expanded_split(engine)
    deleter = engine.connect()
    deleter.begin()
    deleter.execute(users_n.delete().where(users_n.c.id == 1))  # release N, not committed yet
    failures: list[BaseException] = []

    def migrate() -> None:
        try:
            Runner(engine).migrate(SPLIT)
        except BaseException as exc:  # noqa: BLE001 - asserted below
            failures.append(exc)

    thread = threading.Thread(target=migrate)
    thread.start()
    thread.join(0.5)  # the copy waits for the deleted row's lock meanwhile
    deleter.commit()
    deleter.close()
    thread.join(30)
    assert failures == []
    assert rows(engine, profiles) == [(2, None, "light")]


@pytest.mark.parametrize("variant", ["sqlite"])
def test_sqlite_mirror_never_hands_out_a_key_release_n_took_during_expand(db):
    """A row release N inserts between the mirror's creation and its triggers' install."""
    users = build(db, SEED)

    def release_n_inserts_meanwhile(phase: str, step: str) -> None:
        if step.startswith("make accounts a writable stand-in"):
            insert(db, users, name="cat", theme="red")  # takes key 3 before any trigger copies it

    runner = Runner(db, on_step=release_n_inserts_meanwhile)
    runner.expand(RENAME)
    assert insert(db, accounts_table(), name="dan", theme="blue") == 4  # not 3 again
    runner.migrate(RENAME)
    runner.contract(RENAME)
    assert rows(db, accounts_table(), "id", "name") == [(1, "ann"), (2, "bob"), (3, "cat"), (4, "dan")]


@pytest.mark.parametrize("variant", ["mysql"])
def test_mariadb_installs_each_trigger_as_a_step_of_its_own(db):
    """Each CREATE TRIGGER commits on its own and needs the table free for an instant; a step
    of several would restart from its first statement whenever a later one finds it busy."""
    build(db, SEED)
    steps: list[str] = []
    Runner(db, on_step=lambda phase, step: steps.append(step)).expand(SPLIT)
    installs = [s for s in steps if s.startswith("install triggers")]
    assert len(installs) == 6 and all(": trigger crossfade_" in s for s in installs)


@pytest.mark.parametrize("variant", ["mysql"])
def test_mariadb_split_warns_and_refuses_a_write_that_reads_the_other_table(db):
    """Error 1442: release N+1 filling profiles from users in one statement fails whole; the
    warning at expand says so, and two statements do it."""
    runner, _users_n, users_n1, profiles = expanded_split(db, seed=[])
    assert any("error 1442" in w and "INSERT INTO profiles ... SELECT ... FROM users" in w for w in runner.warnings)
    new = insert(db, users_n1, name="cat")
    with pytest.raises(sa.exc.OperationalError, match="1442"), db.begin() as conn:
        conn.execute(profiles.insert().from_select(["id", "bio", "theme"],
                                                   sa.select(users_n1.c.id, sa.literal("b"), sa.literal("t"))))
    assert rows(db, profiles) == []
    insert(db, profiles, id=new, bio="b", theme="t")
    assert rows(db, profiles) == [(new, "b", "t")]
