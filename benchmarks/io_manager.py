"""Write and read 1,000,000 candle-shaped rows through the IO manager, to_sql and raw ADBC.

Prints rows/s and ratios and writes benchmarks/results/io_manager.json. The IO manager is called
as Dagster calls it for a single-run backfill over the whole range (one partition-range slice,
with a primary key and a partition index); raw ADBC writes into an identical table, and into a
bare one. The same write as a full Dagster run on a Postgres-backed instance is reported too:
it adds one materialisation event per partition, which is Dagster's cost, not the IO manager's.

    python -m benchmarks.io_manager [--rows 1000000] [--symbols 125]
"""

import argparse
import resource
import time
import warnings
from datetime import UTC, datetime

import adbc_driver_postgresql.dbapi as adbc
import numpy as np
import pandas as pd
import pyarrow as pa
import sqlalchemy
from dagster import (
    AssetKey,
    BackfillPolicy,
    HourlyPartitionsDefinition,
    OutputContext,
    PartitionKeyRange,
    asset,
    build_input_context,
    build_output_context,
    materialize,
)
from dagster._core.types.dagster_type import resolve_dagster_type

from benchmarks._common import postgres_instance, report
from cryptify_pipeline_tests.support.database import suite_database_url
from cryptify_pipeline_tests.support.pipeline import io_manager_on

warnings.filterwarnings("ignore")
SCHEMA = "bench_io"
IO_MANAGER = io_manager_on(SCHEMA)
START = datetime(2020, 1, 1, tzinfo=UTC)
HOURLY = HourlyPartitionsDefinition(start_date=START, timezone="UTC")


def candle_frame(rows: int, symbols: int) -> pd.DataFrame:
    hours = rows // symbols
    rng = np.random.default_rng(7)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, hours * symbols)))
    ts = pd.date_range(START, periods=hours, freq="h", tz="UTC").as_unit("us")
    return pd.DataFrame(
        {
            "ts": np.repeat(ts, symbols),
            "symbol": pd.Series([f"SYM{i:03d}/USDT" for i in range(symbols)] * hours, dtype="str"),
            "open": close * (1 + rng.normal(0, 0.001, close.size)),
            "high": close * 1.01,
            "low": close * 0.99,
            "close": close,
            "volume": rng.gamma(2.0, 50.0, close.size),
        }
    )


def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def run_sql(engine: sqlalchemy.Engine, *statements: str) -> None:
    with engine.begin() as connection:
        for statement in statements:
            connection.exec_driver_sql(statement)


def adbc_ingest(url, table: pa.Table, name: str, mode: str) -> None:
    with adbc.connect(url.libpq) as connection, connection.cursor() as cursor:
        cursor.adbc_ingest(name, table, mode=mode, db_schema_name=SCHEMA)
        connection.commit()


def adbc_read(url, rows: int) -> None:
    with adbc.connect(url.libpq) as connection, connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {SCHEMA}.candles_adbc")
        assert len(cursor.fetch_arrow_table().to_pandas()) == rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--symbols", type=int, default=125)
    args = parser.parse_args()

    frame = candle_frame(args.rows, args.symbols)
    rows = len(frame)
    hours = rows // args.symbols
    last_key = HOURLY.get_partition_key_for_timestamp(
        (START + pd.Timedelta(hours=hours - 1)).timestamp()
    )
    url = suite_database_url()
    print(f"{rows:,} rows ({args.symbols} symbols x {hours} hours) against {url}")

    key_range = PartitionKeyRange(HOURLY.get_first_partition_key(), last_key)
    metadata = {"partition_expr": "ts", "primary_key": ["symbol", "ts"]}

    def output_context() -> OutputContext:  # a context takes each metadata key once
        return build_output_context(
            asset_key=AssetKey("candles"),
            asset_partitions_def=HOURLY,
            asset_partition_key_range=key_range,
            definition_metadata=metadata,
        )

    input_context = build_input_context(
        asset_key=AssetKey("candles"),
        upstream_output=output_context(),
        dagster_type=resolve_dagster_type(pd.DataFrame),
        asset_partitions_def=HOURLY,
        asset_partition_key_range=key_range,
    )
    io_manager = IO_MANAGER.create_io_manager(None)
    engine = sqlalchemy.create_engine(url.sqlalchemy)
    run_sql(engine, f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")

    results: dict[str, float] = {"rows": rows, "partitions": hours}
    # The IO manager as Dagster calls it for a single-run backfill of the whole range.
    results["write_seconds"] = timed(lambda: io_manager.handle_output(output_context(), frame))
    results["rewrite_seconds"] = timed(lambda: io_manager.handle_output(output_context(), frame))
    read_back: list[pd.DataFrame] = []
    results["read_seconds"] = timed(lambda: read_back.append(io_manager.load_input(input_context)))
    assert len(read_back[0]) == rows and read_back[0]["close"].equals(frame["close"])

    # The same write as a real Dagster run: adds one materialisation event per partition.
    @asset(partitions_def=HOURLY, backfill_policy=BackfillPolicy.single_run(), metadata=metadata)
    def candles() -> pd.DataFrame:
        return frame

    tags = {
        "dagster/asset_partition_range_start": key_range.start,
        "dagster/asset_partition_range_end": key_range.end,
    }
    with postgres_instance() as instance:
        results["dagster_backfill_run_seconds"] = timed(
            lambda: materialize(
                [candles],
                instance=instance,
                tags=tags,
                resources={"io_manager": IO_MANAGER},
            )
        )

    results["to_sql_seconds"] = timed(
        lambda: frame.to_sql("candles_to_sql", engine, schema=SCHEMA, index=False, chunksize=50_000)
    )
    arrow_frame = pa.Table.from_pandas(frame, preserve_index=False)
    run_sql(
        engine,
        f"CREATE TABLE {SCHEMA}.candles_adbc (ts timestamptz, symbol text, open float8,"
        " high float8, low float8, close float8, volume float8, PRIMARY KEY (symbol, ts))",
        f"CREATE INDEX ON {SCHEMA}.candles_adbc (ts)",
    )
    results["adbc_write_seconds"] = timed(
        lambda: adbc_ingest(url, arrow_frame, "candles_adbc", "append")
    )
    results["adbc_write_no_index_seconds"] = timed(
        lambda: adbc_ingest(url, arrow_frame, "candles_adbc_bare", "create")
    )
    results["adbc_read_seconds"] = timed(lambda: adbc_read(url, rows))
    run_sql(engine, f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")

    for name in [
        "write",
        "rewrite",
        "read",
        "to_sql",
        "adbc_write",
        "adbc_write_no_index",
        "adbc_read",
    ]:
        results[f"{name}_rows_per_s"] = round(rows / results[f"{name}_seconds"])
    results["write_vs_to_sql"] = round(
        results["write_rows_per_s"] / results["to_sql_rows_per_s"], 2
    )
    results["write_vs_adbc"] = round(
        results["write_rows_per_s"] / results["adbc_write_rows_per_s"], 2
    )
    results["read_vs_adbc"] = round(results["read_rows_per_s"] / results["adbc_read_rows_per_s"], 2)
    results["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    results = {k: round(v, 3) if isinstance(v, float) else v for k, v in results.items()}

    report("io_manager", results)


if __name__ == "__main__":
    main()
