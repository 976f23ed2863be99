"""Tables in a schema other than the session's current one (issue 11, finding 7).

PostgreSQL: a table reached through `search_path` (`glance.images` with `search_path=public,glance`)
or named with a schema (`Change(..., schema="glance")`) works in every phase, with the catalog read
for the schema the table is really in, and two tables of one name in two schemas are told apart.
MariaDB and SQLite: a change on another database (schema) is refused before any DDL.
"""

from __future__ import annotations

import glance_schema
import pytest
import sqlalchemy as sa
from conftest import make_engine

from crossfade import Change, ops
from crossfade.errors import SchemaError, UnknownTableError
from crossfade.runner import Runner
from crossfade.state import Phase

ROWS = 6


def _rows(is_public_from: int = 1) -> list[dict]:
    return [{"id": i, "name": f"i{i}", "is_public": i % 2 == 0, "size": i} for i in range(is_public_from, ROWS + 1)]


def _with_path(engine: sa.Engine, path: str) -> sa.Engine:
    """An engine on the same database whose sessions start with `search_path` = `path` (as an
    application configures it in its URL or connect_args)."""
    return sa.create_engine(engine.url, connect_args={"options": f"-c search_path={path}"})


def _glance_images_through_the_path(base: sa.Engine, engines: list) -> tuple[sa.Engine, Change]:
    """glance.images with rows, and an application engine reaching it through
    search_path=public,glance, with Glance's visibility change."""
    glance = _with_path(base, "glance")
    app = _with_path(base, "public,glance")
    engines += [glance, app]
    glance_schema.create_images(glance, _rows())
    return app, glance_schema.visibility_change()


@pytest.fixture
def pg(tmp_path):
    """The per-run PostgreSQL database with an empty schema `glance` besides public."""
    engine = make_engine("postgresql", tmp_path)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP SCHEMA IF EXISTS glance CASCADE")
        conn.exec_driver_sql("CREATE SCHEMA glance")
    engines = [engine]
    yield engine, engines
    for other in engines:
        other.dispose()
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP SCHEMA IF EXISTS glance CASCADE")
    engine.dispose()


def _sql(engine: sa.Engine, statement: str, **params):
    with engine.begin() as conn:
        result = conn.execute(sa.text(statement), params)
        return result.all() if result.returns_rows else None


def _crossfade_objects(engine: sa.Engine, schema: str) -> list[str]:
    """crossfade's triggers and functions in `schema`, read from the catalog, not through crossfade."""
    return sorted(r[0] for r in _sql(engine, (
        "SELECT t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = :s AND t.tgname LIKE 'crossfade%' "
        "UNION ALL SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
        "WHERE n.nspname = :s AND p.proname LIKE 'crossfade%'"), s=schema))


def _columns(engine: sa.Engine, schema: str) -> set[str]:
    with engine.connect() as conn:
        return {c["name"] for c in sa.inspect(conn).get_columns("images", schema=schema)}


def _synced(engine: sa.Engine, schema: str) -> dict[int, tuple]:
    return {r[0]: (r[1], r[2]) for r in _sql(engine, f"SELECT id, is_public, visibility FROM {schema}.images ORDER BY id")}


def _assert_in_sync(engine: sa.Engine, schema: str) -> None:
    for key, (is_public, visibility) in _synced(engine, schema).items():
        assert visibility == ("public" if is_public else "shared"), (schema, key, is_public, visibility)


def test_a_table_reached_through_search_path_goes_through_every_phase(pg):
    """The finding: glance.images with search_path=public,glance; expand used to fail with
    "trigger ... is missing" (the catalog read in current_schema(), public), migrate was refused
    and rollback failed on the function: stuck."""
    base, engines = pg
    app, change = _glance_images_through_the_path(base, engines)
    runner = Runner(app)

    runner.expand(change)
    assert runner.problems(change) == []
    assert len(_crossfade_objects(base, "glance")) == 3 and _crossfade_objects(base, "public") == []
    _sql(app, "INSERT INTO images (id, name, is_public) VALUES (101, 'n', true)")  # release N
    runner.migrate(change)
    _sql(app, "INSERT INTO images (id, name, visibility) VALUES (102, 'n1', 'shared')")  # release N+1
    _sql(app, "UPDATE images SET visibility = 'public' WHERE id = 1")
    _sql(app, "UPDATE images SET is_public = false WHERE id = 2")
    _assert_in_sync(base, "glance")
    assert _synced(base, "glance")[1] == (True, "public") and _synced(base, "glance")[102] == (False, "shared")

    runner.expand(change)  # a rerun finds everything in place
    # Another session, whose search_path does not reach glance, sees the same: the state records
    # the schema, and the catalog is read there.
    status = Runner(base).status(change)
    assert status.problems == [] and all(t["installed"] and t["matches"] for t in status.triggers)
    assert status.to_json()["schema"] == "glance"

    runner.contract(change)
    assert runner.load(change).phase is Phase.CONTRACTED and runner.problems(change) == []
    assert _columns(base, "glance") == {"id", "name", "visibility", "size"}
    assert _crossfade_objects(base, "glance") == []


