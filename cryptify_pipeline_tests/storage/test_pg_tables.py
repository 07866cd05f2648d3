"""Frames written through pg_tables come back from Postgres with the same values and dtypes."""

import math

import numpy as np
import pandas as pd
import pytest

from cryptify_pipeline.storage import pg_tables
from cryptify_pipeline.storage.pg_types import ColumnTypeError, infer_pg_type
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
