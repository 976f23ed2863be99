"""The sync law, written through the installed triggers and read back from the database.

Release N and release N+1 are played by plain Core statements that name only their own columns,
exactly what each release's code sends; every assertion reads the row back. Each test runs on
SQLite (with `recursive_triggers` off and on: the WHEN guards must make both identical),
PostgreSQL (15; 16, 17 and 18 under the pg_versions mark) and MariaDB. The reference change is
Glance's `images.is_public` -> `visibility` (DESIGN section 3); the decision table is DESIGN section 2.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from trigger_variants import WITH_PG_VERSIONS, db, dialect_name, set_recursive_triggers  # noqa: F401 - fixtures

from crossfade import Change, ops
from crossfade.runner import Runner


@pytest.fixture(params=WITH_PG_VERSIONS)
def variant(request) -> str:
    """trigger_variants' four databases, and the decision table on PostgreSQL 16, 17 and 18 too."""
    return request.param


# --- the reference change: images.is_public (boolean) -> images.visibility (string) ----------

def visibility_change() -> Change:
    return Change(
        ops.replace_column(
            "images", "is_public",
            sa.Column("visibility", sa.String(16), nullable=False, server_default="shared"),
            up=lambda is_public: sa.case((is_public, "public"), else_="shared"),
            down=lambda visibility: visibility == "public",
        ),
        id="images-visibility",
    )


release_n = sa.MetaData()
images_n = sa.Table(  # what release N knows
    "images", release_n,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(50)),
    sa.Column("is_public", sa.Boolean, nullable=False),
)
images_n1 = sa.Table(  # what release N+1 knows
    "images", sa.MetaData(),
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(50)),
    sa.Column("visibility", sa.String(16)),
)
images_both = sa.Table(  # what the tests read: every column during the transition
    "images", sa.MetaData(),
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(50)),
    sa.Column("is_public", sa.Boolean),
    sa.Column("visibility", sa.String(16)),
)


def expanded_images(db: sa.Engine, seed: list[dict] | None = None) -> Runner:
    """Release N's images table (with `seed` rows written before expand), then expand."""
    with db.begin() as conn:
        release_n.create_all(conn)
        if seed:
            conn.execute(images_n.insert(), seed)
    runner = Runner(db)
    runner.expand(visibility_change())
    return runner


def insert(db: sa.Engine, table: sa.Table, **values) -> int:
    with db.begin() as conn:
        return conn.execute(table.insert().values(**values)).inserted_primary_key[0]


def update(db: sa.Engine, table: sa.Table, row_id: int, **values) -> None:
    with db.begin() as conn:
        conn.execute(table.update().where(table.c.id == row_id).values(**values))


def read(db: sa.Engine, table: sa.Table, row_id: int, *columns: str) -> tuple:
    with db.connect() as conn:
        return tuple(conn.execute(sa.select(*[table.c[c] for c in columns])
                                  .where(table.c.id == row_id)).one())


def visibility_row(db: sa.Engine, row_id: int) -> tuple:
    """(is_public, visibility) as stored."""
    return read(db, images_both, row_id, "is_public", "visibility")


def all_rows(db: sa.Engine, table: sa.Table) -> list[tuple]:
    with db.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.select(table).order_by(table.c.id))]


# --- INSERT ----------------------------------------------------------------------------------

def test_insert_by_release_n_fills_new_column_with_up(db):
    expanded_images(db)
    public = insert(db, images_n, name="a", is_public=True)
    private = insert(db, images_n, name="b", is_public=False)
    assert visibility_row(db, public) == (True, "public")
    assert visibility_row(db, private) == (False, "shared")


def test_insert_by_release_n1_fills_old_column_with_down(db):
    expanded_images(db)
    public = insert(db, images_n1, name="a", visibility="public")
    shared = insert(db, images_n1, name="b", visibility="shared")
    community = insert(db, images_n1, name="c", visibility="community")
    assert visibility_row(db, public) == (True, "public")
    assert visibility_row(db, shared) == (False, "shared")
    assert visibility_row(db, community) == (False, "community")  # the finer value survives