class Crash(Exception):
    """Raised right after a step, as a kill would."""


@pytest.mark.parametrize("phases", [("expand", "migrate", "contract"), ("expand", "rollback")])
def test_a_table_reached_through_search_path_survives_a_crash_after_any_step(pg, phases):
    """Killed after any step of any phase, the rerun (a new process: the schema comes from the
    state) finishes it; each round crashes one step later."""
    base, engines = pg
    app, change = _glance_images_through_the_path(base, engines)
    for phase in phases:
        crash_after = 1
        while True:
            seen: list[str] = []

            def crash(_phase, name, seen=seen, crash_after=crash_after):
                seen.append(name)
                if len(seen) == crash_after:
                    raise Crash(name)

            try:
                getattr(Runner(app, on_step=crash), phase)(change)
                break
            except Crash:
                crash_after += 1
                recorded = Runner(base).load(change)
                assert recorded.phase is Phase.PENDING or recorded.schema == "glance"
        assert crash_after > 2, f"{phase} crashed after fewer steps than it has"
        assert Runner(app).problems(change) == []
        assert _crossfade_objects(base, "public") == []
    assert _crossfade_objects(base, "glance") == []
    final = {"id", "name", "size"} | ({"visibility"} if "contract" in phases else {"is_public"})
    assert _columns(base, "glance") == final


def test_a_table_reached_through_search_path_rolls_back(pg):
    base, engines = pg
    app, change = _glance_images_through_the_path(base, engines)
    runner = Runner(app)
    runner.expand(change)
    runner.migrate(change)
    _sql(app, "INSERT INTO images (id, name, visibility) VALUES (102, 'n1', 'public')")
    runner.rollback(change)
    runner.rollback(change)  # a rerun has nothing left to do
    assert runner.load(change).phase is Phase.ROLLED_BACK and runner.problems(change) == []
    assert _columns(base, "glance") == {"id", "name", "is_public", "size"}
    assert _crossfade_objects(base, "glance") == []
    assert _sql(base, "SELECT is_public FROM glance.images WHERE id = 102") == [(True,)]


def test_two_tables_of_one_name_in_two_schemas_are_told_apart(pg):
    """public.images and glance.images: a change on each touches only its own table, and
    status reads each one's triggers."""
    base, engines = pg
    glance = _with_path(base, "glance")
    app = _with_path(base, "public,glance")
    engines += [glance, app]
    glance_schema.create_images(base, _rows())
    glance_schema.create_images(glance, _rows())
    on_public = Change(glance_schema.visibility_op())  # search_path finds public.images first
    on_glance = Change(glance_schema.visibility_op(), schema="glance")
    assert on_public.id != on_glance.id
    runner = Runner(app)

    runner.expand(on_glance)
    assert _crossfade_objects(base, "public") == [] and len(_crossfade_objects(base, "glance")) == 3
    assert "visibility" not in _columns(base, "public")
    runner.expand(on_public)
    assert len(_crossfade_objects(base, "public")) == 3
    runner.migrate(on_glance)
    runner.migrate(on_public)
    _sql(app, "UPDATE public.images SET is_public = NOT is_public")
    _sql(app, "UPDATE glance.images SET visibility = 'public' WHERE id = 1")
    _assert_in_sync(base, "public")
    _assert_in_sync(base, "glance")
    assert runner.problems(on_public) == [] and runner.problems(on_glance) == []

    runner.contract(on_glance)
    assert _columns(base, "glance") == {"id", "name", "visibility", "size"}
    assert _crossfade_objects(base, "glance") == []
    assert len(_crossfade_objects(base, "public")) == 3  # the other change's triggers stay
    status = runner.status(on_public)
    assert status.problems == [] and all(t["installed"] and t["matches"] for t in status.triggers)

    runner.rollback(on_public)
    assert _columns(base, "public") == {"id", "name", "is_public", "size"}
    assert _crossfade_objects(base, "public") == []
    assert runner.problems(on_public) == [] and runner.problems(on_glance) == []


