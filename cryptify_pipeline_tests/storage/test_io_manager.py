"""The Postgres IO manager through real Dagster runs on a Postgres-backed instance."""

import threading
from datetime import UTC, datetime

import pandas as pd
import pytest
from dagster import (
    AssetExecutionContext,
    AssetIn,
    BackfillPolicy,
    Config,
    DagsterEventType,
    DailyPartitionsDefinition,
    HourlyPartitionsDefinition,
    MultiPartitionsDefinition,
    StaticPartitionsDefinition,
    TimeWindowPartitionMapping,
    asset,
    materialize,
)

from cryptify_pipeline.storage import pg_tables
from cryptify_pipeline.storage.io_manager import ABSENT_TABLE_IS_EMPTY
from cryptify_pipeline_tests.support.database import run_sql
from cryptify_pipeline_tests.support.pipeline import io_manager_on, range_tags

HOURLY = HourlyPartitionsDefinition(start_date="2026-01-01-00:00", timezone="UTC")
DAILY = DailyPartitionsDefinition(start_date="2026-01-01", timezone="UTC")
SYMBOLS = ["BTC/USDT", "ETH/USDT"]


class PriceConfig(Config):
    price: float = 1.0
    duplicate_rows: bool = False
    shift_hours: int = 0


@asset(
    partitions_def=HOURLY,
    backfill_policy=BackfillPolicy.single_run(),
    metadata={
        "partition_expr": "ts",
        "primary_key": ["symbol", "ts"],
        "column_descriptions": {"ts": "Hour (UTC).", "price": "Last price."},
    },
)
def prices(context: AssetExecutionContext, config: PriceConfig) -> pd.DataFrame:
    window = context.partition_time_window
    hours = pd.date_range(window.start, window.end, freq="h", inclusive="left")
    hours = hours + pd.Timedelta(hours=config.shift_hours)
    frame = pd.DataFrame(
        {
            "ts": hours.repeat(len(SYMBOLS)).as_unit("us"),
            "symbol": pd.Series(SYMBOLS * len(hours), dtype="str"),
            "price": config.price,
        }
    )
    return pd.concat([frame, frame]) if config.duplicate_rows else frame


@asset(
    partitions_def=HOURLY,
    ins={"prices": AssetIn(partition_mapping=TimeWindowPartitionMapping(start_offset=-3))},
    metadata={"partition_expr": "ts"},
)
def lookback_seen(context: AssetExecutionContext, prices: pd.DataFrame) -> pd.DataFrame:
    """Records which upstream rows its 4-hour lookback window loaded."""
    return pd.DataFrame(
        {
            "ts": [context.partition_time_window.start],
            "rows": [len(prices)],
            "first_ts": [prices["ts"].min()],
            "last_ts": [prices["ts"].max()],
        }
    ).astype({"ts": "datetime64[us, UTC]"})


@asset(partitions_def=DAILY, metadata={"partition_expr": "day"})
def daily_seen(context: AssetExecutionContext, prices: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "day": [context.partition_time_window.start],
            "rows": [len(prices)],
            "hours": [prices["ts"].nunique()],
        }
    ).astype({"day": "datetime64[us, UTC]"})


def run_prices(instance, schema, *, partition_key=None, tags=None, **config):
    return materialize(
        [prices],
        partition_key=partition_key,
        tags=tags,
        instance=instance,
        resources={"io_manager": io_manager_on(schema)},
        run_config={"ops": {"prices": {"config": config}}},
        raise_on_error=False,
    )


def table_rows(schema: str, table: str = "prices", order: str = "ts, symbol") -> list[tuple]:
    return run_sql(f'SELECT * FROM "{schema}"."{table}" ORDER BY {order}')