def test_insert_of_both_consistent_keeps_both(db):
    expanded_images(db)
    row_id = insert(db, images_both, name="a", is_public=True, visibility="public")
    other = insert(db, images_both, name="b", is_public=False, visibility="community")
    assert visibility_row(db, row_id) == (True, "public")
    assert visibility_row(db, other) == (False, "community")


def test_insert_of_both_conflicting_new_column_wins(db):
    expanded_images(db)
    row_id = insert(db, images_both, name="a", is_public=True, visibility="shared")
    other = insert(db, images_both, name="b", is_public=False, visibility="public")
    assert visibility_row(db, row_id) == (False, "shared")
    assert visibility_row(db, other) == (True, "public")


def test_insert_with_new_column_explicitly_null_fills_it_from_old(db):
    expanded_images(db)
    public = insert(db, images_both, name="a", is_public=True, visibility=None)
    private = insert(db, images_both, name="b", is_public=False, visibility=None)
    assert visibility_row(db, public) == (True, "public")
    assert visibility_row(db, private) == (False, "shared")


def test_null_in_old_not_null_column_takes_the_value_up_and_down_give_it(db):
    """An insert that leaves both sides NULL is what release N+1 sends when it leaves visibility
    to its (final) server default: the row gets B := up(NULL) and A := down(B), on every dialect
    alike, instead of failing on is_public's NOT NULL. Release N cannot be told apart here."""
    expanded_images(db)
    row_id = insert(db, images_n, name="a", is_public=None)
    assert visibility_row(db, row_id) == (False, "shared")


# --- UPDATE ----------------------------------------------------------------------------------

def test_update_of_old_column_only_makes_new_follow_via_up(db):
    expanded_images(db)
    row_id = insert(db, images_n, name="a", is_public=False)
    update(db, images_n, row_id, is_public=True)
    assert visibility_row(db, row_id) == (True, "public")
    update(db, images_n, row_id, is_public=False)
    assert visibility_row(db, row_id) == (False, "shared")


def test_update_of_old_column_overrides_a_finer_value_it_contradicts(db):
    expanded_images(db)
    row_id = insert(db, images_n1, name="a", visibility="community")
    update(db, images_n, row_id, is_public=True)
    assert visibility_row(db, row_id) == (True, "public")


def test_update_of_new_column_only_makes_old_follow_via_down(db):
    expanded_images(db)
    row_id = insert(db, images_n, name="a", is_public=False)
    update(db, images_n1, row_id, visibility="public")
    assert visibility_row(db, row_id) == (True, "public")
    update(db, images_n1, row_id, visibility="community")
    assert visibility_row(db, row_id) == (False, "community")
    update(db, images_n1, row_id, visibility="shared")
    assert visibility_row(db, row_id) == (False, "shared")


def test_update_of_both_columns_new_column_wins_a_conflict(db):
    expanded_images(db)
    row_id = insert(db, images_n, name="a", is_public=False)
    update(db, images_both, row_id, is_public=True, visibility="community")
    assert visibility_row(db, row_id) == (False, "community")
    update(db, images_both, row_id, is_public=True, visibility="public")  # consistent: both kept
    assert visibility_row(db, row_id) == (True, "public")
    update(db, images_both, row_id, is_public=True, visibility="shared")  # A unchanged, B changed
    assert visibility_row(db, row_id) == (False, "shared")


def test_update_of_unrelated_column_leaves_a_finer_new_value_alone(db):
    expanded_images(db)
    row_id = insert(db, images_n1, name="a", visibility="community")
    update(db, images_n, row_id, name="renamed")
    assert read(db, images_both, row_id, "name", "is_public", "visibility") == ("renamed", False, "community")
    # Release N's ORM may rewrite every column it knows, is_public included, to its same value.
    update(db, images_n, row_id, name="again", is_public=False)
    assert read(db, images_both, row_id, "name", "is_public", "visibility") == ("again", False, "community")


