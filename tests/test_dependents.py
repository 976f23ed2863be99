"""Objects that use a column contract drops are found and named before contract's first DDL.

Issue 11, finding 5: with a view on the old column, PostgreSQL's contract failed with
DependentObjectsStillExist after dropping the triggers and relaxing NOT NULL, and rollback then
claimed release N's columns were gone. Now contract refuses up front, with every object and what to
do, and leaves the database as it was; once they are dealt with, contract runs again and finishes.
"""

from __future__ import annotations

import glance_schema
import pytest
import sqlalchemy as sa

from crossfade import Change, ops, sqltext
from crossfade.errors import DependentObjectsError, PhaseError
from crossfade.runner import Runner
from crossfade.state import Phase

ROWS = [{"id": i, "name": f"n{i}", "is_public": i % 2 == 0, "size": i} for i in range(1, 11)]


def execute(engine: sa.Engine, *statements: str) -> None:
    with engine.begin() as conn:
        for statement in statements:
            conn.exec_driver_sql(statement)


def migrated(engine: sa.Engine, *setup: str, extra=()):
    """Release N's images table (with `extra` columns or constraints) with `setup` run on it, the
    visibility change expanded and migrated."""
    glance_schema.create_images(engine, ROWS, *extra)
    execute(engine, *setup)
    change = glance_schema.visibility_change()
    runner = Runner(engine, allow_foreign_triggers=True)
    runner.expand(change)
    runner.migrate(change)
    return runner, change


def is_public_column(engine: sa.Engine) -> dict | None:
    with engine.connect() as conn:
        return next((c for c in sa.inspect(conn).get_columns("images") if c["name"] == "is_public"), None)


def assert_untouched(runner: Runner, change, engine: sa.Engine) -> None:
    """Contract refused before its first DDL: phase, triggers and release N's NOT NULL as expand left them."""
    assert runner.load(change).phase is Phase.MIGRATED
    assert runner.problems(change) == []
    with engine.connect() as conn:
        assert runner.dialect.catalog_objects(conn, {"images"})
    # (SQLite's expand relaxed it already: its triggers re-impose it.)
    assert is_public_column(engine)["nullable"] is runner.dialect.relaxes_old_not_null


VIEW = "CREATE VIEW v AS SELECT id, is_public FROM images"


def test_a_view_on_the_old_column_is_refused_before_any_ddl_and_contract_finishes_without_it(engine):
    """Finding 5, on every database (MariaDB and SQLite would drop the column under the view and
    leave it broken)."""
    runner, change = migrated(engine, VIEW)
    with pytest.raises(DependentObjectsError, match=r"view v \(uses images\.is_public\)") as refused:
        runner.contract(change)
    assert "recreate it over the new columns" in str(refused.value)
    assert len(str(refused.value).splitlines()) == 1
    assert_untouched(runner, change, engine)

    execute(engine, "DROP VIEW v")
    runner.contract(change)
    assert runner.load(change).phase is Phase.CONTRACTED and is_public_column(engine) is None


def test_expand_warns_early_of_what_contract_will_refuse(engine):
    glance_schema.create_images(engine, ROWS)
    execute(engine, VIEW)
    logged: list[str] = []
    runner = Runner(engine, log=logged.append)
    runner.expand(glance_schema.visibility_change())
    assert any("contract will refuse" in w and "view v (uses images.is_public)" in w for w in runner.warnings)
    assert any(line.startswith("warning: contract will refuse") for line in logged)


def test_after_a_refusal_rollback_still_works(engine):
    runner, change = migrated(engine, VIEW)
    with pytest.raises(DependentObjectsError):
        runner.contract(change)
    runner.rollback(change)
    assert runner.load(change).phase is Phase.ROLLED_BACK
    with engine.connect() as conn:
        assert sorted(conn.exec_driver_sql("SELECT id, is_public FROM v ORDER BY id").all()) == \
            [(r["id"], r["is_public"]) for r in ROWS]


def test_objects_that_do_not_use_the_dropped_column_do_not_stop_contract(engine):
    runner, change = migrated(engine, "CREATE VIEW v AS SELECT id, name FROM images",
                              "CREATE INDEX ix_is_public ON images (is_public)",
                              "CREATE INDEX ix_name_size ON images (name, size)")
    runner.contract(change)
    assert runner.load(change).phase is Phase.CONTRACTED
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM v").scalar() == len(ROWS)


