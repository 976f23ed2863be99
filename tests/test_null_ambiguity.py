"""Issue 10, finding 2: release N+1's NULL is never lost (DESIGN 2, "The NULL ambiguity").

orders.amount (Numeric, nullable) becomes orders.amount_cents (BigInteger, nullable). After
expand, release N+1 ran `UPDATE orders SET amount_cents = NULL WHERE id = 3` on a row the
backfill had not reached: nothing changed, no trigger acted, release N still read the old amount,
and migrate then wrote up(amount) over the NULL. Now release N+1 either identifies its writes
(PostgreSQL, MariaDB) and may start after expand, or starts after migrate (crossfade says so),
and the shapes that stay ambiguous are refused before any DDL.
"""

from __future__ import annotations

import decimal

import pytest
import sqlalchemy as sa

from crossfade import Change, Runner, identify_new_release, ops, transforms
from crossfade.errors import AmbiguousNullError

AMOUNTS = {1: decimal.Decimal("10.50"), 2: None, 3: decimal.Decimal("3.25"), 4: decimal.Decimal("7.00"), 5: None}
SET_NULL = "UPDATE orders SET amount_cents = NULL WHERE id = 3"


def orders(engine: sa.Engine, *, nullable: bool = True, server_default: str | None = None) -> sa.Table:
    metadata = sa.MetaData()
    table = sa.Table("orders", metadata, sa.Column("id", sa.Integer, primary_key=True),
                     sa.Column("amount", sa.Numeric(12, 2), nullable=nullable, server_default=server_default),
                     sa.Column("note", sa.String(20)))
    metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(table.insert(), [{"id": i, "amount": a if a is not None or nullable else 0}
                                      for i, a in AMOUNTS.items()])
    return table


def cents_change(*, identified: bool, down=None) -> Change:
    return Change(ops.replace_column(
        "orders", "amount", sa.Column("amount_cents", sa.BigInteger, nullable=True),
        up=lambda amount: transforms.scaled(amount, 100),
        down=down or (lambda cents: transforms.unscaled(cents, 100))),
        id="amount_to_cents", new_release_identified=identified)


def release_n1(engine: sa.Engine, identified: bool) -> sa.Engine:
    other = sa.create_engine(engine.url.render_as_string(hide_password=False))
    if identified:
        identify_new_release(other)
    return other


def row(engine: sa.Engine, row_id: int) -> tuple:
    with engine.connect() as conn:
        return tuple(conn.execute(sa.text(f"SELECT amount, amount_cents FROM orders WHERE id = {row_id}")).one())


def write(engine: sa.Engine, sql: str) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text(sql))


@pytest.fixture(params=["postgresql", "mysql"])
def identifying(request, tmp_path):
    from conftest import make_engine

    engine = make_engine(request.param, tmp_path)
    yield engine
    engine.dispose()


def test_identified_release_n1_null_on_a_row_not_backfilled_survives_migrate(identifying):
    orders(identifying)
    change = cents_change(identified=True)
    runner = Runner(identifying)
    runner.expand(change)
    assert change.new_release_starts_after(identifying.dialect.name) == "expand"
    assert runner.status(change).new_release == "may start now"
    n1 = release_n1(identifying, identified=True)
    try:
        write(n1, SET_NULL)  # row 3: amount 3.25, amount_cents still NULL (not backfilled)
        assert row(identifying, 3) == (None, None)  # release N reads N+1's NULL at once
        runner.migrate(change)
    finally:
        n1.dispose()
    assert row(identifying, 3) == (None, None)
    assert row(identifying, 1) == (decimal.Decimal("10.50"), 1050)
    assert runner.problems(change) == []


