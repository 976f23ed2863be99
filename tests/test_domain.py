"""The round-trip law over the old column type's whole domain (issue 11, finding 4).

`DECIMAL(38,10)` -> `BIGINT` cents with scaled/unscaled by 100 passed the sample values, and
release N writing 0.001 after expand silently got 0 cents. crossfade now draws the edges of the
declared type (crossfade.domain) and refuses before DDL with the simplest counter-example, unless
the op is marked lossy on purpose; and it checks every row already in the table, refusing with the
rows that would break the sync law.
"""

from __future__ import annotations

import datetime as dt
import decimal

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import mysql

from crossfade import Change, ops
from crossfade import transforms as tf
from crossfade.dialects import for_dialect
from crossfade.domain import edge_values
from crossfade.errors import ExistingRowsError, RoundTripError, TransformError
from crossfade.roundtrip import check_group, check_rows
from crossfade.runner import Runner
from crossfade.schema import Schema
from crossfade.sync import SyncGroup

D = decimal.Decimal


def create(engine: sa.Engine, old_type, rows: list = ()) -> sa.Table:
    metadata = sa.MetaData()
    table = sa.Table(
        "items",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("amount", old_type),
    )
    metadata.create_all(engine)
    if rows:
        with engine.begin() as conn:
            conn.execute(table.insert(), [{"id": i, "amount": v} for i, v in enumerate(rows, start=1)])
    return table


def state(engine: sa.Engine) -> dict:
    """What expand could touch: tables, columns and rows."""
    with engine.connect() as conn:
        inspector = sa.inspect(conn)
        tables = sorted(inspector.get_table_names())
        return {
            t: (
                [c["name"] for c in inspector.get_columns(t)],
                sorted(map(tuple, conn.exec_driver_sql(f"SELECT * FROM {t}")), key=repr),
            )
            for t in tables
        }


def cents(new_type=sa.BigInteger, lossy: bool = False) -> Change:
    return Change(
        ops.replace_column(
            "items",
            "amount",
            sa.Column("cents", new_type),
            up=lambda x: tf.scaled(x, 100),
            down=lambda n: tf.unscaled(n, 100),
            lossy=lossy,
        ),
        id="cents",
    )


# --- the finding -----------------------------------------------------------------------------


def test_decimal_38_10_to_bigint_cents_is_refused_with_0_001_before_any_ddl(engine):
    create(engine, sa.Numeric(38, 10), [D("12.34"), D("-0.05")])
    before = state(engine)
    with pytest.raises(RoundTripError) as caught:
        Runner(engine).expand(cents())
    assert caught.value.value == D("0.001") and caught.value.up_value == 0
    assert caught.value.back_value == 0
    assert "a=Decimal('0.0010000000')" in str(caught.value) and "lossy=True" in str(caught.value)
    assert state(engine) == before  # no column, no trigger, no crossfade_state


def test_decimal_38_10_to_bigint_cents_is_accepted_when_marked_lossy(engine):
    table = create(engine, sa.Numeric(38, 10), [D("12.34"), D("-0.05"), None])
    change = cents(lossy=True)
    Runner(engine).expand(change)
    both = sa.Table("items", sa.MetaData(), autoload_with=engine)
    with engine.begin() as conn:  # release N writes through the triggers
        conn.execute(table.insert(), [{"id": 10, "amount": D("99.99")}])
        rows = {r.id: r for r in conn.execute(sa.select(both))}
    assert rows[10].cents == 9999
    Runner(engine).migrate(change)
    with engine.connect() as conn:
        assert dict(conn.execute(sa.select(both.c.id, both.c.cents)).all()) == {1: 1234, 2: -5, 3: None, 10: 9999}


def test_a_lossy_change_contracts_after_release_n_writes_a_value_it_loses(engine):
    """The data check before contract holds a lossy group to B = up(A) where A = down(B) fails:
    release N's 0.001 stays in A, 0 cents in B, and contract goes ahead as the user chose."""
    table = create(engine, sa.Numeric(38, 10), [D("12.34")])
    change = cents(lossy=True)
    Runner(engine).expand(change)
    with engine.begin() as conn:
        conn.execute(table.insert(), [{"id": 2, "amount": D("0.001")}])
    Runner(engine).migrate(change)
    Runner(engine).contract(change)
    after = sa.Table("items", sa.MetaData(), autoload_with=engine)
    with engine.connect() as conn:
        assert dict(conn.execute(sa.select(after.c.id, after.c.cents)).all()) == {1: 1234, 2: 0}


