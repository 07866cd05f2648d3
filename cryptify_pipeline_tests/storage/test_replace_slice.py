"""Replacing a slice: a large share of a table with its key and index built anew, a small one
row by row; either way one transaction that leaves the old rows when it fails."""

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from cryptify_pipeline.storage import pg_tables
from cryptify_pipeline.storage.pg_types import storage_frame
from cryptify_pipeline_tests.support.database import run_sql

START = datetime(2026, 1, 1, tzinfo=UTC)
SYMBOLS = 20
HOURS = pg_tables.BULK_MIN_ROWS // SYMBOLS + 10  # just enough rows for the bulk path


def frame(hours: range, price: float) -> pd.DataFrame:
    ts = pd.date_range(START + timedelta(hours=hours.start), periods=len(hours), freq="h")
    return pd.DataFrame(
        {
            "ts": ts.repeat(SYMBOLS).as_unit("us"),
            "symbol": pd.Series([f"S{i:02d}" for i in range(SYMBOLS)] * len(hours), dtype="str"),
            "price": price,
        }
    )


def replace(url, schema: str, hours: range, data: pd.DataFrame, primary_key=("symbol", "ts")):
    predicate = pg_tables.TimeRange(
        "ts", START + timedelta(hours=hours.start), START + timedelta(hours=hours.stop)
    )
    with pg_tables.transaction(url) as connection:
        pg_tables.ensure_schema(connection, schema)
        return pg_tables.replace_slice(
            connection, pg_tables.TableSpec(schema, "prices", primary_key), data, [predicate]
        )


def indexes(schema: str) -> dict[str, tuple[int, str]]:
    """Index name -> (oid, definition): a rebuilt index has a new oid."""
    rows = run_sql(
        "SELECT c.relname, c.oid, pg_get_indexdef(c.oid) FROM pg_index i"
        " JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = to_regclass(%s)",
        (f'"{schema}".prices',),
    )
    return {name: (oid, definition) for name, oid, definition in rows}


def prices(schema: str) -> list[tuple]:
    return run_sql(f'SELECT price, count(*) FROM "{schema}".prices GROUP BY price ORDER BY price')


@pytest.fixture
def big_table(database_url, schema) -> dict[str, tuple[int, str]]:
    replace(database_url, schema, range(HOURS), frame(range(HOURS), 1.0))
    return indexes(schema)


def test_a_big_first_write_is_analysed_at_once(big_table, schema):
    # reltuples is -1 until the table is analysed or vacuumed
    rows = run_sql(
        "SELECT reltuples FROM pg_class WHERE oid = to_regclass(%s)", (f'"{schema}".prices',)
    )
    assert rows[0][0] == pytest.approx(HOURS * SYMBOLS, rel=0.05)
    assert len(big_table) == 2  # the primary key and the partition index


def test_rewriting_most_of_a_table_rebuilds_its_key_and_index(database_url, schema, big_table):
    columns, deleted = replace(database_url, schema, range(HOURS), frame(range(HOURS), 2.0))
    assert deleted == HOURS * SYMBOLS
    assert prices(schema) == [(2.0, HOURS * SYMBOLS)]
    after = indexes(schema)
    assert after.keys() == big_table.keys()
    for name, (oid, definition) in after.items():
        assert oid != big_table[name][0] and definition == big_table[name][1]
    assert list(columns) == ["ts", "symbol", "price"]


def test_rewriting_a_small_slice_keeps_the_key_and_index(database_url, schema, big_table):
    _, deleted = replace(database_url, schema, range(5, 7), frame(range(5, 7), 3.0))
    assert deleted == 2 * SYMBOLS
    assert prices(schema) == [(1.0, (HOURS - 2) * SYMBOLS), (3.0, 2 * SYMBOLS)]
    assert indexes(schema) == big_table


def test_a_big_rewrite_that_fails_at_its_key_leaves_the_old_rows(database_url, schema, big_table):
    duplicated = frame(range(HOURS), 9.0)
    duplicated = pd.concat([duplicated, duplicated.iloc[:1]], ignore_index=True)
    # the slice is deleted and the rows copied; rebuilding the key finds the duplicate
    with pytest.raises(Exception, match="could not create unique index"):
        replace(database_url, schema, range(HOURS), duplicated)
    assert prices(schema) == [(1.0, HOURS * SYMBOLS)]
    assert indexes(schema) == big_table


def test_a_key_other_than_the_declared_one_is_kept(database_url, schema, big_table):
    # metadata without primary_key: the table's key is not this write's to rebuild
    replace(database_url, schema, range(HOURS), frame(range(HOURS), 4.0), primary_key=())
    after = indexes(schema)
    key = next(name for name in after if name.endswith("_pkey"))
    assert after[key] == big_table[key]
    assert prices(schema) == [(4.0, HOURS * SYMBOLS)]


def test_storage_frame_copies_nothing_when_dtypes_already_match():
    stored = frame(range(3), 1.0)
    assert storage_frame(stored) is stored
    naive_object = stored.astype({"symbol": object})
    converted = storage_frame(naive_object)
    assert converted is not naive_object and str(converted["symbol"].dtype) == "str"
    assert naive_object["symbol"].dtype == object  # the caller's frame is left as it was
    assert converted["price"].equals(naive_object["price"])