def test_update_of_unrelated_column_on_a_row_not_yet_backfilled_changes_nothing(db):
    runner = expanded_images(db, seed=[{"name": "old", "is_public": True}])
    update(db, images_n, 1, name="renamed")
    assert read(db, images_both, 1, "name", "is_public", "visibility") == ("renamed", True, None)
    assert runner.problems(visibility_change()) == []


@pytest.mark.parametrize("dialect_name", ["postgresql"])
def test_postgresql_update_of_unrelated_column_never_calls_the_sync_function(engine):
    """UPDATE OF keeps the function (and even the WHEN clause) out of unrelated UPDATEs."""
    db = engine
    expanded_images(db)
    row_id = insert(db, images_n, name="a", is_public=True)
    with db.begin() as conn:
        conn.exec_driver_sql("SET LOCAL track_functions = 'pl'")
        calls = sa.text("SELECT pg_stat_get_xact_function_calls('crossfade_images_sync'::regproc)")
        conn.execute(images_n.update().values(name="renamed"))
        assert conn.execute(calls).scalar() in (None, 0)
        conn.execute(images_n.update().values(is_public=False))
        assert conn.execute(calls).scalar() == 1
    assert visibility_row(db, row_id) == (False, "shared")


# --- backfill ----------------------------------------------------------------------------------

def test_backfill_fills_rows_written_before_expand_and_leaves_old_values(db):
    seed = [{"name": f"i{i}", "is_public": i % 3 == 0} for i in range(10)]
    with db.begin() as conn:
        release_n.create_all(conn)
        conn.execute(images_n.insert(), seed)
    change = visibility_change()
    runner = Runner(db, batch_size=3)
    runner.expand(change)
    assert {v for _, v in (visibility_row(db, i) for i in range(1, 11))} == {None}
    # While expanded, both releases write to some of the old rows.
    update(db, images_n1, 2, visibility="community")
    update(db, images_n, 3, is_public=True)
    runner.migrate(change)
    rows = {r[0]: r[1:] for r in all_rows(db, images_both)}
    for i in range(10):
        name, is_public, visibility = rows[i + 1]
        assert name == f"i{i}"
        if i + 1 == 2:
            assert (is_public, visibility) == (False, "community")  # N+1's finer value kept
        elif i + 1 == 3:
            assert (is_public, visibility) == (True, "public")
        else:
            assert is_public == (i % 3 == 0)  # untouched by the backfill's own write
            assert visibility == ("public" if is_public else "shared")
    assert runner.status(change).backfill == {"images": 1.0}


# --- other ops ---------------------------------------------------------------------------------

users_n = sa.Table(
    "users", sa.MetaData(),
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("login", sa.String(40), nullable=False),
    sa.Column("first_name", sa.String(40)),
    sa.Column("last_name", sa.String(40)),
)
users_both = sa.Table(
    "users", sa.MetaData(),
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("login", sa.String(40)),
    sa.Column("username", sa.String(40)),
    sa.Column("first_name", sa.String(40)),
    sa.Column("last_name", sa.String(40)),
    sa.Column("full_name", sa.String(81)),
)


def expanded_users(db: sa.Engine, *change_ops, seed: list[dict] | None = None) -> Runner:
    with db.begin() as conn:
        users_n.create(conn)
        if seed:
            conn.execute(users_n.insert(), seed)
    runner = Runner(db)
    runner.expand(Change(*change_ops, id="users"))
    return runner


def full_name_op():
    return ops.add_column("users", sa.Column("full_name", sa.String(81)),
                          backfill=lambda row: row.first_name + " " + row.last_name)