def test_lossy_still_refuses_rows_already_in_the_table_that_would_lose_their_value(engine):
    create(engine, sa.Numeric(38, 10), [D("12.34"), D("0.005"), D("7"), D("-7.001")])
    before = state(engine)
    with pytest.raises(ExistingRowsError) as caught:
        Runner(engine).expand(cents(lossy=True))
    error = caught.value
    assert error.rows == 2 and error.keys == [2, 4]
    assert error.value == D("0.005") and error.back_value in (D("0.01"), D("0.00"))
    assert "2 existing row(s) break it, keys 2, 4" in str(error)
    assert state(engine) == before


# --- a range of types, on every dialect ------------------------------------------------------

DATETIME6 = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
DAY_NUMBER = tf.per_dialect(
    postgresql="{0} - DATE '1970-01-01'",
    mysql="TO_DAYS({0}) - 719528",
    sqlite="CAST(julianday({0}) - 2440587.5 AS INTEGER)",
    type_=sa.Integer,
)
FROM_DAY_NUMBER = tf.per_dialect(
    postgresql="DATE '1970-01-01' + {0}", mysql="FROM_DAYS({0} + 719528)", sqlite="date(2440587.5 + {0})", type_=sa.Date
)
IDENTITY = (lambda a: a, lambda b: b)

# (old type, new type, up, down, the counter-example per dialect: None where the law holds)
CASES = {
    "decimal-to-wider-decimal": (sa.Numeric(12, 2), sa.Numeric(14, 2), *IDENTITY, {}),
    "decimal-with-3-places-to-cents": (
        sa.Numeric(12, 3),
        sa.BigInteger,
        lambda x: tf.scaled(x, 100),
        lambda n: tf.unscaled(n, 100),
        {"*": D("0.001")},
    ),
    "decimal-with-2-places-to-cents": (
        sa.Numeric(12, 2),
        sa.BigInteger,
        lambda x: tf.scaled(x, 100),
        lambda n: tf.unscaled(n, 100),
        {},
    ),
    "string-to-a-shorter-one": (
        sa.String(40),
        sa.String(20),
        *IDENTITY,  # SQLite does not enforce lengths
        {"postgresql": "x" * 40, "mysql": "x" * 40},
    ),
    "datetime-with-fractions-to-epoch-seconds": (
        DATETIME6,
        sa.BigInteger,
        tf.epoch_seconds,
        tf.from_epoch_seconds,
        {"*": dt.datetime(2024, 6, 1, 12, 0, 0, 500000)},
    ),
    "datetime-to-epoch-micros": (DATETIME6, sa.BigInteger, tf.epoch_micros, tf.from_epoch_micros, {}),
    "date-to-day-number": (sa.Date, sa.Integer, DAY_NUMBER, FROM_DAY_NUMBER, {}),
    "boolean-to-choice": (
        sa.Boolean,
        sa.String(8),
        lambda b: tf.bool_to_choice(b, "yes", "no"),
        lambda s: tf.choice_to_bool(s, "yes"),
        {},
    ),
    "double-to-cents": (
        sa.Float(53),
        sa.BigInteger,
        lambda x: tf.scaled(x, 100),
        lambda n: tf.unscaled(n, 100),
        {"*": 1.0e-30},
    ),
    "bigint-to-decimal-cents": (
        sa.BigInteger,
        sa.Numeric(30, 2),
        lambda n: tf.unscaled(n, 100),
        lambda x: tf.scaled(x, 100),
        {"sqlite": 2**53 + 1},
    ),
}


