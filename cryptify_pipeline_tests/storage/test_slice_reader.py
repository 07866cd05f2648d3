"""A SliceReader reads the part of its mapped slice it is asked for, never beyond the slice."""

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from cryptify_pipeline.storage import pg_tables
from cryptify_pipeline.storage.slice_reader import SliceReader

DAY = datetime(2025, 3, 1, tzinfo=UTC)
HOURS = pd.date_range(DAY, periods=48, freq="h", tz="UTC")


@pytest.fixture
def table(database_url, schema) -> str:
    frame = pd.DataFrame({"ts": HOURS.repeat(2), "symbol": ["A/B", "C/D"] * 48, "x": 1.0})
    spec = pg_tables.TableSpec(schema, "hours", ("symbol", "ts"))
    with pg_tables.transaction(database_url) as connection:
        pg_tables.ensure_schema(connection, schema)
        pg_tables.write_frame(
            connection, spec, frame, [pg_tables.TimeRange("ts", DAY, DAY + timedelta(days=2))]
        )
    return "hours"


def reader(url, schema, table, *predicates, columns=None) -> SliceReader:
    return SliceReader(url, schema, table, columns, tuple(predicates))


def test_reads_only_the_hours_asked_for(database_url, schema, table):
    mapped = pg_tables.TimeRange("ts", DAY, DAY + timedelta(days=2))
    rows = reader(database_url, schema, table, mapped).read_between(
        DAY + timedelta(hours=5), DAY + timedelta(hours=8)
    )
    assert rows["ts"].tolist() == list(HOURS[5:8].repeat(2))
    assert set(rows["symbol"]) == {"A/B", "C/D"}


def test_never_reads_beyond_the_mapped_slice(database_url, schema, table):
    mapped = pg_tables.TimeRange("ts", DAY + timedelta(hours=10), DAY + timedelta(hours=20))
    wide = reader(database_url, schema, table, mapped, columns=("ts",)).read_between(
        DAY - timedelta(days=30), DAY + timedelta(days=30)
    )
    assert wide["ts"].tolist() == list(HOURS[10:20].repeat(2))
    assert list(wide.columns) == ["ts"]
    outside = reader(database_url, schema, table, mapped).read_between(
        DAY + timedelta(days=5), DAY + timedelta(days=6)
    )
    assert outside.empty


def test_keeps_the_slices_other_predicates(database_url, schema, table):
    mapped = pg_tables.TimeRange("ts", DAY, DAY + timedelta(days=2))
    only_a = reader(database_url, schema, table, mapped, pg_tables.ValueSet("symbol", ("A/B",)))
    assert set(only_a.read_between(DAY, DAY + timedelta(days=1))["symbol"]) == {"A/B"}


def test_a_slice_without_a_time_range_is_refused(database_url, schema, table):
    with pytest.raises(pg_tables.TableError, match="hours has no time range to read part of"):
        reader(database_url, schema, table).read_between(DAY, DAY + timedelta(days=1))
    with pytest.raises(ValueError, match="start .* is after end"):
        reader(database_url, schema, table).read_between(DAY + timedelta(days=1), DAY)


def test_a_missing_table_is_named(database_url, schema, table):
    mapped = pg_tables.TimeRange("ts", DAY, DAY + timedelta(days=2))
    with pytest.raises(pg_tables.TableError, match="nowhere does not exist"):
        reader(database_url, schema, "nowhere", mapped).read_between(DAY, DAY + timedelta(hours=1))