def test_rename_column_keeps_both_names_in_step(db):
    expanded_users(db, ops.rename_column("users", "login", "username"))
    by_n = insert(db, users_both, login="ann")
    by_n1 = insert(db, users_both, username="bob")  # login is NOT NULL, release N+1 never writes it
    assert read(db, users_both, by_n, "login", "username") == ("ann", "ann")
    assert read(db, users_both, by_n1, "login", "username") == ("bob", "bob")
    update(db, users_both, by_n, login="anne")
    update(db, users_both, by_n1, username="bobby")
    assert read(db, users_both, by_n, "login", "username") == ("anne", "anne")
    assert read(db, users_both, by_n1, "login", "username") == ("bobby", "bobby")
    update(db, users_both, by_n, login="x", username="y")  # both written: the new name wins
    assert read(db, users_both, by_n, "login", "username") == ("y", "y")


def test_rename_column_release_n_still_cannot_insert_null_login(db):
    """A NULL login would reach the NOT NULL username and make contract refuse forever. On SQLite
    expand relaxed login's NOT NULL; the trigger re-imposes it."""
    expanded_users(db, ops.rename_column("users", "login", "username"))
    with pytest.raises(sa.exc.IntegrityError):
        insert(db, users_both, login=None, first_name="Ann")
    assert all_rows(db, users_n) == []


def test_add_column_with_backfill_is_computed_one_way(db):
    runner = expanded_users(db, full_name_op(), seed=[{"login": "old", "first_name": "Ada", "last_name": "King"}])
    by_n = insert(db, users_both, login="ann", first_name="Ann", last_name="Lee")
    assert read(db, users_both, by_n, "full_name") == ("Ann Lee",)
    update(db, users_both, by_n, last_name="Smith")
    assert read(db, users_both, by_n, "full_name") == ("Ann Smith",)
    # Release N+1 may write the new column itself; one-way: nothing flows back to the sources.
    by_n1 = insert(db, users_both, login="bob", first_name="Bob", last_name="Ray", full_name="Robert Ray")
    assert read(db, users_both, by_n1, "first_name", "last_name", "full_name") == ("Bob", "Ray", "Robert Ray")
    update(db, users_both, by_n1, full_name="Dr. Robert Ray")
    assert read(db, users_both, by_n1, "first_name", "last_name", "full_name") == ("Bob", "Ray", "Dr. Robert Ray")
    # The pre-existing row gets its value from the backfill.
    assert read(db, users_both, 1, "full_name") == (None,)
    runner.migrate(Change(full_name_op(), id="users"))
    assert read(db, users_both, 1, "first_name", "last_name", "full_name") == ("Ada", "King", "Ada King")


items_n = sa.Table(
    "items", sa.MetaData(),
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(40)),
    sa.Column("size", sa.Integer, nullable=False),
    sa.Column("category", sa.String(20)),
)


def expanded_items(db: sa.Engine, *change_ops) -> Runner:
    with db.begin() as conn:
        items_n.create(conn)
    runner = Runner(db)
    runner.expand(Change(*change_ops, id="items"))
    return runner


def test_drop_column_fill_lets_release_n1_insert_without_a_not_null_column(db):
    expanded_items(db, ops.drop_column("items", "size", fill=lambda row: sa.func.length(row.name)))
    by_n1 = insert(db, items_n, name="abcd")
    by_n = insert(db, items_n, name="xy", size=99)
    assert read(db, items_n, by_n1, "name", "size") == ("abcd", 4)
    assert read(db, items_n, by_n, "name", "size") == ("xy", 99)


def test_drop_column_with_a_constant_fill(db):
    expanded_items(db, ops.drop_column("items", "size", fill=0))
    by_n1 = insert(db, items_n, name="abcd")
    assert read(db, items_n, by_n1, "size") == (0,)


