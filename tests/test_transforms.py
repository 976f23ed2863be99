"""Portable transforms (crossfade.transforms): each one evaluated in the database, each pair held
to the round-trip law by crossfade's own checker, and two pairs taken through a whole rolling
upgrade: expand, writes by release N and release N+1 through the triggers, migrate, contract.
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
from crossfade.errors import RoundTripError, TransformError
from crossfade.roundtrip import check_group
from crossfade.runner import Runner
from crossfade.schema import Schema
from crossfade.sync import SyncGroup

EPOCH = dt.datetime(1970, 1, 1)
# MySQL's DATETIME drops fractions unless told to keep microseconds.
DATETIME = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
SECOND, MICROSECOND = dt.timedelta(seconds=1), dt.timedelta(microseconds=1)

DATETIMES = [
    EPOCH,
    EPOCH - MICROSECOND,
    dt.datetime(1969, 12, 31, 23, 59, 59, 500000),
    dt.datetime(2000, 1, 1),
    dt.datetime(2026, 11, 25, 13, 45, 30, 123456),
    dt.datetime(1901, 12, 13, 20, 45, 52),  # -2**31 seconds
    dt.datetime(1000, 1, 1, 0, 0, 0, 1),
    dt.datetime(9999, 12, 31, 23, 59, 59, 999999),
    None,
]
# Without a separator, empty, only separators, at either end, several, multibyte, quotes.
STRINGS = ["Ada Lovelace", "Plato", "", " ", "  ", " lead", "trail ", "Jean Paul Sartre", "üñî ñ", "it's me",
           "50% off", None]


def evaluate(engine: sa.Engine, columns: dict, rows: list[tuple], transform) -> list:
    """`transform` applied by the database to each row of a real table with `columns`, in order.

    Run twice, and both must agree: with values bound, and compiled with every value inlined as
    in a trigger body. PostgreSQL and MySQL sessions run in a time zone far from UTC, so that no
    transform can lean on the session's zone.
    """
    metadata = sa.MetaData()
    table = sa.Table("samples", metadata, sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
                     *[sa.Column(name, type_) for name, type_ in columns.items()])
    metadata.create_all(engine)
    query = sa.select(transform(*[table.c[n] for n in columns]).label("result")).order_by(table.c.id)
    try:
        with engine.begin() as conn:
            conn.execute(table.insert(), [{"id": i, **dict(zip(columns, row))} for i, row in enumerate(rows)])
            if engine.dialect.name == "postgresql":
                conn.exec_driver_sql("SET TIME ZONE 'Asia/Kathmandu'")
            elif engine.dialect.name in ("mysql", "mariadb"):
                conn.exec_driver_sql("SET time_zone = '+05:45'")
            bound = conn.execute(query).scalars().all()
            inlined = conn.exec_driver_sql(str(query.compile(conn, compile_kwargs={"literal_binds": True})))
            column_type = inlined.cursor.description[0][1]
            raw = inlined.scalars().all()
    finally:
        metadata.drop_all(engine)
    result_type = query.selected_columns[0].type.dialect_impl(engine.dialect)
    process = result_type.result_processor(engine.dialect, column_type) or (lambda v: v)
    assert [process(v) for v in raw] == bound
    return bound


def law(engine: sa.Engine, columns: dict, old: tuple[str, ...], new: tuple[str, ...], up, down,
        rows: list[tuple] = (), nullable: bool = True, lossy: bool = False) -> int:
    """crossfade's round-trip checker on a real table holding both forms and `rows` of old values
    (which it checks besides the type's own sample values and the edges of its domain unless
    `lossy`, and NULL when the old columns are `nullable`). Returns how many values held."""
    metadata = sa.MetaData()
    table = sa.Table("items", metadata, sa.Column("id", sa.Integer, primary_key=True),
                     *[sa.Column(name, type_, nullable=nullable or name not in old) for name, type_ in columns.items()])
    metadata.create_all(engine)
    with engine.begin() as conn:
        if rows:
            conn.execute(table.insert(), [dict(zip(old, row)) for row in rows])
    with engine.connect() as conn:
        schema = Schema.reflect(conn, {"items"})
        return check_group(conn, for_dialect(engine.dialect), schema, SyncGroup("items", old, new, up, down, lossy))


# --- datetime <-> epoch ----------------------------------------------------------------------

def test_epoch_seconds_floors_the_seconds_since_1970_whatever_the_session_time_zone(engine):
    result = evaluate(engine, {"at": DATETIME}, [(v,) for v in DATETIMES], tf.epoch_seconds)
    assert result == [None if v is None else (v - EPOCH) // SECOND for v in DATETIMES]
    assert result[:3] == [0, -1, -1] and result[5] == -2**31


def test_epoch_micros_counts_every_microsecond(engine):
    result = evaluate(engine, {"at": DATETIME}, [(v,) for v in DATETIMES], tf.epoch_micros)
    assert result == [None if v is None else (v - EPOCH) // MICROSECOND for v in DATETIMES]
    assert result[-2] == 253402300799999999


def test_from_epoch_seconds_gives_naive_utc_datetimes(engine):
    seconds = [0, 1, -1, 946684800, 2**31 - 1, -2**31, 253402300799, -30610224000, None]
    result = evaluate(engine, {"n": sa.BigInteger}, [(n,) for n in seconds], tf.from_epoch_seconds)
    assert result == [None if n is None else EPOCH + n * SECOND for n in seconds]


def test_from_epoch_micros_gives_naive_utc_datetimes_to_the_microsecond(engine):
    micros = [0, 1, -1, -500000, 999999, -1000001, 1795527930123456, 253402300799999999,
              -30610223999999999, None]
    result = evaluate(engine, {"n": sa.BigInteger}, [(n,) for n in micros], tf.from_epoch_micros)
    assert result == [None if n is None else EPOCH + n * MICROSECOND for n in micros]


def test_datetime_to_epoch_obeys_the_round_trip_law(engine):
    whole_seconds = [(v,) for v in DATETIMES if v is not None and not v.microsecond]
    # lossy: the column's type holds fractions of a second, which epoch_seconds drops
    assert law(engine, {"at": DATETIME, "at_s": sa.BigInteger}, ("at",), ("at_s",),
               tf.epoch_seconds, tf.from_epoch_seconds, whole_seconds, lossy=True) >= len(whole_seconds)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE items")
    every = [(v,) for v in DATETIMES if v is not None]
    assert law(engine, {"at": DATETIME, "at_us": sa.BigInteger}, ("at",), ("at_us",),
               tf.epoch_micros, tf.from_epoch_micros, every) >= len(every)


@pytest.mark.parametrize("to_datetime, to_number, values", [
    (tf.from_epoch_seconds, tf.epoch_seconds, [0, -1, 2**31 - 1, -2**31, 253402300799, -30610224000, None]),
    (tf.from_epoch_micros, tf.epoch_micros, [0, -1, -500000, 253402300799999999, -30610223999999999, None]),
], ids=["seconds", "micros"])
def test_epoch_to_datetime_and_back_gives_every_integer(engine, to_datetime, to_number, values):
    assert evaluate(engine, {"n": sa.BigInteger}, [(v,) for v in values], lambda n: to_number(to_datetime(n))) == values


@pytest.mark.parametrize("to_datetime, to_number, values", [
    (tf.from_epoch_seconds, tf.epoch_seconds, [253402300799, -30610224000]),
    (tf.from_epoch_micros, tf.epoch_micros, [-500000, 253402300799999999, -30610223999999999]),
], ids=["seconds", "micros"])
def test_epoch_to_datetime_obeys_the_round_trip_law(engine, to_datetime, to_number, values):
    # lossy: a BIGINT holds epochs past the year 9999; the rows in the datetime range round-trip
    assert law(engine, {"n": sa.BigInteger, "at": DATETIME}, ("n",), ("at",), to_datetime, to_number,
               [(v,) for v in values], lossy=True) >= 7


def test_epoch_seconds_refuses_a_column_holding_fractional_seconds(engine):
    with pytest.raises(RoundTripError) as caught:
        law(engine, {"at": DATETIME, "at_s": sa.BigInteger}, ("at",), ("at_s",),
            tf.epoch_seconds, tf.from_epoch_seconds, [(dt.datetime(2026, 11, 25, 13, 45, 30, 250000),)])
    assert caught.value.value == dt.datetime(2026, 11, 25, 13, 45, 30, 250000)
    assert caught.value.back_value == dt.datetime(2026, 11, 25, 13, 45, 30)


# --- boolean <-> choice ----------------------------------------------------------------------

def test_bool_to_choice_names_each_boolean_and_keeps_null(engine):
    result = evaluate(engine, {"b": sa.Boolean}, [(True,), (False,), (None,)],
                      lambda b: tf.bool_to_choice(b, "it's public", "shared"))
    assert result == ["it's public", "shared", None]


def test_choice_to_bool_is_true_for_exactly_the_true_value(engine):
    values = ["public", "shared", "community", "Public", "public ", "", None]
    result = evaluate(engine, {"s": sa.String(16)}, [(v,) for v in values], lambda s: tf.choice_to_bool(s, "public"))
    assert result == [True, False, False, False, False, False, None]


def test_boolean_to_choice_obeys_the_round_trip_law_but_not_the_other_way(engine):
    assert law(engine, {"is_public": sa.Boolean, "visibility": sa.String(16)}, ("is_public",), ("visibility",),
               lambda b: tf.bool_to_choice(b, "public", "shared"), lambda s: tf.choice_to_bool(s, "public"),
               nullable=False) >= 2
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE items")
    with pytest.raises(RoundTripError):  # 'community' comes back as 'shared'
        law(engine, {"visibility": sa.String(16), "is_public": sa.Boolean}, ("visibility",), ("is_public",),
            lambda s: tf.choice_to_bool(s, "public"), lambda b: tf.bool_to_choice(b, "public", "shared"))


def test_a_nullable_boolean_round_trips_its_null_too(engine):
    assert law(engine, {"is_public": sa.Boolean, "visibility": sa.String(16)}, ("is_public",), ("visibility",),
               lambda b: tf.bool_to_choice(b, "public", "shared"), lambda s: tf.choice_to_bool(s, "public")) >= 3


# --- join and split --------------------------------------------------------------------------

@pytest.mark.parametrize("sep", [" ", ", ", "x"])
def test_before_and_after_split_at_the_first_separator(engine, sep):
    values = [None if s is None else s.replace(" ", sep) for s in STRINGS] + ["aXb"]
    rows = [(v,) for v in values]
    assert evaluate(engine, {"s": sa.String(40)}, rows, lambda s: tf.before(s, sep)) == [
        None if v is None else v.partition(sep)[0] for v in values]
    assert evaluate(engine, {"s": sa.String(40)}, rows, lambda s: tf.after(s, sep)) == [
        v.partition(sep)[2] if v is not None and sep in v else None for v in values]
    # "aXb" has no "x": the separator's case counts, on MySQL too.


def test_join_skips_null_parts_but_keeps_empty_ones(engine):
    rows = [("a", "b", "c"), ("a", None, "c"), (None, "b", None), ("", None, None), ("", "", ""),
            (None, None, None), ("it's", "50%", "ü")]
    columns = {"p": sa.String(10), "q": sa.String(10), "r": sa.String(10)}
    result = evaluate(engine, columns, rows, lambda p, q, r: tf.join(" - ", p, q, r))
    assert result == ["a - b - c", "a - c", "b", "", " -  - ", None, "it's - 50% - ü"]


@pytest.mark.parametrize("sep", [" ", ", ", "%"])
def test_join_of_before_and_after_gives_back_every_string(engine, sep):
    values = [None if s is None else s.replace(" ", sep) for s in STRINGS]
    result = evaluate(engine, {"s": sa.String(40)}, [(v,) for v in values],
                      lambda s: tf.join(sep, tf.before(s, sep), tf.after(s, sep)))
    assert result == values


def test_split_and_join_obey_the_round_trip_law(engine):
    checked = law(engine, {"full_name": sa.String(40), "first": sa.String(40), "rest": sa.String(40)},
                  ("full_name",), ("first", "rest"), lambda s: (tf.before(s, " "), tf.after(s, " ")),
                  lambda first, rest: tf.join(" ", first, rest), [(s,) for s in STRINGS if s is not None])
    assert checked >= len(STRINGS)


def test_an_empty_separator_is_refused():
    with pytest.raises(ValueError, match="non-empty"):
        tf.before(sa.column("s"), "")
    with pytest.raises(TypeError, match="at least one part"):
        tf.join(" ")


# --- case folding ----------------------------------------------------------------------------

def test_lower_and_upper_fold_ascii_letters_on_every_dialect(engine):
    values = [("Hello, World 42",), ("",), (None,)]
    assert evaluate(engine, {"s": sa.String(20)}, values, tf.lower) == ["hello, world 42", "", None]
    assert evaluate(engine, {"s": sa.String(20)}, values, tf.upper) == ["HELLO, WORLD 42", "", None]


def test_case_folding_does_not_round_trip_and_the_checker_says_so(engine):
    with pytest.raises(RoundTripError) as caught:
        law(engine, {"email": sa.String(40), "email_key": sa.String(40)}, ("email",), ("email_key",),
            tf.lower, lambda key: key)
    assert caught.value.value == "Hello, World"


# --- numeric scaling -------------------------------------------------------------------------

def test_scaled_rounds_amounts_to_integer_cents(engine):
    amounts = [decimal.Decimal(v) for v in ("12.34", "-0.05", "0", "1000000.99", "0.10")] + [None]
    assert evaluate(engine, {"x": sa.Numeric(12, 2)}, [(v,) for v in amounts],
                    lambda x: tf.scaled(x, 100)) == [1234, -5, 0, 100000099, 10, None]
    floats = [0.1, 1.1, -2.25, 12.34, 0.29, None]
    assert evaluate(engine, {"x": sa.Float(53)}, [(v,) for v in floats],
                    lambda x: tf.scaled(x, 100)) == [10, 110, -225, 1234, 29, None]


def test_unscaled_gives_exact_decimals(engine):
    cents = [1234, -5, 0, 3, 100000099, None]
    result = evaluate(engine, {"n": sa.BigInteger}, [(v,) for v in cents], lambda n: tf.unscaled(n, 100))
    assert result == [None if n is None else decimal.Decimal(n) / 100 for n in cents]
    micros = evaluate(engine, {"n": sa.BigInteger}, [(1234567,), (-1,)], lambda n: tf.unscaled(n, 10**6))
    assert micros == [decimal.Decimal("1.234567"), decimal.Decimal("-0.000001")]


@pytest.mark.parametrize("amount, cents", [
    (sa.Numeric(12, 2), sa.BigInteger),
    (sa.Float(53), sa.BigInteger),
    (sa.Integer, sa.Numeric(14, 2)),
], ids=["decimal-to-cents", "float-to-cents", "cents-to-decimal"])
def test_scaling_obeys_the_round_trip_law(engine, amount, cents):
    up, down = (lambda x: tf.scaled(x, 100)), (lambda n: tf.unscaled(n, 100))
    rows = [(decimal.Decimal("0.29"),), (decimal.Decimal("-12345.67"),), (decimal.Decimal("0.07"),)]
    if amount is sa.Integer:
        up, down, rows = down, up, [(7,), (-123456789,)]
    # lossy for a float: it holds 1e-30 and 2**53, which no integer number of cents keeps
    assert law(engine, {"amount": amount, "cents": cents}, ("amount",), ("cents",), up, down, rows,
               nullable=False, lossy=isinstance(amount, sa.Float)) >= 6


def test_the_checker_reads_a_large_double_back_exactly(engine):
    assert law(engine, {"amount": sa.Float(53), "cents": sa.BigInteger}, ("amount",), ("cents",),
               lambda x: tf.scaled(x, 100), lambda n: tf.unscaled(n, 100), [(-1234567.89,)], nullable=False,
               lossy=True) >= 5


def test_scaling_refuses_amounts_with_more_decimals_than_the_factor_keeps(engine):
    with pytest.raises(RoundTripError) as caught:
        law(engine, {"amount": sa.Numeric(12, 3), "cents": sa.BigInteger}, ("amount",), ("cents",),
            lambda x: tf.scaled(x, 100), lambda n: tf.unscaled(n, 100), [(decimal.Decimal("1.005"),)],
            nullable=False)
    assert caught.value.value == decimal.Decimal("1.005")


@pytest.mark.parametrize("factor", [0, -100, 3, 2.5, True])
def test_a_factor_without_an_exact_decimal_inverse_is_refused(factor):
    with pytest.raises(ValueError, match="factor"):
        tf.unscaled(sa.column("n"), factor)


# --- per-dialect SQL -------------------------------------------------------------------------

DAY_NUMBER = tf.per_dialect(  # days since 1970-01-01
    postgresql="{0} - DATE '1970-01-01'",
    mysql="TO_DAYS({0}) - 719528",
    sqlite="CAST(julianday({0}) - 2440587.5 AS INTEGER)",
    type_=sa.Integer,
)
FROM_DAY_NUMBER = tf.per_dialect(
    postgresql="DATE '1970-01-01' + {0}",
    mysql="FROM_DAYS({0} + 719528)",
    sqlite="date(2440587.5 + {0})",
    type_=sa.Date,
)


def test_per_dialect_sql_substitutes_the_compiled_arguments(engine):
    days = [dt.date(1970, 1, 1), dt.date(1969, 12, 31), dt.date(2026, 11, 25), None]
    assert evaluate(engine, {"day": sa.Date}, [(d,) for d in days], DAY_NUMBER) == [0, -1, 20782, None]
    both = tf.per_dialect("{0} * 10 + {1}", sqlite="({0} * 10) + {1}", type_=sa.Integer)
    assert evaluate(engine, {"a": sa.Integer, "b": sa.Integer}, [(1, 2), (3, None)],
                    lambda a, b: both(a + 1, b)) == [22, None]


def test_per_dialect_transforms_are_held_to_the_round_trip_law_like_any_other(engine):
    rows = [(dt.date(1901, 1, 1),), (dt.date(9999, 12, 31),)]
    assert law(engine, {"day": sa.Date, "day_number": sa.Integer}, ("day",), ("day_number",),
               DAY_NUMBER, FROM_DAY_NUMBER, rows) >= 4
    off_by_one = tf.per_dialect("{0} + 1", type_=sa.Integer)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE items")
    with pytest.raises(RoundTripError):
        law(engine, {"day": sa.Date, "day_number": sa.Integer}, ("day",), ("day_number",),
            lambda day: off_by_one(DAY_NUMBER(day)), FROM_DAY_NUMBER)


def test_per_dialect_placeholders_are_checked_when_written_and_when_called():
    with pytest.raises(ValueError, match="placeholders"):
        tf.per_dialect("{x} + 1", type_=sa.Integer)
    with pytest.raises(ValueError, match="literal braces"):
        tf.per_dialect("'{' || {0}", type_=sa.String)
    with pytest.raises(TypeError, match="given 1"):
        tf.per_dialect("{0} + {1}", type_=sa.Integer)(sa.column("a"))
    braces = tf.per_dialect("'{{}}' || {0}", type_=sa.String)(sa.column("a"))
    assert str(braces.compile(dialect=sa.create_engine("sqlite://").dialect)) == "('{}' || a)"


def test_transforms_with_different_sql_never_share_a_cached_statement():
    at = sa.table("t", sa.column("at", sa.DateTime)).c.at

    def key(transform):
        return sa.select(transform(at))._generate_cache_key()

    assert key(tf.epoch_seconds) is not None and key(tf.epoch_seconds) == key(tf.epoch_seconds)
    keys = [key(tf.epoch_seconds), key(tf.epoch_micros), key(DAY_NUMBER), key(lambda s: tf.before(s, " "))]
    assert all(a != b for i, a in enumerate(keys) for b in keys[i + 1:])


def snapshot(engine: sa.Engine) -> dict:
    """Tables, columns, rows and triggers: what expand could have touched."""
    dialect = for_dialect(engine.dialect)
    with engine.connect() as conn:
        inspector = sa.inspect(conn)
        tables = sorted(inspector.get_table_names())
        return {
            "columns": {t: [(c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(t)]
                        for t in tables},
            "rows": {t: sorted(map(tuple, conn.exec_driver_sql(f"SELECT * FROM {dialect.quote(t)}")), key=repr)
                     for t in tables},
            "triggers": {t: dialect.foreign_triggers(conn, t) for t in tables},
            "crossfade": sorted(dialect.catalog_objects(conn, set(tables))),
        }


def test_per_dialect_sql_missing_for_this_database_is_refused_before_any_ddl(engine):
    metadata = sa.MetaData()
    events = sa.Table("events", metadata, sa.Column("id", sa.Integer, primary_key=True),
                      sa.Column("happened_on", sa.Date))
    metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(events.insert(), [{"happened_on": dt.date(2026, 11, 25)}])
    here = for_dialect(engine.dialect).name
    elsewhere = {d: "0" for d in ("postgresql", "mysql", "sqlite") if d != here}
    up = tf.per_dialect(type_=sa.Integer, **elsewhere)
    change = Change(ops.replace_column("events", "happened_on", sa.Column("day_number", sa.Integer),
                                       up=up, down=FROM_DAY_NUMBER), id="day_numbers")
    before = snapshot(engine)
    with pytest.raises(TransformError) as caught:
        Runner(engine).expand(change)
    assert (caught.value.table, caught.value.column, caught.value.dialect) == ("events", "day_number", here)
    assert f"has no SQL for {here}: give {here}=... or a default" in str(caught.value)
    assert snapshot(engine) == before
    assert "crossfade_state" not in before["columns"]


# --- whole rolling upgrades ------------------------------------------------------------------

def columns_of(engine: sa.Engine, table: str) -> list[str]:
    return [c["name"] for c in sa.inspect(engine).get_columns(table)]


def test_datetime_to_epoch_micros_through_a_rolling_upgrade(engine):
    release_n, release_n1 = sa.MetaData(), sa.MetaData()
    old = sa.Table("events", release_n, sa.Column("id", sa.Integer, primary_key=True),
                   sa.Column("name", sa.String(20)), sa.Column("happened_at", DATETIME))
    new = sa.Table("events", release_n1, sa.Column("id", sa.Integer, primary_key=True),
                   sa.Column("name", sa.String(20)), sa.Column("happened_us", sa.BigInteger))
    release_n.create_all(engine)
    seeded = {"moon": dt.datetime(1969, 7, 20, 20, 17, 40, 500000), "epoch": EPOCH,
              "now": dt.datetime(2026, 11, 25, 13, 45, 30, 123456), "unknown": None}
    with engine.begin() as conn:
        conn.execute(old.insert(), [{"name": k, "happened_at": v} for k, v in seeded.items()])

    change = Change(ops.replace_column("events", "happened_at", sa.Column("happened_us", sa.BigInteger),
                                       up=tf.epoch_micros, down=tf.from_epoch_micros), id="events_epoch")
    runner = Runner(engine)
    runner.expand(change)
    both = sa.Table("events", sa.MetaData(), autoload_with=engine)

    def micros(value):
        return None if value is None else (value - EPOCH) // MICROSECOND

    with engine.begin() as conn:  # release N, still alone, writes through the triggers
        conn.execute(old.insert(), [{"name": "n-insert", "happened_at": dt.datetime(1955, 11, 5, 6, 0, 0, 1)}])
        conn.execute(old.update().where(old.c.name == "epoch").values(happened_at=dt.datetime(2000, 1, 1)))
        rows = {r.name: r for r in conn.execute(sa.select(both))}
    assert rows["n-insert"].happened_us == micros(dt.datetime(1955, 11, 5, 6, 0, 0, 1))
    assert rows["epoch"].happened_us == micros(dt.datetime(2000, 1, 1))
    assert rows["moon"].happened_us is None  # not backfilled yet

    runner.migrate(change)
    with engine.connect() as conn:
        rows = {r.name: r for r in conn.execute(sa.select(both))}
    assert all(r.happened_us == micros(r.happened_at) for r in rows.values())
    assert rows["moon"].happened_us == -14182939500000

    with engine.begin() as conn:  # release N and release N+1 write side by side
        conn.execute(new.insert(), [{"name": "n1-insert", "happened_us": -1}])
        conn.execute(new.update().where(new.c.name == "now").values(happened_us=1795527930999999))
        conn.execute(old.insert(), [{"name": "n-late", "happened_at": dt.datetime(2038, 1, 19, 3, 14, 8)}])
        conn.execute(old.update().where(old.c.name == "unknown").values(happened_at=EPOCH))
        rows = {r.name: r for r in conn.execute(sa.select(both))}
    assert rows["n1-insert"].happened_at == EPOCH - MICROSECOND
    assert rows["now"].happened_at == EPOCH + 1795527930999999 * MICROSECOND
    assert rows["n-late"].happened_us == 2**31 * 1000000
    assert rows["unknown"].happened_us == 0
    assert all(r.happened_us == micros(r.happened_at) for r in rows.values())

    runner.contract(change)
    assert columns_of(engine, "events") == ["id", "name", "happened_us"]
    with engine.connect() as conn:
        final = dict(conn.execute(sa.select(new.c.name, new.c.happened_us)).all())
    assert final == {name: micros(r.happened_at) for name, r in rows.items()}


def test_split_full_name_through_a_rolling_upgrade(engine):
    release_n, release_n1 = sa.MetaData(), sa.MetaData()
    old = sa.Table("people", release_n, sa.Column("id", sa.Integer, primary_key=True),
                   sa.Column("full_name", sa.String(81)))
    new = sa.Table("people", release_n1, sa.Column("id", sa.Integer, primary_key=True),
                   sa.Column("first", sa.String(81)), sa.Column("rest", sa.String(80)))
    release_n.create_all(engine)
    seeded = ["Ada Lovelace", "Plato", "", None, "Jean Paul Sartre", " x "]
    with engine.begin() as conn:
        conn.execute(old.insert(), [{"id": i, "full_name": v} for i, v in enumerate(seeded, start=1)])

    change = Change(ops.split_column("people", "full_name", [sa.Column("first", sa.String(81)),
                                                              sa.Column("rest", sa.String(80))],
                                     up=lambda s: (tf.before(s, " "), tf.after(s, " ")),
                                     down=lambda first, rest: tf.join(" ", first, rest)), id="split_names")
    runner = Runner(engine)
    runner.expand(change)
    both = sa.Table("people", sa.MetaData(), autoload_with=engine)

    with engine.begin() as conn:  # release N, still alone, writes through the triggers
        conn.execute(old.insert(), [{"id": 10, "full_name": "Alan Turing"}, {"id": 11, "full_name": "Cher"}])
        conn.execute(old.update().where(old.c.id == 1).values(full_name="Ada King"))
    runner.migrate(change)
    with engine.connect() as conn:
        rows = {r.id: (r.full_name, r.first, r.rest) for r in conn.execute(sa.select(both))}
    assert rows == {1: ("Ada King", "Ada", "King"), 2: ("Plato", "Plato", None), 3: ("", "", None),
                    4: (None, None, None), 5: ("Jean Paul Sartre", "Jean", "Paul Sartre"), 6: (" x ", "", "x "),
                    10: ("Alan Turing", "Alan", "Turing"), 11: ("Cher", "Cher", None)}

    with engine.begin() as conn:  # release N and release N+1 write side by side
        conn.execute(new.insert(), [{"id": 20, "first": "Grace", "rest": "Hopper"},
                                    {"id": 21, "first": "Madonna", "rest": None},
                                    {"id": 22, "first": "Mary Ann", "rest": "Evans"}])
        conn.execute(new.update().where(new.c.id == 1).values(rest="Lovelace"))
        conn.execute(old.update().where(old.c.id == 10).values(full_name="Alan M. Turing"))
        conn.execute(old.insert(), [{"id": 12, "full_name": "Prince"}])
        rows = {r.id: (r.full_name, r.first, r.rest) for r in conn.execute(sa.select(both))}
    assert rows[20] == ("Grace Hopper", "Grace", "Hopper")
    assert rows[21] == ("Madonna", "Madonna", None)
    assert rows[22] == ("Mary Ann Evans", "Mary Ann", "Evans")  # release N+1's finer split survives
    assert rows[1] == ("Ada Lovelace", "Ada", "Lovelace")
    assert rows[10] == ("Alan M. Turing", "Alan", "M. Turing")
    assert rows[12] == ("Prince", "Prince", None)

    runner.contract(change)
    assert columns_of(engine, "people") == ["id", "first", "rest"]
    with engine.connect() as conn:
        final = {r.id: (r.first, r.rest) for r in conn.execute(sa.select(new))}
    assert final == {i: (first, rest) for i, (_, first, rest) in rows.items()}


def test_a_derived_column_from_a_per_dialect_transform_follows_its_source(engine):
    metadata = sa.MetaData()
    events = sa.Table("events", metadata, sa.Column("id", sa.Integer, primary_key=True),
                      sa.Column("happened_at", DATETIME))
    metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(events.insert(), [{"id": 1, "happened_at": dt.datetime(2000, 1, 1, 0, 0, 1, 900000)}])
    change = Change(ops.add_column("events", sa.Column("happened_s", sa.BigInteger),
                                   backfill=lambda row: tf.epoch_seconds(row.happened_at)), id="epoch_seconds")
    runner = Runner(engine)
    runner.expand(change)
    with engine.begin() as conn:
        conn.execute(events.insert(), [{"id": 2, "happened_at": EPOCH - MICROSECOND}])
    runner.migrate(change)
    runner.contract(change)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT id, happened_s FROM events ORDER BY id").all() == [(1, 946684801), (2, -1)]