def test_lock_holders_are_read_on_the_table_of_the_resolved_schema(pg):
    """When a step gives up, the sessions named are those holding *this* table, not its namesake."""
    from crossfade.dialects import for_dialect

    base, _ = pg
    glance_schema.create_images(base, _rows())
    _sql(base, "CREATE TABLE glance.images (id integer PRIMARY KEY)")
    dialect = for_dialect(base.dialect)
    with base.connect() as holder, base.connect() as conn:
        holder.exec_driver_sql("LOCK TABLE glance.images IN ACCESS SHARE MODE")
        with conn.begin():
            assert len(dialect.in_schema("glance").lock_holders(conn, ["images"])) == 1
            assert dialect.in_schema("public").lock_holders(conn, ["images"]) == []
            assert dialect.lock_holders(conn, ["images"]) == []  # the path finds public.images
        holder.rollback()


def test_indexes_constraints_and_a_renamed_table_in_a_schema_behind_its_namesakes(pg):
    """The catalog probes of index, unique, check, foreign key, NOT NULL and rename steps look in
    glance, though public has tables, indexes and constraints of the same names first on the path."""
    base, engines = pg
    app = _with_path(base, "public,glance")
    engines.append(app)
    for schema in ("public", "glance"):
        _sql(base, f"CREATE TABLE {schema}.owners (id integer PRIMARY KEY)")
        _sql(base, f"CREATE TABLE {schema}.images (id integer PRIMARY KEY, name varchar(20), size integer, "
                   "owner_id integer)")
        _sql(base, f"INSERT INTO {schema}.owners VALUES (1)")
        _sql(base, f"INSERT INTO {schema}.images VALUES (1, 'a', 1, 1), (2, 'b', NULL, 1)")
    change = Change(
        ops.add_column("images", sa.Column("note", sa.String(10)), backfill=lambda row: row.name),
        ops.create_index("images", "ix_images_name", "name"),
        ops.add_unique("images", "uq_images_name", "name"),
        ops.set_not_null("images", "size", fill=0),
        ops.add_check("images", "ck_images_size", lambda row: row.size >= 0),
        ops.add_foreign_key("images", "fk_images_owner", "owner_id", "owners", "id"),
        schema="glance",
    )
    runner = Runner(app)
    runner.expand(change)
    runner.migrate(change)
    runner.contract(change)
    assert runner.problems(change) == []
    with base.connect() as conn:
        inspector = sa.inspect(conn)
        for schema, done in (("glance", True), ("public", False)):
            assert ("note" in {c["name"] for c in inspector.get_columns("images", schema=schema)}) is done
            assert ("ix_images_name" in {i["name"] for i in inspector.get_indexes("images", schema=schema)}) is done
            assert ([k["name"] for k in inspector.get_foreign_keys("images", schema=schema)]
                    == (["fk_images_owner"] if done else []))
    assert _sql(base, "SELECT id, size, note FROM glance.images ORDER BY id") == [(1, 1, "a"), (2, 0, "b")]

    renamed = Change(ops.rename_table("images", "pictures"), schema="glance")
    runner.expand(renamed)
    _sql(app, "INSERT INTO glance.pictures (id, name, size, owner_id) VALUES (3, 'c', 3, 1)")  # the view
    runner.migrate(renamed)
    runner.contract(renamed)
    assert runner.problems(renamed) == []
    with base.connect() as conn:
        assert sorted(sa.inspect(conn).get_table_names(schema="glance")) == ["owners", "pictures"]
        assert sorted(sa.inspect(conn).get_table_names(schema="public")) == ["crossfade_lock", "crossfade_state", "images", "owners"]
    assert _sql(base, "SELECT count(*) FROM glance.pictures") == [(3,)]


def test_a_change_declared_in_a_schema_works_with_any_search_path(pg):
    base, engines = pg
    glance = _with_path(base, "glance")
    engines.append(glance)
    glance_schema.create_images(glance, _rows())
    change = Change(glance_schema.visibility_op(), schema="glance")
    runner = Runner(base)  # search_path: public only
    runner.expand(change)
    runner.migrate(change)
    _sql(base, "INSERT INTO glance.images (id, name, is_public) VALUES (101, 'n', true)")
    _assert_in_sync(base, "glance")
    runner.contract(change)
    assert runner.problems(change) == []
    assert _columns(base, "glance") == {"id", "name", "visibility", "size"}


