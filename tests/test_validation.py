"""Bad input gets a typed error, naming table and column, before any DDL runs.

Each test snapshots the database (tables, columns, triggers, functions, crossfade_state's rows),
calls expand with a broken change, and compares: nothing may have changed, and crossfade_state
must not even have been created.
"""

from __future__ import annotations

import glance_schema
import pytest
import sqlalchemy as sa

from crossfade import Change, ops
from crossfade.errors import (
    ColumnAlreadySyncedError,
    ColumnExistsError,
    ColumnNotNullableError,
    NotNullWithoutFillError,
    PreflightError,
    PrimaryKeyColumnError,
    RoundTripError,
    TableBusyError,
    TransformError,
    UnknownColumnError,
    UnknownTableError,
    ValidationError,
)
from crossfade.runner import Runner


def create_images(engine: sa.Engine) -> None:
    glance_schema.create_images(engine, [{"name": f"i{i}", "is_public": i % 2 == 0, "size": i} for i in range(5)])


def snapshot(engine: sa.Engine) -> dict:
    """Everything expand could touch, read from the catalog."""
    with engine.connect() as conn:
        inspector = sa.inspect(conn)
        tables = sorted(inspector.get_table_names())
        result = {
            "tables": tables,
            "columns": {t: [(c["name"], str(c["type"]), c["nullable"], str(c["default"]))
                            for c in inspector.get_columns(t)] for t in tables},
            "rows": {t: sorted(map(tuple, conn.execute(sa.text(f"SELECT * FROM {t}"))), key=repr) for t in tables},
        }
        if engine.dialect.name == "postgresql":
            result["triggers"] = sorted(conn.exec_driver_sql(
                "SELECT tgname, pg_get_triggerdef(oid) FROM pg_trigger WHERE NOT tgisinternal").all())
            result["functions"] = sorted(conn.exec_driver_sql(
                "SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
                "WHERE n.nspname = 'public'").scalars())
        elif engine.dialect.name == "sqlite":
            result["triggers"] = sorted(conn.exec_driver_sql(
                "SELECT name, sql FROM sqlite_master WHERE type = 'trigger'").all())
        else:
            result["triggers"] = sorted(conn.exec_driver_sql(
                "SELECT TRIGGER_NAME, ACTION_STATEMENT FROM information_schema.TRIGGERS "
                "WHERE TRIGGER_SCHEMA = DATABASE()").all())
        return result


def expand_refused(engine: sa.Engine, change: Change, error: type[Exception], *, state_table_exists=False,
                   **runner_options) -> Exception:
    """Expand must raise `error` and leave the database exactly as it was."""
    before = snapshot(engine)
    with pytest.raises(error) as caught:
        Runner(engine, **runner_options).expand(change)
    assert snapshot(engine) == before
    assert ("crossfade_state" in before["tables"]) is state_table_exists
    return caught.value


def visibility(up=None, down=None, name="visibility", old="is_public") -> ops.ReplaceColumnOp:
    return ops.replace_column(
        "images", old, sa.Column(name, sa.String(16), nullable=False, server_default="shared"),
        up=up or (lambda p: sa.case((p, "public"), else_="shared")),
        down=down or (lambda v: v == "public"))


@pytest.fixture
def images(engine):
    create_images(engine)
    return engine


def test_unknown_table(images):
    error = expand_refused(images, Change(ops.add_column("imagez", sa.Column("x", sa.Integer))), UnknownTableError)
    assert error.table == "imagez" and "'imagez'" in str(error)


@pytest.mark.parametrize("op", [
    ops.rename_column("images", "nope", "title"),
    ops.drop_column("images", "nope"),
    ops.set_not_null("images", "nope", fill=0),
    ops.replace_column("images", "nope", sa.Column("visibility", sa.String(16)), up=lambda p: p, down=lambda v: v),
], ids=["rename", "drop", "set_not_null", "replace"])
def test_unknown_column(images, op):
    error = expand_refused(images, Change(op), UnknownColumnError)
    assert (error.table, error.column) == ("images", "nope")
    assert "images.nope" in str(error)


