"""Write and read 1,000,000 candle-shaped rows through the IO manager, to_sql and raw ADBC.

Prints rows/s and ratios and writes benchmarks/results/io_manager.json. The IO manager is called
as Dagster calls it for a single-run backfill over the whole range (one partition-range slice,
with a primary key and a partition index): a first write, a rewrite of the same slice, and reads
of it (the median of three), in a process of its own whose peak RSS is
``io_manager_peak_rss_mb``. Raw ADBC then runs the very query the IO manager ran (fetch +
``to_pandas``, which gives the same dtypes) in that process, and writes into an identical table
and a bare one in the main process. The same write as a full Dagster run on a Postgres-backed
instance is reported too: it adds one materialisation event per partition, which is Dagster's
cost, not the IO manager's.

    python -m benchmarks.io_manager [--rows 1000000] [--symbols 125]
"""

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path

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
from cryptify_pipeline.storage import pg_tables
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
    # Built in Arrow from codes: a list of a million names would cost this process ~70 MB.
    names = pa.array([f"SYM{i:03d}/USDT" for i in range(symbols)], pa.large_string())
    codes = pa.array(np.tile(np.arange(symbols, dtype=np.int32), hours))
    symbol = pa.DictionaryArray.from_arrays(codes, names).cast(pa.large_string())
    return pd.DataFrame(
        {
            "ts": np.repeat(ts, symbols),
            "symbol": pd.Series(pd.array(symbol, dtype="str")),
            "open": close * (1 + rng.normal(0, 0.001, close.size)),
            "high": close * 1.01,
            "low": close * 0.99,
            "close": close,
            "volume": rng.gamma(2.0, 50.0, close.size),
        },
        copy=False,
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


def peak_rss_mb() -> int:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def range_of(rows: int, symbols: int) -> tuple[PartitionKeyRange, datetime]:
    """The partition range the rows cover, and its end."""
    hours = rows // symbols
    last_key = HOURLY.get_partition_key_for_timestamp(
        (START + pd.Timedelta(hours=hours - 1)).timestamp()
    )
    return PartitionKeyRange(HOURLY.get_first_partition_key(), last_key), START + pd.Timedelta(
        hours=hours
    )


def io_manager_part(rows: int, symbols: int) -> dict[str, float]:
    """The IO manager's write, rewrite and reads, then raw ADBC on the same query: run in a
    process of its own, so its peak RSS is the IO manager's, not to_sql's or Dagster's."""
    frame = candle_frame(rows, symbols)
    rows = len(frame)
    expected_close = np.sort(frame["close"].to_numpy())  # rows of one hour come in any order
    key_range, end = range_of(rows, symbols)
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
    results: dict[str, float] = {}
    outputs = [frame]
    del frame

    def write() -> None:
        io_manager.handle_output(output_context(), outputs[0])

    results["write_seconds"] = timed(write)
    results["rewrite_seconds"] = timed(write)
    outputs.clear()  # as in a run, the step that wrote its output holds it no longer

    def read() -> pd.DataFrame:
        return io_manager.load_input(input_context)

    read_back = read()
    assert len(read_back) == rows and np.array_equal(np.sort(read_back["close"]), expected_close)
    dtypes = read_back.dtypes.to_dict()
    del read_back
    results["read_seconds"] = statistics.median(timed(read) for _ in range(3))
    results["io_manager_peak_rss_mb"] = peak_rss_mb()

    # Raw ADBC: the query the IO manager ran, its values bound alike, fetched into pandas.
    query, params = pg_tables.select_statement(
        SCHEMA, "candles", None, [pg_tables.TimeRange("ts", START, end)]
    )
    url = suite_database_url()

    def raw_read() -> pd.DataFrame:
        with adbc.connect(url.libpq) as connection, connection.cursor() as cursor:
            cursor.execute(query, parameters=params)
            return cursor.fetch_arrow_table().to_pandas()

    raw = raw_read()
    assert len(raw) == rows and raw.dtypes.to_dict() == dtypes, (raw.dtypes, dtypes)
    del raw
    results["adbc_read_seconds"] = statistics.median(timed(raw_read) for _ in range(3))
    return results


def run_io_manager_part(args: argparse.Namespace) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "io_manager.json"
        command = [sys.executable, "-m", "benchmarks.io_manager", "--rows", str(args.rows)]
        command += ["--symbols", str(args.symbols), "--io-manager-only", str(out)]
        subprocess.run(command, check=True)
        return json.loads(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--symbols", type=int, default=125)
    parser.add_argument("--io-manager-only", metavar="FILE", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.io_manager_only:
        results = io_manager_part(args.rows, args.symbols)
        Path(args.io_manager_only).write_text(json.dumps(results))
        return

    url = suite_database_url()
    hours = args.rows // args.symbols
    rows = hours * args.symbols
    print(f"{rows:,} rows ({args.symbols} symbols x {hours} hours) against {url}")
    engine = sqlalchemy.create_engine(url.sqlalchemy)
    run_sql(engine, f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
    results: dict[str, float] = {"rows": rows, "partitions": hours}
    results.update(run_io_manager_part(args))

    frame = candle_frame(args.rows, args.symbols)
    key_range, _ = range_of(rows, args.symbols)
    metadata = {"partition_expr": "ts", "primary_key": ["symbol", "ts"]}

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
    results["rewrite_vs_write"] = round(results["rewrite_seconds"] / results["write_seconds"], 2)
    results["read_vs_adbc"] = round(results["read_rows_per_s"] / results["adbc_read_rows_per_s"], 2)
    results["comparisons_peak_rss_mb"] = peak_rss_mb()
    results = {k: round(v, 3) if isinstance(v, float) else v for k, v in results.items()}

    report("io_manager", results)


if __name__ == "__main__":
    main()