def test_add_column_with_a_server_default_fills_release_n_inserts(db):
    items_next = sa.Table("items", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True),
                          sa.Column("name", sa.String(40)), sa.Column("size", sa.Integer),
                          sa.Column("status", sa.String(10)))
    expanded_items(db, ops.add_column("items", sa.Column("status", sa.String(10), nullable=False,
                                                         server_default="new")))
    by_n = insert(db, items_n, name="a", size=1)
    by_n1 = insert(db, items_next, name="b", size=2, status="sold")
    assert read(db, items_next, by_n, "status") == ("new",)
    assert read(db, items_next, by_n1, "status") == ("sold",)
    update(db, items_n, by_n1, size=3)
    assert read(db, items_next, by_n1, "size", "status") == (3, "sold")


def test_set_not_null_fill_replaces_nulls_release_n_writes(db):
    with db.begin() as conn:
        items_n.create(conn)
        conn.execute(items_n.insert().values(name="before", size=1, category=None))
    change = Change(ops.set_not_null("items", "category", fill="misc"), id="items")
    runner = Runner(db)
    runner.expand(change)
    omitted = insert(db, items_n, name="a", size=1)
    explicit_null = insert(db, items_n, name="b", size=1, category=None)
    given = insert(db, items_n, name="c", size=1, category="books")
    assert read(db, items_n, omitted, "category") == ("misc",)
    assert read(db, items_n, explicit_null, "category") == ("misc",)
    assert read(db, items_n, given, "category") == ("books",)
    update(db, items_n, given, category=None)
    assert read(db, items_n, given, "category") == ("misc",)
    assert read(db, items_n, 1, "category") == (None,)  # written before expand: the backfill's job
    runner.migrate(change)
    assert read(db, items_n, 1, "name", "category") == ("before", "misc")


# --- several ops on one table: one trigger per table and event ----------------------------------

def merged_change() -> Change:
    return Change(
        ops.rename_column("users", "login", "username"),
        full_name_op(),
        ops.set_not_null("users", "first_name", fill="?"),
        id="users-merged",
    )


def test_several_ops_on_one_table_merge_into_one_trigger_per_event(db):
    with db.begin() as conn:
        users_n.create(conn)
        conn.execute(users_n.insert().values(login="old", first_name=None, last_name="King"))
    runner = Runner(db)
    change = merged_change()
    runner.expand(change)
    with db.connect() as conn:
        catalog = runner.dialect.catalog_objects(conn, {"users"})
    expected = {"crossfade_users_insert", "crossfade_users_update"}
    if db.dialect.name == "postgresql":
        expected.add("crossfade_users_sync")  # the one function both triggers call
    assert set(catalog) == expected
    assert {table for _, table, _ in catalog.values()} == {"users"}

    by_n = insert(db, users_both, login="ann", first_name=None, last_name="Lee")
    assert read(db, users_both, by_n, "login", "username", "first_name", "full_name") == ("ann", "ann", "?", "? Lee")
    by_n1 = insert(db, users_both, username="bob", first_name="Bob", last_name="Ray")
    assert read(db, users_both, by_n1, "login", "username", "full_name") == ("bob", "bob", "Bob Ray")
    update(db, users_both, by_n1, login="rob", last_name="Roe")
    assert read(db, users_both, by_n1, "login", "username", "full_name") == ("rob", "rob", "Bob Roe")
    update(db, users_both, by_n1, first_name=None)  # the fill, then the derived column
    assert read(db, users_both, by_n1, "first_name", "full_name") == ("?", "? Roe")
    # A row from before expand: an update of another column fills first_name, and full_name follows.
    update(db, users_both, 1, login="older")
    assert read(db, users_both, 1, "login", "username", "first_name", "full_name") == ("older", "older", "?", "? King")
    assert runner.problems(change) == []