@pytest.mark.parametrize("op", [
    ops.add_column("images", sa.Column("size", sa.Integer)),
    ops.rename_column("images", "name", "size"),
    visibility(name="name", up=lambda p: sa.case((p, "public"), else_="shared")),
], ids=["add", "rename", "replace"])
def test_new_column_already_exists(images, op):
    error = expand_refused(images, Change(op), ColumnExistsError)
    assert "images." in str(error) and "already exists" in str(error)


def test_not_null_new_column_without_fill(images):
    change = Change(ops.add_column("images", sa.Column("label", sa.String(20), nullable=False)))
    error = expand_refused(images, change, NotNullWithoutFillError)
    assert "images.label" in str(error) and "server_default" in str(error)


def test_dropping_not_null_column_without_fill(images):
    error = expand_refused(images, Change(ops.drop_column("images", "name")), NotNullWithoutFillError)
    assert "images.name" in str(error) and "fill" in str(error)


def test_primary_key_and_already_not_null(images):
    error = expand_refused(images, Change(ops.rename_column("images", "id", "ident")), PrimaryKeyColumnError)
    assert "images.id" in str(error)
    error = expand_refused(images, Change(ops.set_not_null("images", "name")), ColumnNotNullableError)
    assert "images.name" in str(error)


@pytest.mark.parametrize("up", [
    lambda p: object(),  # not an expression at all
    lambda p: (sa.literal("a"), sa.literal("b")),  # two values for one column
    lambda p: p.no_such_attribute,  # a Python error inside the transform
], ids=["not-an-expression", "wrong-arity", "attribute-error"])
def test_transform_that_does_not_compile(images, up):
    error = expand_refused(images, Change(visibility(up=up)), (TransformError, AttributeError))
    assert isinstance(error, TransformError), repr(error)
    assert "images.visibility" in str(error)


def test_backfill_reading_a_missing_column(images):
    change = Change(ops.add_column("images", sa.Column("label", sa.String(20)), backfill=lambda r: r.nope))
    error = expand_refused(images, change, TransformError)
    assert "images.label" in str(error) and "nope" in str(error)


def _raises(*columns):
    raise ValueError("no rule for this value")


# Every place crossfade calls a user's transform: the op it belongs to, and how the error names it.
RAISING_TRANSFORMS = {
    "up": (lambda: visibility(up=_raises), "up for images.visibility"),
    "down": (lambda: visibility(down=_raises), "down for images.is_public"),
    "backfill": (lambda: ops.add_column("images", sa.Column("label", sa.String(20)), backfill=_raises),
                 "backfill for images.label"),
    "fill": (lambda: ops.drop_column("images", "name", fill=_raises), "fill for images.name"),
    "set_not_null fill": (lambda: ops.set_not_null("images", "size", fill=_raises), "fill for images.size"),
    "check": (lambda: ops.add_check("images", "ck_images_size", _raises), "check condition ck_images_size on images"),
}


@pytest.mark.parametrize("transform", sorted(RAISING_TRANSFORMS))
def test_a_transform_that_raises_is_a_transform_error_naming_the_op_and_the_error(images, transform):
    op, subject = RAISING_TRANSFORMS[transform]
    error = expand_refused(images, Change(op()), Exception)
    assert isinstance(error, TransformError), repr(error)
    assert str(error) == (f"{subject} raised ValueError: no rule for this value; fix the transform "
                          "(it receives SQLAlchemy column expressions, not values)")
    assert isinstance(error.error, ValueError)


@pytest.mark.parametrize("up", [
    lambda p: "public" if p else "shared",
    lambda p: p and "public",
    lambda p: sa.literal("public") if not p else sa.literal("shared"),
], ids=["if", "and", "not"])
def test_python_if_and_or_not_on_a_column_is_refused_with_the_sqlalchemy_way_to_say_it(images, up):
    error = expand_refused(images, Change(visibility(up=up)), TransformError)
    assert str(error).startswith("up for images.visibility uses Python's if / and / or / not on a column")
    assert "sa.case((condition, value), else_=other), sa.and_(...), sa.or_(...) or sa.not_(...)" in str(error)


@pytest.mark.parametrize("up", [
    lambda p: sa.func.crossfade_no_such_function(p),
    lambda p: sa.column("no_such_column"),
], ids=["missing-function", "missing-column"])
def test_transform_the_database_cannot_evaluate(images, up):
    error = expand_refused(images, Change(visibility(up=up)), TransformError)
    assert "images.visibility" in str(error) and images.dialect.name in str(error)


