"""Frames written through pg_tables come back from Postgres with the same values and dtypes,
and slices are replaced in one transaction, big or small."""

import math
import threading
import time
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from cryptify_pipeline.storage import pg_tables
from cryptify_pipeline.storage.pg_types import ColumnTypeError, infer_pg_type, storage_frame
from cryptify_pipeline_tests.support.database import run_sql


def write_then_read(url, schema, frame, table="round_trip", primary_key=()):
    spec = pg_tables.TableSpec(schema, table, tuple(primary_key))
    with pg_tables.transaction(url) as connection:
        pg_tables.ensure_schema(connection, schema)
        pg_tables.write_frame(connection, spec, frame, [])
    with pg_tables.transaction(url) as connection:
        return pg_tables.read_frame(connection, schema, table, None, [])


def every_type_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "ts": pd.to_datetime(
                [
                    "2026-01-01 00:00:00.123456",
                    "2026-06-30 23:00:00.000000",
                    "1999-12-31 12:00:00.000000",
                ],
                utc=True,
            ),
            "price": [1.5, np.nan, -3.25e-12],
            "count": np.array([1, -(2**62), 0], dtype="int64"),
            "maybe_count": pd.array([1, None, 3], dtype="Int64"),
            "symbol": pd.Series(["BTC/USDT", None, "É'; DROP TABLE x;--"], dtype="str"),
            "flag": [True, False, True],
            "maybe_flag": pd.array([True, None, False], dtype="boolean"),
            "blob": [b"\x00\x01\xff", None, b""],
            "doc": [{"a": 1, "b": [1.5, None]}, None, [1, "two"]],
        }
    )


def test_every_supported_type_round_trips_with_dtypes(database_url, schema):
    frame = every_type_frame()
    result = write_then_read(database_url, schema, frame)
    pd.testing.assert_frame_equal(result, frame)
    assert str(result["ts"].dtype) == "datetime64[us, UTC]"
    assert result["count"].dtype == np.int64
    assert result["maybe_count"].dtype == pd.Int64Dtype()
    assert result["price"].dtype == np.float64 and math.isnan(result["price"][1])
    assert result["blob"][0] == b"\x00\x01\xff" and result["blob"][1] is None


def test_postgres_holds_the_declared_types(database_url, schema):
    write_then_read(database_url, schema, every_type_frame())
    types = dict(
        run_sql(
            "SELECT column_name, data_type FROM information_schema.columns"
            " WHERE table_schema = %s AND table_name = 'round_trip'",
            (schema,),
        )
    )
    assert types == {
        "ts": "timestamp with time zone",
        "price": "double precision",
        "count": "bigint",
        "maybe_count": "bigint",
        "symbol": "text",
        "flag": "boolean",
        "maybe_flag": "boolean",
        "blob": "bytea",
        "doc": "jsonb",
    }
    # NaN is stored as NULL so SQL aggregates skip it, as pandas does
    assert run_sql(f'SELECT count(price), avg(price) FROM "{schema}".round_trip') == [
        (2, (1.5 - 3.25e-12) / 2)
    ]
    assert run_sql(f"SELECT doc->>'a' FROM \"{schema}\".round_trip WHERE count = 1") == [("1",)]


def test_non_utc_timestamps_are_stored_as_the_same_instant(database_url, schema):
    local = pd.DataFrame({"ts": pd.to_datetime(["2026-01-01 09:00"]).tz_localize("Asia/Tokyo")})
    result = write_then_read(database_url, schema, local)
    assert result["ts"][0] == pd.Timestamp("2026-01-01 00:00", tz="UTC")


def test_empty_frame_creates_typed_table_and_reads_back_empty(database_url, schema):
    # object columns of an empty frame carry no type evidence, and nullable dtypes come back
    # as numpy ones when the slice holds no null
    empty = every_type_frame().iloc[0:0].drop(columns=["blob", "doc", "maybe_count", "maybe_flag"])
    result = write_then_read(database_url, schema, empty)
    assert result.empty
    pd.testing.assert_frame_equal(result, empty.reset_index(drop=True))