def ts(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_rematerialising_a_partition_replaces_its_rows(instance, schema):
    assert run_prices(instance, schema, partition_key="2026-01-02-05:00", price=1.0).success
    assert run_prices(instance, schema, partition_key="2026-01-02-06:00", price=1.0).success
    assert run_prices(instance, schema, partition_key="2026-01-02-05:00", price=2.0).success
    assert table_rows(schema) == [
        (ts("2026-01-02T05:00"), "BTC/USDT", 2.0),
        (ts("2026-01-02T05:00"), "ETH/USDT", 2.0),
        (ts("2026-01-02T06:00"), "BTC/USDT", 1.0),
        (ts("2026-01-02T06:00"), "ETH/USDT", 1.0),
    ]


def test_a_many_partition_write_records_its_column_schema_once(instance, schema):
    result = materialize(
        [prices],
        instance=instance,
        resources={"io_manager": io_manager_on(schema)},
        tags=range_tags("2026-01-02-00:00", "2026-01-02-05:00"),
    )
    assert result.success
    recorded = {m.partition: m.metadata for m in result.asset_materializations_for_node("prices")}
    assert len(recorded) == 6
    with_schema = [key for key, metadata in recorded.items() if "dagster/column_schema" in metadata]
    assert with_schema == ["2026-01-02-05:00"]  # the newest: what the UI shows as the latest
    assert all(metadata["dagster/row_count"].value == 12 for metadata in recorded.values())
    columns = recorded["2026-01-02-05:00"]["dagster/column_schema"].value.columns
    assert [c.name for c in columns] == ["ts", "symbol", "price"]


def test_output_metadata_for_the_ui(instance, schema):
    result = run_prices(instance, schema, partition_key="2026-01-02-05:00")
    metadata = result.asset_materializations_for_node("prices")[0].metadata
    assert metadata["dagster/row_count"].value == 2
    assert metadata["dagster/table_name"].value.endswith(f"{schema}.prices")
    schema_columns = metadata["dagster/column_schema"].value.columns
    assert [(c.name, c.type, c.description) for c in schema_columns] == [
        ("ts", "timestamp with time zone", "Hour (UTC)."),
        ("symbol", "text", None),  # not described: the type alone
        ("price", "double precision", "Last price."),
    ]
    assert metadata["partition_start"].value == ts("2026-01-02T05:00").timestamp()
    assert metadata["partition_end"].value == ts("2026-01-02T06:00").timestamp()
    assert "$1=2026-01-02T05:00:00+00:00" in metadata["Query"].value


def test_single_run_backfill_writes_exactly_its_range(instance, schema):
    for key in ["2026-01-02-00:00", "2026-01-02-04:00"]:
        assert run_prices(instance, schema, partition_key=key, price=1.0).success
    backfill = run_prices(
        instance,
        schema,
        tags={
            "dagster/asset_partition_range_start": "2026-01-02-01:00",
            "dagster/asset_partition_range_end": "2026-01-02-03:00",
        },
        price=5.0,
    )
    assert backfill.success
    assert len(backfill.asset_materializations_for_node("prices")) == 3  # one run, 3 partitions
    assert [(row[0].hour, row[2]) for row in table_rows(schema)[::2]] == [
        (0, 1.0),
        (1, 5.0),
        (2, 5.0),
        (3, 5.0),
        (4, 1.0),
    ]


def test_lookback_mapping_loads_exactly_the_mapped_window(instance, schema):
    assert run_prices(
        instance,
        schema,
        tags={
            "dagster/asset_partition_range_start": "2026-01-02-00:00",
            "dagster/asset_partition_range_end": "2026-01-03-02:00",
        },
    ).success

    def run_downstream(downstream, partition_key: str) -> bool:
        return materialize(
            [prices, downstream],
            selection=[downstream],
            partition_key=partition_key,
            instance=instance,
            resources={"io_manager": io_manager_on(schema)},
        ).success

    assert run_downstream(lookback_seen, "2026-01-02-10:00")
    assert run_sql(f'SELECT "rows", first_ts, last_ts FROM "{schema}".lookback_seen') == [
        (8, ts("2026-01-02T07:00"), ts("2026-01-02T10:00"))
    ]
    assert run_downstream(daily_seen, "2026-01-02")
    assert run_sql(f'SELECT "rows", hours FROM "{schema}".daily_seen') == [(48, 24)]


def test_failed_write_leaves_previous_rows_intact(instance, schema):
    assert run_prices(instance, schema, partition_key="2026-01-02-05:00", price=1.0).success
    before = table_rows(schema)
    # The slice is deleted, then COPY hits the primary key: the transaction must roll back.
    failed = run_prices(
        instance, schema, partition_key="2026-01-02-05:00", price=9.0, duplicate_rows=True
    )
    assert not failed.success
    assert "duplicate key" in str(failed.get_step_failure_events()[0].step_failure_data.error)
    assert table_rows(schema) == before


def test_rows_outside_the_partition_are_refused_and_nothing_written(instance, schema):
    assert run_prices(instance, schema, partition_key="2026-01-02-05:00", price=1.0).success
    before = table_rows(schema)
    failed = run_prices(
        instance, schema, partition_key="2026-01-02-05:00", price=9.0, shift_hours=1
    )
    assert not failed.success
    message = str(failed.get_step_failure_events()[0].step_failure_data.error)
    assert "outside the partition" in message and "'ts'" in message
    assert table_rows(schema) == before


def test_missing_column_and_type_change_are_named_errors(database_url, schema):
    spec = pg_tables.TableSpec(schema, "drift")
    original = pd.DataFrame({"a": [1], "b": [1.5]})
    with pg_tables.transaction(database_url) as connection:
        pg_tables.ensure_schema(connection, schema)
        pg_tables.write_frame(connection, spec, original, [])
    with pytest.raises(pg_tables.TableError, match=r"lacks column\(s\) b"):
        with pg_tables.transaction(database_url) as connection:
            pg_tables.write_frame(connection, spec, original[["a"]], [])
    with pytest.raises(TypeError, match=r"b \(table: double precision, frame: text\)"):
        with pg_tables.transaction(database_url) as connection:
            pg_tables.write_frame(connection, spec, original.assign(b="x"), [])
    assert run_sql(f'SELECT * FROM "{schema}".drift') == [(1, 1.5)]


def test_added_nullable_column_is_a_logged_migration(database_url, schema):
    spec = pg_tables.TableSpec(schema, "grows")
    messages: list[str] = []
    with pg_tables.transaction(database_url) as connection:
        pg_tables.ensure_schema(connection, schema)
        pg_tables.write_frame(connection, spec, pd.DataFrame({"a": [1]}), [])
    with pg_tables.transaction(database_url) as connection:
        pg_tables.write_frame(
            connection, spec, pd.DataFrame({"a": [2], "b": ["new"]}), [], messages.append
        )
    assert messages and "added nullable column(s) b text" in messages[0]
    assert run_sql(f'SELECT a, b FROM "{schema}".grows ORDER BY a') == [(1, None), (2, "new")]


def test_migration_warning_reaches_the_dagster_event_log(instance, schema):
    @asset(name="prices", partitions_def=HOURLY, metadata={"partition_expr": "ts"})
    def prices_with_volume(context: AssetExecutionContext) -> pd.DataFrame:
        start = context.partition_time_window.start
        return pd.DataFrame(
            {"ts": [start], "symbol": ["BTC/USDT"], "price": [1.0], "volume": [3.0]}
        ).astype({"ts": "datetime64[us, UTC]", "symbol": "str"})

    assert run_prices(instance, schema, partition_key="2026-01-02-05:00").success
    result = materialize(
        [prices_with_volume],
        partition_key="2026-01-02-06:00",
        instance=instance,
        resources={"io_manager": io_manager_on(schema)},
    )
    logs = instance.all_logs(result.run_id)
    assert any("added nullable column(s) volume" in (e.user_message or "") for e in logs)


def test_static_and_multi_partitions_with_hostile_keys(instance, schema):
    hostile = ["O'Brien; DROP TABLE x;--", 'a"b', "plain"]
    regions = StaticPartitionsDefinition(hostile)

    @asset(partitions_def=regions, metadata={"partition_expr": "region"})
    def by_region(context: AssetExecutionContext) -> pd.DataFrame:
        return pd.DataFrame({"region": [context.partition_key] * 2, "n": [1, 2]})

    grid = MultiPartitionsDefinition({"hour": HOURLY, "region": regions})

    @asset(
        partitions_def=grid,
        metadata={"partition_expr": {"hour": "ts", "region": "region"}},
    )
    def by_hour_region(context: AssetExecutionContext) -> pd.DataFrame:
        keys = context.partition_key.keys_by_dimension
        start = HOURLY.time_window_for_partition_key(keys["hour"]).start
        return pd.DataFrame({"ts": [start], "region": [keys["region"]], "n": [1]}).astype(
            {"ts": "datetime64[us, UTC]"}
        )

    io_manager = io_manager_on(schema)
    for key in hostile + [hostile[0]]:
        assert materialize(
            [by_region], partition_key=key, instance=instance, resources={"io_manager": io_manager}
        ).success
    assert sorted(run_sql(f'SELECT region, n FROM "{schema}".by_region')) == sorted(
        (key, n) for key in hostile for n in (1, 2)
    )
    for hour in ["2026-01-02-05:00", "2026-01-02-06:00", "2026-01-02-05:00"]:
        key = f"{hour}|{hostile[0]}"
        assert materialize(
            [by_hour_region],
            partition_key=key,
            instance=instance,
            resources={"io_manager": io_manager},
        ).success
    assert sorted(run_sql(f'SELECT ts, region FROM "{schema}".by_hour_region')) == [
        (ts("2026-01-02T05:00"), hostile[0]),
        (ts("2026-01-02T06:00"), hostile[0]),
    ]


def test_hostile_schema_table_and_column_names_are_quoted(database_url, schema):
    run_sql(f'CREATE SCHEMA "{schema}"; CREATE TABLE "{schema}".sentinel (x int)')
    odd_schema = f'{schema}"; DROP TABLE "{schema}".sentinel; --'
    odd_table = "t a b'le"
    frame = pd.DataFrame(
        {'col"; DROP TABLE sentinel; --': [1.0], "with space": ["O'Brien"], "ts": [None]}
    ).astype({"ts": "datetime64[us, UTC]"})
    predicate = pg_tables.TimeRange("ts", ts("2026-01-01T00:00"), ts("2026-01-01T01:00"))
    frame["ts"] = pd.Timestamp("2026-01-01", tz="UTC")
    spec = pg_tables.TableSpec(odd_schema, odd_table)
    try:
        with pg_tables.transaction(database_url) as connection:
            pg_tables.ensure_schema(connection, odd_schema)
            pg_tables.delete_rows(connection, odd_schema, odd_table, [predicate])
            pg_tables.write_frame(connection, spec, frame, [predicate])
        with pg_tables.transaction(database_url) as connection:
            back = pg_tables.read_frame(connection, odd_schema, odd_table, None, [predicate])
        assert back.columns.tolist() == frame.columns.tolist()
        assert back.iloc[0, 1] == "O'Brien"
        assert run_sql(f'SELECT count(*) FROM "{schema}".sentinel') == [(0,)]
    finally:
        run_sql('DROP SCHEMA IF EXISTS "{}" CASCADE'.format(odd_schema.replace('"', '""')))


def test_identifier_too_long_for_postgres_is_refused():
    with pytest.raises(pg_tables.TableError, match="longer than"):
        pg_tables.quote_ident("x" * 64)


def test_concurrent_first_writes_of_a_new_table_do_not_race(database_url, schema):
    errors: list[BaseException] = []
    barrier = threading.Barrier(6)

    def write(hour: int) -> None:
        start = ts(f"2026-01-01T{hour:02d}:00")
        predicate = pg_tables.TimeRange("ts", start, start.replace(hour=hour + 1))
        frame = pd.DataFrame({"ts": [start], "v": [hour]}).astype({"ts": "datetime64[us, UTC]"})
        try:
            barrier.wait()
            with pg_tables.transaction(database_url) as connection:
                pg_tables.ensure_schema(connection, schema)
                pg_tables.delete_rows(connection, schema, "raced", [predicate])
                pg_tables.write_frame(
                    connection, pg_tables.TableSpec(schema, "raced"), frame, [predicate]
                )
        except BaseException as error:  # collected: a thread's exception would vanish
            errors.append(error)

    threads = [threading.Thread(target=write, args=(hour,)) for hour in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert run_sql(f'SELECT v FROM "{schema}".raced ORDER BY v') == [(h,) for h in range(6)]


def test_loading_a_table_that_does_not_exist_names_it(database_url, schema):
    with pytest.raises(pg_tables.TableError, match=f"{schema}.nothing does not exist"):
        with pg_tables.transaction(database_url) as connection:
            pg_tables.read_frame(connection, schema, "nothing", None, [])


def test_runs_and_events_are_stored_in_postgres(instance, instance_schema, schema):
    result = run_prices(instance, schema, partition_key="2026-01-02-05:00")
    assert run_sql(
        f'SELECT status FROM "{instance_schema}".runs WHERE run_id = %s', (result.run_id,)
    ) == [("SUCCESS",)]
    events = run_sql(
        f'SELECT dagster_event_type FROM "{instance_schema}".event_logs WHERE run_id = %s',
        (result.run_id,),
    )
    assert (DagsterEventType.ASSET_MATERIALIZATION.value,) in events


@asset(
    partitions_def=HOURLY,
    ins={
        "prices": AssetIn(metadata={ABSENT_TABLE_IS_EMPTY: True}),
        "more_prices": AssetIn(metadata={ABSENT_TABLE_IS_EMPTY: True}),
    },
    metadata={"partition_expr": "ts"},
)
def optional_seen(
    context: AssetExecutionContext, prices: pd.DataFrame, more_prices: pd.DataFrame
) -> pd.DataFrame:
    """Records how many rows and columns its optional inputs loaded."""
    return pd.DataFrame(
        {
            "ts": [context.partition_time_window.start],
            "prices_rows": [len(prices)],
            "more_prices_columns": [len(more_prices.columns)],
        }
    ).astype({"ts": "datetime64[us, UTC]"})


@asset(partitions_def=HOURLY, metadata={"partition_expr": "ts"})
def more_prices(context: AssetExecutionContext) -> pd.DataFrame:
    raise AssertionError("never materialised: its table must not exist")


def test_an_optional_input_of_an_absent_table_loads_empty_and_a_present_one_its_rows(
    instance, schema
):
    assert run_prices(instance, schema, partition_key="2026-01-02-05:00").success
    assert materialize(
        [prices, more_prices, optional_seen],
        selection=[optional_seen],
        partition_key="2026-01-02-05:00",
        instance=instance,
        resources={"io_manager": io_manager_on(schema)},
    ).success
    # the table of prices exists: its rows; that of more_prices does not: nothing
    assert run_sql(f'SELECT prices_rows, more_prices_columns FROM "{schema}".optional_seen') == [
        (2, 0)
    ]