def test_identified_release_n1_insert_and_update_of_null_are_authoritative(identifying):
    orders(identifying)
    change = cents_change(identified=True)
    runner = Runner(identifying)
    runner.expand(change)
    n1 = release_n1(identifying, identified=True)
    try:
        write(n1, "INSERT INTO orders (id, amount_cents) VALUES (10, NULL)")
        write(n1, "UPDATE orders SET amount_cents = 999 WHERE id = 1")
        write(n1, "UPDATE orders SET note = 'x', amount_cents = NULL WHERE id = 4")
        write(identifying, "UPDATE orders SET note = 'y' WHERE id = 4")  # release N, unrelated
        runner.migrate(change)
    finally:
        n1.dispose()
    assert row(identifying, 10) == (None, None)
    assert row(identifying, 1) == (decimal.Decimal("9.99"), 999)
    assert row(identifying, 4) == (None, None)
    assert row(identifying, 5) == (None, None)


def test_release_n_writes_still_drive_the_new_column_with_identification_installed(identifying):
    orders(identifying)
    change = cents_change(identified=True)
    runner = Runner(identifying)
    runner.expand(change)
    write(identifying, "UPDATE orders SET amount_cents = NULL WHERE id = 3")  # not release N+1: no-op
    write(identifying, "UPDATE orders SET amount = 4.50 WHERE id = 3")
    write(identifying, "INSERT INTO orders (id, amount) VALUES (11, 1.25)")
    assert row(identifying, 3) == (decimal.Decimal("4.50"), 450)
    assert row(identifying, 11) == (decimal.Decimal("1.25"), 125)


def test_without_identification_release_n1_starts_after_migrate_and_its_null_holds(engine):
    orders(engine)
    change = cents_change(identified=engine.dialect.name == "sqlite")  # SQLite cannot identify
    runner = Runner(engine)
    assert change.new_release_starts_after(engine.dialect.name) == "migrate"
    runner.expand(change)
    assert runner.status(change).new_release == "may start after migrate"
    runner.migrate(change)
    assert runner.status(change).new_release == "may start now"
    n1 = release_n1(engine, identified=False)
    try:
        write(n1, SET_NULL)
        write(n1, "INSERT INTO orders (id, amount_cents) VALUES (10, NULL)")
    finally:
        n1.dispose()
    assert row(engine, 3) == (None, None)
    assert row(engine, 10) == (None, None)
    runner.contract(change)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT amount_cents FROM orders WHERE id = 3")).scalar() is None