def test_all_null_column_takes_the_existing_table_type(database_url, schema):
    write_then_read(database_url, schema, pd.DataFrame({"k": [1], "note": ["x"]}))
    result = write_then_read(database_url, schema, pd.DataFrame({"k": [2], "note": [None]}))
    assert result["note"].tolist()[1] is None or pd.isna(result["note"][1])
    assert len(result) == 2


@pytest.mark.parametrize(
    ("column", "message"),
    [
        (pd.Series(pd.to_datetime(["2026-01-01"])), "time-zone-naive"),
        (pd.Series([1, "a"], dtype=object), "mixes value types"),
        (pd.Series([pd.Timedelta("1h")]), "cannot be stored"),
    ],
)
def test_unstorable_columns_are_named(column, message):
    with pytest.raises(ColumnTypeError, match=message) as raised:
        infer_pg_type("bad_col", column)
    assert "bad_col" in str(raised.value)


def test_nullable_dtypes_come_back_numpy_when_the_slice_has_no_null(database_url, schema):
    frame = pd.DataFrame({"n": pd.array([1, 2], dtype="Int64")})
    assert write_then_read(database_url, schema, frame)["n"].dtype == np.int64


def test_all_null_object_column_cannot_create_a_table(database_url, schema):
    with pytest.raises(ColumnTypeError, match="unknown"):
        write_then_read(database_url, schema, pd.DataFrame({"k": [1], "nothing": [None]}))


# Replacing a slice: a large share of a table with its key and index built anew, a small one
# row by row; either way one transaction that leaves the old rows when it fails.

START = datetime(2026, 1, 1, tzinfo=UTC)
SYMBOLS = 20
HOURS = pg_tables.BULK_MIN_ROWS // SYMBOLS + 10  # just enough rows for the bulk path


def candle_rows(hours: range, price: float) -> pd.DataFrame:
    ts = pd.date_range(START + timedelta(hours=hours.start), periods=len(hours), freq="h")
    return pd.DataFrame(
        {
            "ts": ts.repeat(SYMBOLS).as_unit("us"),
            "symbol": pd.Series([f"S{i:02d}" for i in range(SYMBOLS)] * len(hours), dtype="str"),
            "price": price,
        }
    )


def replace_candles(
    url, schema: str, hours: range, data: pd.DataFrame, primary_key=("symbol", "ts")
):
    predicate = pg_tables.TimeRange(
        "ts", START + timedelta(hours=hours.start), START + timedelta(hours=hours.stop)
    )
    with pg_tables.transaction(url) as connection:
        pg_tables.ensure_schema(connection, schema)
        return pg_tables.replace_slice(
            connection, pg_tables.TableSpec(schema, "prices", primary_key), data, [predicate]
        )


def price_indexes(schema: str) -> dict[str, tuple[int, str]]:
    """Index name -> (oid, definition): a rebuilt index has a new oid."""
    rows = run_sql(
        "SELECT c.relname, c.oid, pg_get_indexdef(c.oid) FROM pg_index i"
        " JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = to_regclass(%s)",
        (f'"{schema}".prices',),
    )
    return {name: (oid, definition) for name, oid, definition in rows}


def price_counts(schema: str) -> list[tuple]:
    return run_sql(f'SELECT price, count(*) FROM "{schema}".prices GROUP BY price ORDER BY price')


@pytest.fixture
def big_table(database_url, schema) -> dict[str, tuple[int, str]]:
    replace_candles(database_url, schema, range(HOURS), candle_rows(range(HOURS), 1.0))
    return price_indexes(schema)


def test_a_big_first_write_is_analysed_at_once(big_table, schema):
    # reltuples is -1 until the table is analysed or vacuumed
    rows = run_sql(
        "SELECT reltuples FROM pg_class WHERE oid = to_regclass(%s)", (f'"{schema}".prices',)
    )
    assert rows[0][0] == pytest.approx(HOURS * SYMBOLS, rel=0.05)
    assert len(big_table) == 2  # the primary key and the partition index