# Per dialect: the statements that make one object using images.is_public, and the kind and name
# contract's refusal must report.
DEPENDENTS = {
    "view through an alias": ({"*": ["CREATE VIEW v_alias AS SELECT i.is_public AS p FROM images i"]},
                              "view", "v_alias"),
    "index over other columns too": ({"*": ["CREATE INDEX ix_multi ON images (name, is_public)"]},
                                     "index", "ix_multi"),
    "unique index over other columns too": ({"*": ["CREATE UNIQUE INDEX uq_multi ON images (is_public, id)"]},
                                            "index", "uq_multi"),
    "expression index": ({"postgresql": ["CREATE INDEX ix_expr ON images ((NOT is_public))"],
                          "sqlite": ["CREATE INDEX ix_expr ON images ((NOT is_public))"]}, "index", "ix_expr"),
    "partial index": ({"postgresql": ["CREATE INDEX ix_part ON images (name) WHERE is_public"],
                       "sqlite": ["CREATE INDEX ix_part ON images (name) WHERE is_public"]}, "index", "ix_part"),
    "generated column": ({"postgresql": [("ALTER TABLE images ADD COLUMN shown text "
                                         "GENERATED ALWAYS AS (CASE WHEN is_public THEN name END) STORED")],
                          "mysql": [("ALTER TABLE images ADD COLUMN shown varchar(50) "
                                    "AS (CASE WHEN is_public THEN name END) VIRTUAL")],
                          "sqlite": [("ALTER TABLE images ADD COLUMN shown text "
                                     "GENERATED ALWAYS AS (CASE WHEN is_public THEN name END) VIRTUAL")]},
                         "generated column", "images.shown"),
    "foreign key referencing it": ({"*": ["CREATE UNIQUE INDEX uq_pub_id ON images (is_public, id)",
                                          ("CREATE TABLE child (id INTEGER PRIMARY KEY, pub BOOLEAN, img INTEGER, "
                                          "FOREIGN KEY (pub, img) REFERENCES images (is_public, id))")]},
                                   "foreign key", "child"),
    "check over other columns too": ({"postgresql": ["ALTER TABLE images ADD CONSTRAINT ck_pub CHECK (is_public OR size > 0)"],
                                      "mysql": ["ALTER TABLE images ADD CONSTRAINT ck_pub CHECK (is_public OR size > 0)"]},
                                     "check constraint", "ck_pub"),
    "rule": ({"postgresql": ["CREATE TABLE audit (pub boolean)",
                             "CREATE RULE r_audit AS ON INSERT TO images DO ALSO INSERT INTO audit VALUES (NEW.is_public)"]},
             "rule", "r_audit"),
    "trigger on the table": ({
        "postgresql": [("CREATE FUNCTION app_fill() RETURNS trigger LANGUAGE plpgsql AS "
                       "$$ BEGIN NEW.is_public := coalesce(NEW.is_public, false); RETURN NEW; END $$"),
                       "CREATE TRIGGER app_fill BEFORE INSERT ON images FOR EACH ROW EXECUTE FUNCTION app_fill()"],
        "mysql": [("CREATE TRIGGER app_fill BEFORE INSERT ON images FOR EACH ROW "
                  "SET NEW.is_public = coalesce(NEW.is_public, 0)")],
        "sqlite": ["CREATE TABLE audit (pub boolean)",
                   "CREATE TRIGGER app_fill AFTER INSERT ON images BEGIN INSERT INTO audit VALUES (NEW.is_public); END"]},
        "trigger", "app_fill"),
    "trigger on another table": ({
        "mysql": ["CREATE TABLE audit (id INTEGER PRIMARY KEY, pub BOOLEAN)",
                  ("CREATE TRIGGER app_audit BEFORE INSERT ON audit FOR EACH ROW "
                  "SET NEW.pub = (SELECT max(is_public) FROM images)")],
        "sqlite": ["CREATE TABLE audit (id INTEGER PRIMARY KEY, pub BOOLEAN)",
                   ("CREATE TRIGGER app_audit AFTER INSERT ON audit BEGIN "
                   "UPDATE audit SET pub = (SELECT max(is_public) FROM images) WHERE id = NEW.id; END")]},
        "trigger", "app_audit"),
}