def law(engine: sa.Engine, old_type, new_type, up, down, lossy: bool = False) -> int:
    metadata = sa.MetaData()
    sa.Table(
        "items",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("old", old_type),
        sa.Column("new", new_type),
    )
    metadata.create_all(engine)
    with engine.connect() as conn:
        schema = Schema.reflect(conn, {"items"})
        group = SyncGroup("items", ("old",), ("new",), up, down, lossy)
        return check_group(conn, for_dialect(engine.dialect), schema, group)


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_law_is_checked_on_the_edges_of_the_old_type(engine, dialect_name, case):
    old_type, new_type, up, down, refused = CASES[case]
    expected = refused.get(dialect_name, refused.get("*"))
    if expected is None:
        assert law(engine, old_type, new_type, up, down) > 4
        return
    with pytest.raises((RoundTripError, TransformError)) as caught:
        law(engine, old_type, new_type, up, down)
    assert "lossy=True" in str(caught.value)
    if isinstance(caught.value, RoundTripError):
        assert caught.value.value == expected
    else:  # the database refused to convert it (an overflow)
        assert f"a={expected!r}" in str(caught.value)


def test_the_edges_are_values_the_column_holds(engine, dialect_name):
    """Every edge value drawn from a type is stored and read back unchanged by a real column."""
    for type_ in [
        sa.Numeric(38, 10),
        sa.Numeric(12, 2),
        sa.BigInteger,
        sa.SmallInteger,
        sa.String(12),
        sa.Date,
        DATETIME6,
        sa.Boolean,
        sa.Float(53),
    ]:
        metadata = sa.MetaData()
        table = sa.Table(
            "edges", metadata, sa.Column("id", sa.Integer, primary_key=True, autoincrement=False), sa.Column("v", type_)
        )
        metadata.create_all(engine)
        impl = sa.Table("edges", sa.MetaData(), autoload_with=engine).c.v.type
        values = edge_values(impl, dialect_name)
        assert values, type_
        with engine.begin() as conn:
            conn.execute(table.insert(), [{"id": i, "v": v} for i, v in enumerate(values)])
            back = conn.execute(sa.select(table.c.v).order_by(table.c.id)).scalars().all()
        metadata.drop_all(engine)
        assert back == values, type_


def test_existing_rows_are_checked_in_batches_and_counted_across_them(engine):
    create(engine, sa.Numeric(12, 3), [D("1.5"), D("0.001"), D("2"), D("3.125"), D("4"), D("5"), D("6.001")])
    with engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE items ADD COLUMN cents BIGINT")
    with engine.connect() as conn:
        schema = Schema.reflect(conn, {"items"})
        group = SyncGroup("items", ("amount",), ("cents",), lambda x: tf.scaled(x, 100), lambda n: tf.unscaled(n, 100))
        with pytest.raises(ExistingRowsError) as caught:
            check_rows(conn, for_dialect(engine.dialect), schema, group, batch=2)
    assert caught.value.rows == 3 and caught.value.keys == [2, 4, 7]
    assert caught.value.value == D("0.001")


def test_existing_rows_under_a_key_of_two_columns_are_checked_in_batches(engine):
    metadata = sa.MetaData()
    table = sa.Table(
        "items",
        metadata,
        sa.Column("shop", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("n", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("amount", sa.Numeric(12, 3)),
        sa.Column("cents", sa.BigInteger),
    )
    metadata.create_all(engine)
    amounts = {
        (1, 1): D("1.5"),
        (1, 2): D("0.001"),
        (2, 1): D("2"),
        (2, 2): D("3.125"),
        (3, 1): D("4"),
        (3, 2): D("6.001"),
        (3, 3): None,
    }
    with engine.begin() as conn:
        conn.execute(table.insert(), [{"shop": s, "n": n, "amount": v} for (s, n), v in amounts.items()])
    with engine.connect() as conn:
        schema = Schema.reflect(conn, {"items"})
        group = SyncGroup("items", ("amount",), ("cents",), lambda x: tf.scaled(x, 100), lambda n: tf.unscaled(n, 100))
        with pytest.raises(ExistingRowsError) as caught:
            check_rows(conn, for_dialect(engine.dialect), schema, group, batch=2)
    assert caught.value.rows == 3 and caught.value.keys == [(1, 2), (2, 2), (3, 2)]