def test_broken_round_trip_names_a_counter_example(images):
    # True -> 'shared' -> ('shared' == 'public') = False: release N would read back False
    change = Change(visibility(up=lambda p: sa.case((p, "shared"), else_="private")))
    error = expand_refused(images, change, RoundTripError)
    assert error.table == "images" and error.columns == ("is_public",)
    assert error.value is True and error.up_value == "shared" and not error.back_value
    assert "images.is_public" in str(error) and "a=True" in str(error) and "'shared'" in str(error)


def test_lossy_round_trip_on_strings(images):
    # release N can store 'public'; a three-letter prefix loses it
    change = Change(ops.replace_column("images", "name", sa.Column("title", sa.String(50)),
                                       up=lambda n: sa.func.substr(n, 1, 3), down=lambda t: t))
    error = expand_refused(images, change, RoundTripError)
    assert "images.name" in str(error) and "'public'" in str(error) and "'pub'" in str(error)


def test_lossy_round_trip_in_letter_case(images, request):
    # release N can store 'Hello, World'; lower() loses it
    change = Change(ops.replace_column("images", "name", sa.Column("title", sa.String(50)),
                                       up=lambda n: sa.func.lower(n), down=lambda t: t))
    error = expand_refused(images, change, RoundTripError)
    assert "images.name" in str(error) and "Hello, World" in str(error)


@pytest.mark.parametrize("pair", [
    lambda: (ops.rename_column("images", "name", "title"),  # name synced by two groups
             visibility(name="label", old="name", up=lambda n: n, down=lambda t: t)),
    lambda: (ops.drop_column("images", "size", fill=1), ops.set_not_null("images", "size", fill=0)),  # two fills
    lambda: (ops.rename_column("images", "name", "title"),  # title added twice
             ops.add_column("images", sa.Column("title", sa.String(50)))),
    lambda: (ops.add_column("images", sa.Column("label", sa.String(50))),  # added twice, no sync rule
             ops.add_column("images", sa.Column("label", sa.Integer))),
], ids=["two-groups", "two-fills", "add-same-column", "add-same-column-twice"])
def test_two_ops_fighting_over_one_column(images, pair):
    error = expand_refused(images, Change(*pair()), ValidationError)
    assert isinstance(error, ColumnAlreadySyncedError), repr(error)
    assert error.table == "images" and f"images.{error.column}" in str(error)


def test_table_busy_with_another_change(images):
    Runner(images).expand(Change(visibility(), id="first"))
    second = Change(ops.rename_column("images", "name", "title"), id="second")
    error = expand_refused(images, second, TableBusyError, state_table_exists=True)
    assert "'images'" in str(error) and "'first'" in str(error)


def test_foreign_trigger_refused_by_preflight(images):
    with images.begin() as conn:
        if images.dialect.name == "postgresql":
            conn.exec_driver_sql("CREATE FUNCTION audit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$")
            conn.exec_driver_sql("CREATE TRIGGER audit_images BEFORE UPDATE ON images FOR EACH ROW EXECUTE FUNCTION audit()")
        elif images.dialect.name == "sqlite":
            conn.exec_driver_sql("CREATE TRIGGER audit_images AFTER UPDATE ON images BEGIN SELECT 1; END")
        else:
            conn.exec_driver_sql("CREATE TRIGGER audit_images BEFORE UPDATE ON images FOR EACH ROW SET @x = 1")
    error = expand_refused(images, Change(visibility()), PreflightError)
    assert "audit_images" in str(error) and "'images'" in str(error)


def test_change_without_ops_or_with_a_bad_id():
    with pytest.raises(ValidationError):
        Change()
    with pytest.raises(ValidationError, match="not a crossfade operation"):
        Change("drop table images")
    with pytest.raises(ValidationError, match="change id"):
        Change(ops.drop_column("images", "size"), id="no spaces; DROP TABLE")


def test_a_database_crossfade_does_not_support_is_a_clear_error():
    from sqlalchemy.dialects import mssql

    from crossfade.dialects import for_dialect, offline
    from crossfade.errors import UnsupportedDialectError

    with pytest.raises(UnsupportedDialectError, match="not mssql"):
        for_dialect(mssql.dialect())
    with pytest.raises(UnsupportedDialectError, match="unknown dialect 'oracle'"):
        offline("oracle")