def test_a_schema_written_into_the_table_name_is_refused_with_the_way_to_name_it(pg):
    base, engines = pg
    glance = _with_path(base, "glance")
    engines.append(glance)
    glance_schema.create_images(glance, _rows())
    op = ops.replace_column("glance.images", "is_public", sa.Column("visibility", sa.String(16)),
                            up=lambda p: sa.case((p, "public"), else_="shared"), down=lambda v: v == "public")
    with pytest.raises(UnknownTableError, match=r"'glance.images' does not exist \(to name a table's schema, use "
                                                r"Change\(\.\.\., schema=\.\.\.\)\)"):
        Runner(base).expand(Change(op))
    assert _columns(base, "glance") == {"id", "name", "is_public", "size"}


def test_one_change_id_in_two_schemas_is_refused(pg):
    """The state is keyed by the change's id: the same id declared on another schema is not
    taken for the change already run."""
    base, engines = pg
    glance = _with_path(base, "glance")
    engines.append(glance)
    glance_schema.create_images(base, _rows())
    glance_schema.create_images(glance, _rows())
    Runner(base).expand(Change(glance_schema.visibility_op(), schema="glance", id="visibility"))
    with pytest.raises(SchemaError, match="was run on the tables of schema 'glance', not 'public'"):
        Runner(base).contract(Change(glance_schema.visibility_op(), schema="public", id="visibility"))
    assert "visibility" not in _columns(base, "public") and "visibility" in _columns(base, "glance")


def test_a_schema_name_that_needs_quoting_works_in_every_phase(pg):
    base, _ = pg
    odd = 'Odd "schema" ü'
    quoted = base.dialect.identifier_preparer.quote_schema(odd)
    _sql(base, f"DROP SCHEMA IF EXISTS {quoted} CASCADE")
    _sql(base, f"CREATE SCHEMA {quoted}")
    try:
        metadata = sa.MetaData(schema=odd)
        images = glance_schema.images_table(metadata)
        with base.begin() as conn:
            metadata.create_all(conn)
            conn.execute(images.insert(), _rows())
        change = Change(glance_schema.visibility_op(), schema=odd)
        runner = Runner(base)
        runner.expand(change)
        with base.begin() as conn:
            conn.execute(images.insert().values(id=101, name="n", is_public=True))
        runner.migrate(change)
        assert runner.problems(change) == []
        runner.contract(change)
        assert runner.problems(change) == []
        with base.connect() as conn:
            assert {c["name"] for c in sa.inspect(conn).get_columns("images", schema=odd)} == {
                "id", "name", "visibility", "size"}
            assert conn.execute(sa.text(f"SELECT visibility FROM {quoted}.images WHERE id = 101")).scalar() == "public"
    finally:
        _sql(base, f"DROP SCHEMA IF EXISTS {quoted} CASCADE")


def test_a_missing_schema_is_refused_before_ddl(pg):
    base, _ = pg
    glance_schema.create_images(base, _rows())
    change = Change(glance_schema.visibility_op(), schema="nowhere")
    with pytest.raises(SchemaError, match="schema 'nowhere' does not exist"):
        Runner(base).expand(change)
    assert _columns(base, "public") == {"id", "name", "is_public", "size"}
    with base.connect() as conn:
        assert not sa.inspect(conn).has_table("crossfade_state")


def test_a_change_over_tables_in_two_schemas_is_refused_before_ddl(pg):
    """Which schema would it be? crossfade refuses and says how to name it."""
    base, engines = pg
    glance = _with_path(base, "glance")
    app = _with_path(base, "public,glance")
    engines += [glance, app]
    glance_schema.create_images(glance, _rows())
    _sql(base, "CREATE TABLE public.members (id integer PRIMARY KEY, image_id integer)")
    change = Change(glance_schema.visibility_op(), ops.add_column("members", sa.Column("note", sa.String(10))))
    with pytest.raises(SchemaError, match="different schemas .*members in public.*schema="):
        Runner(app).expand(change)
    assert "visibility" not in _columns(base, "glance")
    assert _crossfade_objects(base, "glance") == []