@pytest.mark.parametrize("what", sorted(DEPENDENTS))
def test_every_kind_of_dependent_object_is_named_before_any_ddl(engine, what):
    setup, kind, name = DEPENDENTS[what]
    statements = setup.get(engine.dialect.name, setup.get("*"))
    if statements is None:
        pytest.skip(f"{engine.dialect.name} has no {what}")
    runner, change = migrated(engine, *statements)
    with pytest.raises(DependentObjectsError) as refused:
        runner.contract(change)
    assert any(d.kind == kind and name in d.name for d in refused.value.dependents), refused.value
    assert all(d.column == "images.is_public" for d in refused.value.dependents)
    assert_untouched(runner, change, engine)


@pytest.mark.parametrize("dialect_name", ["sqlite"])
def test_sqlite_check_over_the_dropped_column_and_others_is_named(engine):
    """SQLite cannot add a constraint to a table, so this one is declared with it."""
    runner, change = migrated(engine, extra=[sa.CheckConstraint("is_public OR size > 0", name="ck_pub")])
    with pytest.raises(DependentObjectsError, match=r"check constraint ck_pub on images \(uses images\.is_public\)"):
        runner.contract(change)
    assert_untouched(runner, change, engine)


@pytest.mark.parametrize("dialect_name", ["postgresql", "sqlite"])
def test_a_view_made_between_the_check_and_the_drop_stops_contract_and_a_rerun_finishes(engine):
    """The check runs before the first DDL; a view created after it makes the DROP COLUMN fail
    (MariaDB drops the column under it instead). Rerunning contract names the view; rollback's
    refusal says what the database shows (release N's column is still there); once the view is
    gone, contract finishes."""
    runner, change = migrated(engine)

    def make_view(phase: str, step: str) -> None:
        if step.startswith("drop triggers on"):  # (logged under the phase "contracting")
            execute(engine, VIEW)

    with pytest.raises(sa.exc.DBAPIError):
        Runner(engine, on_step=make_view).contract(change)
    assert runner.load(change).phase is Phase.CONTRACTING
    with pytest.raises(DependentObjectsError, match=r"view v \(uses images\.is_public\)"):
        runner.contract(change)
    with pytest.raises(PhaseError, match=r"release N's columns \(images\.is_public\) are still there") as refused:
        runner.rollback(change)
    assert "contract has dropped release N's columns" not in str(refused.value)

    execute(engine, "DROP VIEW v")
    runner.contract(change)
    assert runner.load(change).phase is Phase.CONTRACTED and is_public_column(engine) is None
    assert runner.problems(change) == []


def test_a_view_on_a_table_rename_table_renames_follows_it_or_is_refused(engine):
    """PostgreSQL's views follow the table and SQLite's rename rewrites them; MariaDB's RENAME
    TABLE would leave the view naming a table that is gone, so contract refuses it there."""
    glance_schema.create_images(engine, ROWS)
    execute(engine, "CREATE VIEW v AS SELECT id, name FROM images")
    change = Change(ops.rename_table("images", "pictures"), id="rename")
    runner = Runner(engine)
    runner.expand(change)
    runner.migrate(change)
    if engine.dialect.name == "mysql":
        with pytest.raises(DependentObjectsError, match=r"view v \(uses images\)"):
            runner.contract(change)
        assert runner.load(change).phase is Phase.MIGRATED
        execute(engine, "DROP VIEW v")
        runner.contract(change)
        return
    runner.contract(change)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM v").scalar() == len(ROWS)


SQLITE_SCHEMA_OBJECTS = [
    "CREATE VIEW v AS SELECT id, upper(name) AS shout FROM images",
    "CREATE INDEX ix_lower ON images (lower(name))",
    "CREATE INDEX ix_sized ON images (name) WHERE size > 5",
    "CREATE TABLE audit (id INTEGER)",
    "CREATE TRIGGER app_audit AFTER INSERT ON images BEGIN INSERT INTO audit VALUES (NEW.id); END",
]


def sqlite_objects(engine: sa.Engine) -> list[tuple[str, str]]:
    with engine.connect() as conn:
        return sorted(conn.exec_driver_sql(
            "SELECT type, name FROM sqlite_master WHERE type IN ('view', 'index', 'trigger') "
            "AND name NOT LIKE 'crossfade%' AND name NOT LIKE 'sqlite_%'").all())