def test_check_and_status_say_when_release_n1_may_start(engine, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from crossfade.cli import app

    orders(engine)
    module = tmp_path / "cents.py"
    module.write_text(
        "import sqlalchemy as sa\nfrom crossfade import Change, ops, transforms\n"
        "change = Change(ops.replace_column('orders', 'amount', sa.Column('amount_cents', sa.BigInteger),\n"
        "    up=lambda a: transforms.scaled(a, 100), down=lambda c: transforms.unscaled(c, 100)), id='cents')\n")
    url = engine.url.render_as_string(hide_password=False)
    cli = CliRunner()
    assert cli.invoke(app, ["expand", str(module), "--url", url]).exit_code == 0
    checked = cli.invoke(app, ["check", str(module), "--url", url])
    assert "release N+1 may start after migrate" in checked.output
    status = cli.invoke(app, ["status", str(module), "--url", url])
    assert "may start after migrate" in status.output
    assert cli.invoke(app, ["migrate", str(module), "--url", url]).exit_code == 0
    assert "release N+1 may start now" in cli.invoke(app, ["check", str(module), "--url", url]).output


# --- refused before any DDL ----------------------------------------------------------------------

def untouched(engine: sa.Engine) -> bool:
    inspector = sa.inspect(engine)
    return ("amount_cents" not in {c["name"] for c in inspector.get_columns("orders")}
            and "crossfade_state" not in inspector.get_table_names())


def test_down_of_null_into_a_not_null_old_column_is_refused(engine):
    orders(engine, nullable=False)
    with pytest.raises(AmbiguousNullError, match=r"down\(NULL\) gives NULL for orders.amount.*NOT NULL"):
        Runner(engine).expand(cents_change(identified=True))
    assert untouched(engine)


def test_null_that_up_does_not_give_back_is_refused(engine):
    orders(engine, nullable=False)
    change = cents_change(identified=True, down=lambda c: sa.func.coalesce(transforms.unscaled(c, 100), 0))
    with pytest.raises(AmbiguousNullError, match=r"up\(down\(NULL\)\) = 0.*backfill"):
        Runner(engine).expand(change)
    assert untouched(engine)


def test_a_sentinel_that_round_trips_null_is_accepted(engine):
    orders(engine, nullable=False)
    sentinel = Change(ops.replace_column(
        "orders", "amount", sa.Column("amount_cents", sa.BigInteger, nullable=True),
        up=lambda a: sa.case((a == -1, sa.null()), else_=transforms.scaled(a, 100)),
        down=lambda c: sa.func.coalesce(transforms.unscaled(c, 100), -1)), id="sentinel", new_release_identified=True)
    Runner(engine).expand(sentinel)


def test_nullable_new_column_over_an_old_default_is_refused_without_identification(engine):
    orders(engine, server_default="0")
    with pytest.raises(AmbiguousNullError, match=r"orders.amount_cents.*identify_new_release.*NOT NULL"):
        Runner(engine).expand(cents_change(identified=False))
    assert untouched(engine)


def test_nullable_new_column_over_an_old_default_needs_a_database_that_identifies(engine):
    orders(engine, server_default="0")
    runner = Runner(engine)
    if engine.dialect.name == "sqlite":
        with pytest.raises(AmbiguousNullError):
            runner.expand(cents_change(identified=True))
        assert untouched(engine)
        return
    runner.expand(cents_change(identified=True))
    n1 = release_n1(engine, identified=True)
    try:
        write(n1, "INSERT INTO orders (id, amount_cents) VALUES (10, NULL)")
    finally:
        n1.dispose()
    assert row(engine, 10) == (None, None)


# --- MariaDB: which columns an UPDATE names (a trigger there cannot see it) ----------------------

@pytest.mark.parametrize(("sql", "named"), [
    ("UPDATE orders SET amount_cents=%(amount_cents)s WHERE orders.id = %(id_1)s", ("orders", ["amount_cents"])),
    ("UPDATE `or``d` SET `a`=coalesce(x, 1), orders.b = f(1, 2) WHERE c = (1)", ("or`d", ["a", "b"])),
    ("update shop.orders set a = 'x, y = z', b = 2 ORDER BY id LIMIT 1", ("orders", ["a", "b"])),
    ("UPDATE LOW_PRIORITY orders SET note = NULL", ("orders", ["note"])),
    ("SELECT 1", None),
    ("INSERT INTO orders (id) VALUES (1)", None),
])
def test_an_update_statement_names_its_set_columns(sql, named):
    from crossfade.identification import updated_columns

    assert updated_columns(sql) == named


def test_release_n1_update_naming_the_new_column_through_the_orm_is_identified(identifying):
    """The ORM's own UPDATE (bound parameters, executemany for several rows) carries the mark."""
    orders(identifying)
    Runner(identifying).expand(cents_change(identified=True))
    n1 = release_n1(identifying, identified=True)
    cents = sa.Table("orders", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True),
                     sa.Column("amount_cents", sa.BigInteger))
    try:
        with n1.begin() as conn:
            conn.execute(cents.update().where(cents.c.id == sa.bindparam("key")).values(amount_cents=sa.bindparam("c")),
                         [{"key": 1, "c": None}, {"key": 3, "c": None}])
    finally:
        n1.dispose()
    assert row(identifying, 1) == (None, None) and row(identifying, 3) == (None, None)


def test_release_n1_starts_after_expand_only_where_the_database_and_every_op_follow_identification():
    cents = cents_change(identified=True)
    assert [cents.new_release_starts_after(d) for d in ("postgresql", "mysql", "mariadb", "sqlite")] == [
        "expand", "expand", "expand", "migrate"]
    assert cents_change(identified=False).new_release_starts_after("postgresql") == "migrate"
    moved = Change(ops.move_column("users", "org_name", to="orgs", via="org_id", new="name"),
                   new_release_identified=True)  # its "not derived yet" lives in orgs, unmarked
    assert moved.new_release_starts_after("postgresql") == "migrate"