def test_rewriting_most_of_a_table_rebuilds_its_key_and_index(database_url, schema, big_table):
    columns, deleted = replace_candles(
        database_url, schema, range(HOURS), candle_rows(range(HOURS), 2.0)
    )
    assert deleted == HOURS * SYMBOLS
    assert price_counts(schema) == [(2.0, HOURS * SYMBOLS)]
    after = price_indexes(schema)
    assert after.keys() == big_table.keys()
    for name, (oid, definition) in after.items():
        assert oid != big_table[name][0] and definition == big_table[name][1]
    assert list(columns) == ["ts", "symbol", "price"]


def test_rewriting_a_small_slice_keeps_the_key_and_index(database_url, schema, big_table):
    _, deleted = replace_candles(database_url, schema, range(5, 7), candle_rows(range(5, 7), 3.0))
    assert deleted == 2 * SYMBOLS
    assert price_counts(schema) == [(1.0, (HOURS - 2) * SYMBOLS), (3.0, 2 * SYMBOLS)]
    assert price_indexes(schema) == big_table


def test_a_big_rewrite_that_fails_at_its_key_leaves_the_old_rows(database_url, schema, big_table):
    duplicated = candle_rows(range(HOURS), 9.0)
    duplicated = pd.concat([duplicated, duplicated.iloc[:1]], ignore_index=True)
    # the slice is deleted and the rows copied; rebuilding the key finds the duplicate
    with pytest.raises(Exception, match="could not create unique index"):
        replace_candles(database_url, schema, range(HOURS), duplicated)
    assert price_counts(schema) == [(1.0, HOURS * SYMBOLS)]
    assert price_indexes(schema) == big_table


def test_a_key_other_than_the_declared_one_is_kept(database_url, schema, big_table):
    # metadata without primary_key: the table's key is not this write's to rebuild
    replace_candles(
        database_url, schema, range(HOURS), candle_rows(range(HOURS), 4.0), primary_key=()
    )
    after = price_indexes(schema)
    key = next(name for name in after if name.endswith("_pkey"))
    assert after[key] == big_table[key]
    assert price_counts(schema) == [(4.0, HOURS * SYMBOLS)]


def test_two_big_rewrites_of_one_table_queue_instead_of_deadlocking(
    database_url, schema, big_table
):
    # A third transaction holds the table until both rewrites wait for it, so both start
    # together: the interleaving in which each held the shared lock of its estimate while it
    # asked for the exclusive one (a deadlock).
    table = f'"{schema}".prices'
    errors: list[BaseException] = []

    def rewrite(price: float) -> None:
        try:
            replace_candles(database_url, schema, range(HOURS), candle_rows(range(HOURS), price))
        except BaseException as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)

    with pg_tables.transaction(database_url) as holder, holder.cursor() as cursor:
        cursor.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
        writers = [threading.Thread(target=rewrite, args=(p,)) for p in (5.0, 6.0)]
        for writer in writers:
            writer.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            waiting = run_sql(
                "SELECT count(*) FROM pg_locks WHERE relation = to_regclass(%s) AND NOT granted",
                (table,),
            )[0][0]
            if waiting == 2:
                break
            time.sleep(0.05)
        assert waiting == 2
    for writer in writers:
        writer.join(timeout=120)
    assert errors == []  # before the fix: "deadlock detected" in one of them
    [(price, count)] = price_counts(schema)
    assert price in (5.0, 6.0) and count == HOURS * SYMBOLS


def test_storage_frame_copies_nothing_when_dtypes_already_match():
    stored = candle_rows(range(3), 1.0)
    assert storage_frame(stored) is stored
    naive_object = stored.astype({"symbol": object})
    converted = storage_frame(naive_object)
    assert converted is not naive_object and str(converted["symbol"].dtype) == "str"
    assert naive_object["symbol"].dtype == object  # the caller's frame is left as it was
    assert converted["price"].equals(naive_object["price"])