@pytest.mark.parametrize("label_first", [False, True], ids=["replace-then-add", "add-then-replace"])
def test_a_derived_column_follows_an_old_column_that_another_ops_down_writes(db, label_first):
    """label is derived from is_public, which visibility's down sets: the op order must not matter."""
    label = ops.add_column("images", sa.Column("label", sa.String(1)),
                           backfill=lambda row: sa.case((row.is_public, "P"), else_="N"))
    replace = visibility_change().ops[0]
    with db.begin() as conn:
        release_n.create_all(conn)
    Runner(db).expand(Change(*((label, replace) if label_first else (replace, label)), id="label"))
    with_label = sa.Table("images", sa.MetaData(), autoload_with=db)
    row_id = insert(db, images_n1, name="a", visibility="community")
    assert read(db, with_label, row_id, "is_public", "visibility", "label") == (False, "community", "N")
    update(db, images_n1, row_id, visibility="public")
    assert read(db, with_label, row_id, "is_public", "visibility", "label") == (True, "public", "P")
    other = insert(db, images_n1, name="b", visibility="public")
    assert read(db, with_label, other, "is_public", "visibility", "label") == (True, "public", "P")


def test_identifiers_and_literals_that_need_quoting(db):
    """A table and columns named like SQL keywords or with spaces; values holding a quote."""
    odd = sa.Table("Order Items", sa.MetaData(),
                   sa.Column("id", sa.Integer, primary_key=True),
                   sa.Column("Is Public", sa.Boolean, nullable=False),
                   sa.Column("select", sa.String(20)),
                   sa.Column("First", sa.String(20)))
    with db.begin() as conn:
        odd.create(conn)
    runner = Runner(db)
    change = Change(
        ops.replace_column("Order Items", "Is Public", sa.Column("Visibility", sa.String(16), nullable=False),
                           up=lambda p: sa.case((p, "pub'lic"), else_="shared"),
                           down=lambda v: v == "pub'lic"),
        ops.rename_column("Order Items", "select", "from"),
        ops.add_column("Order Items", sa.Column("Upper First", sa.String(20)),
                       backfill=lambda row: sa.func.upper(row.First)),
        id="odd-names",
    )
    runner.expand(change)
    full = sa.Table("Order Items", sa.MetaData(), autoload_with=db)
    by_n = insert(db, full, **{"Is Public": True, "select": "a", "First": "o'neil"})
    by_n1 = insert(db, full, **{"Visibility": "pub'lic", "from": "b", "First": "bob"})
    update(db, full, by_n, **{"from": "z", "Is Public": False})
    columns = ("Is Public", "Visibility", "select", "from", "Upper First")
    assert read(db, full, by_n, *columns) == (False, "shared", "z", "z", "O'NEIL")
    assert read(db, full, by_n1, *columns) == (True, "pub'lic", "b", "b", "BOB")
    assert runner.problems(change) == []


# --- SQLite: recursive_triggers on and off give the same rows ------------------------------------

def _decision_table_workload(db: sa.Engine) -> list[tuple]:
    expanded_images(db, seed=[{"name": "seed", "is_public": True}])
    a = insert(db, images_n, name="n", is_public=True)
    b = insert(db, images_n1, name="n1", visibility="community")
    c = insert(db, images_both, name="both", is_public=True, visibility="shared")
    d = insert(db, images_both, name="null", is_public=False, visibility=None)
    update(db, images_n, a, is_public=False)
    update(db, images_n1, b, visibility="public")
    update(db, images_both, c, is_public=True, visibility="community")
    update(db, images_n, d, name="renamed", is_public=False)
    update(db, images_n, 1, name="seed2")
    Runner(db).migrate(visibility_change())
    return all_rows(db, images_both)


def test_sqlite_recursive_triggers_on_and_off_leave_identical_rows(tmp_path):
    results = {}
    for on in (False, True):
        engine = sa.create_engine(f"sqlite:///{tmp_path / f'recursive_{on}.db'}")
        set_recursive_triggers(engine, on)
        results[on] = _decision_table_workload(engine)
        engine.dispose()
    assert results[False] == results[True]
    assert results[False] == [
        (1, "seed2", True, "public"),
        (2, "n", False, "shared"),
        (3, "n1", True, "public"),
        (4, "both", False, "community"),
        (5, "renamed", False, "shared"),
    ]