def test_cross_table_triggers_write_the_tables_of_their_schema_whatever_the_writers_path(pg):
    """split_table in glance, with same-named tables in public first on the writers' path: the
    link functions name glance's tables, so no write lands in public's."""
    base, engines = pg
    app = _with_path(base, "public,glance")
    engines.append(app)
    for schema in ("public", "glance"):
        _sql(base, f"CREATE TABLE {schema}.users (id integer PRIMARY KEY, name varchar(20) NOT NULL, "
                   "bio varchar(20), theme varchar(20))")
        _sql(base, f"INSERT INTO {schema}.users VALUES (1, 'ann', 'hi', 'dark')")
    _sql(base, "CREATE TABLE public.profiles (id integer PRIMARY KEY, bio varchar(20), theme varchar(20))")
    change = Change(ops.split_table("users", "profiles", ["bio", "theme"]), schema="glance")
    runner = Runner(app)
    runner.expand(change)
    runner.migrate(change)
    _sql(app, "INSERT INTO glance.users VALUES (2, 'bob', 'yo', 'light')")  # release N
    _sql(app, "UPDATE glance.profiles SET theme = 'dim' WHERE id = 1")  # release N+1
    assert _sql(base, "SELECT id, bio, theme FROM glance.profiles ORDER BY id") == [(1, "hi", "dim"), (2, "yo", "light")]
    assert _sql(base, "SELECT theme FROM glance.users WHERE id = 1") == [("dim",)]
    assert _sql(base, "SELECT count(*) FROM public.profiles") == [(0,)]
    assert _sql(base, "SELECT id, bio, theme FROM public.users") == [(1, "hi", "dark")]
    assert runner.problems(change) == []
    runner.contract(change)
    assert runner.problems(change) == []
    with base.connect() as conn:
        assert {c["name"] for c in sa.inspect(conn).get_columns("users", schema="glance")} == {"id", "name"}
        assert {c["name"] for c in sa.inspect(conn).get_columns("users", schema="public")} == {
            "id", "name", "bio", "theme"}
    assert _crossfade_objects(base, "glance") == [] and _crossfade_objects(base, "public") == []


# --- MariaDB and SQLite: one database per connection -----------------------------------------

def test_mariadb_refuses_a_change_on_another_database_before_ddl(tmp_path):
    engine = make_engine("mysql", tmp_path)
    try:
        glance_schema.create_images(engine, _rows())
        change = Change(glance_schema.visibility_op(), schema="some_other_db")
        with pytest.raises(SchemaError, match="connection's own database"):
            Runner(engine).expand(change)
        with engine.connect() as conn:
            assert not sa.inspect(conn).has_table("crossfade_state")
            assert "visibility" not in {c["name"] for c in sa.inspect(conn).get_columns("images")}
        # Naming the connection's own database is the same as naming none.
        own = Change(glance_schema.visibility_op(), schema=engine.url.database)
        runner = Runner(engine)
        runner.expand(own)
        runner.rollback(own)
        assert runner.problems(own) == []
    finally:
        engine.dispose()


def test_sqlite_refuses_an_attached_database_before_ddl(tmp_path):
    engine = make_engine("sqlite", tmp_path)
    aux = tmp_path / "aux.db"

    @sa.event.listens_for(engine, "connect")
    def attach(dbapi_connection, record):
        dbapi_connection.execute(f"ATTACH DATABASE '{aux}' AS aux")

    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE aux.images (id INTEGER PRIMARY KEY, name VARCHAR(50) NOT NULL, "
                                 "is_public BOOLEAN NOT NULL, size INTEGER)")
            conn.exec_driver_sql("INSERT INTO aux.images VALUES (1, 'a', 1, 1)")
        declared = Change(glance_schema.visibility_op(), schema="aux")
        with pytest.raises(SchemaError, match="connection's own database"):
            Runner(engine).expand(declared)
        # Reached unqualified (SQLite looks in attached databases too): crossfade works on the
        # main database only, where there is no such table.
        with pytest.raises(SchemaError, match="'images' is in the attached database 'aux'"):
            Runner(engine).expand(glance_schema.visibility_change())
        with engine.connect() as conn:
            assert [r[0] for r in conn.exec_driver_sql("SELECT name FROM aux.sqlite_master")] == ["images"]
            assert "visibility" not in {c["name"] for c in sa.inspect(conn).get_columns("images", schema="aux")}
            assert conn.exec_driver_sql("SELECT count(*) FROM main.sqlite_master WHERE type = 'trigger'").scalar() == 0
    finally:
        engine.dispose()