@pytest.mark.parametrize("dialect_name", ["sqlite"])
@pytest.mark.parametrize("end", ["contract", "rollback"])
def test_sqlite_rebuilds_keep_views_expression_and_partial_indexes_and_triggers(engine, end):
    """SQLite's expand rebuilds the table (to relax release N's NOT NULL), and so do contract and
    rollback: the rename into place used to fail on any view of the table, and the copy lost the
    indexes SQLAlchemy cannot reflect (over expressions)."""
    glance_schema.create_images(engine, ROWS)
    execute(engine, *SQLITE_SCHEMA_OBJECTS)
    before = sqlite_objects(engine)
    change = glance_schema.visibility_change()
    runner = Runner(engine, allow_foreign_triggers=True)
    runner.expand(change)
    assert sqlite_objects(engine) == before
    runner.migrate(change)
    getattr(runner, end)(change)
    assert sqlite_objects(engine) == before
    execute(engine, "INSERT INTO images (id, name, size" + (", is_public" if end == "rollback" else "") +
            ") VALUES (500, 'x', 9" + (", 1" if end == "rollback" else "") + ")")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT shout FROM v WHERE id = 500").scalar() == "X"
        assert conn.exec_driver_sql("SELECT count(*) FROM audit WHERE id = 500").scalar() == 1
        plan = " ".join(str(r) for r in conn.exec_driver_sql(
            "EXPLAIN QUERY PLAN SELECT id FROM images WHERE lower(name) = 'x'"))
        assert "ix_lower" in plan


@pytest.mark.parametrize("sql, found", [
    ("SELECT is_public FROM images", True),
    ('SELECT "is_public" FROM images', True),
    ("SELECT `IS_PUBLIC` FROM images", True),
    ("SELECT [is_public] FROM images", True),
    ("SELECT 'is_public' FROM images", False),  # a string
    ("SELECT is_public_old, x_is_public FROM images", False),  # longer names
    ("SELECT id FROM images -- is_public\n", False),  # comments
    ("SELECT id /* is_public */ FROM images", False),
    ('SELECT "a ""is_public"" b" FROM images', False),  # part of a quoted name
])
def test_the_search_for_a_column_name_in_stored_sql_sees_only_identifiers(sql, found):
    assert sqltext.mentions(sql, "is_public") is found


def test_generated_expressions_are_read_from_create_table_one_column_at_a_time():
    create = ("CREATE TABLE t (id INTEGER PRIMARY KEY, a INT, \"b c\" INT GENERATED ALWAYS AS (a * 2 + length(',)')) "
              "VIRTUAL, d INT AS (a * 3) STORED, e INT, CONSTRAINT ck CHECK (a > 0))")
    assert sqltext.generated_columns(create) == {"b c": ("a * 2 + length(',)')", False), "d": ("a * 3", True)}


@pytest.mark.parametrize("dialect_name", ["postgresql"])
def test_dependents_are_read_in_the_schema_the_table_is_really_in(engine):
    """glance.images and public.images: a view on public's column does not stop the change on
    glance's table, and one on glance's does, whatever the session's search_path."""
    execute(engine, "DROP SCHEMA IF EXISTS glance CASCADE", "CREATE SCHEMA glance")
    glance = sa.create_engine(engine.url, connect_args={"options": "-c search_path=glance"})
    try:
        glance_schema.create_images(engine, ROWS)
        glance_schema.create_images(glance, ROWS)
        execute(engine, "CREATE VIEW public.v_public AS SELECT is_public FROM public.images")
        change = Change(glance_schema.visibility_op(), schema="glance")
        runner = Runner(engine)  # search_path: public
        runner.expand(change)
        runner.migrate(change)
        execute(engine, "CREATE VIEW glance.v_glance AS SELECT is_public FROM glance.images")
        with pytest.raises(DependentObjectsError) as refused:
            runner.contract(change)
        assert [d.name for d in refused.value.dependents] == ["glance.v_glance"]
        execute(engine, "DROP VIEW glance.v_glance")
        runner.contract(change)
        assert runner.load(change).phase is Phase.CONTRACTED
    finally:
        glance.dispose()
        execute(engine, "DROP SCHEMA IF EXISTS glance CASCADE")
