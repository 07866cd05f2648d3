"""The backtest over a year: hourly forecasts for 2 symbols x every model of the zoo x 3
horizons, traded by the three rules.

The pure functions the assets call (``ml/backtest.py``), on synthetic forecasts around the
sample market's candles: ``backtest_day`` for each of 365 days, as the ``backtest`` asset runs
them in a year's backfill, then ``summarise`` over the 30-day and all-time windows, as
``backtest_summary`` does, bootstrap tests included. Then the summary's full asset path: the
year's rows written through the IO manager, and ``backtest_summary`` materialised by Dagster on
a Postgres-backed instance (reading them back, summarising, writing, the plot). The daily
``backtest`` asset's own Dagster path (a year of candles and forecasts filled through the
pipeline first) is not timed: that fill takes far longer than the backtest itself. Wall time
per stage and the process's peak RSS go to benchmarks/results/backtest.json.

    python -m benchmarks.backtest
"""

import json
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
from dagster import AssetKey, DailyPartitionsDefinition, PartitionKeyRange, materialize
from dagster._core.execution.context.output import build_output_context

from benchmarks._common import bench_definitions, postgres_instance, report, sql
from cryptify_pipeline.assets.columns import BACKTEST, described
from cryptify_pipeline.market.sample import SampleMarket
from cryptify_pipeline.ml.backtest import RULES, Costs, backtest_day, summarise
from cryptify_pipeline.ml.models import ZOO
from cryptify_pipeline.ml.targets import HORIZONS
from cryptify_pipeline_tests.support.pipeline import io_manager_on

SYMBOLS = ["BTC/USDT", "ETH/USDT"]
DAYS = 365
FIRST_DAY = datetime(2025, 1, 1, tzinfo=UTC)
SCHEMA = "bench_backtest"


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def synthetic_forecasts(candles: pd.DataFrame, hours: pd.DatetimeIndex) -> pd.DataFrame:
    """Every model and horizon, every hour: noise of a realistic size with a 90% interval,
    around the candles' close (what the rules read: the forecast, close, lower, upper)."""
    rng = np.random.default_rng(0)
    frames = []
    for symbol in SYMBOLS:
        close = candles[candles["symbol"] == symbol].set_index("ts")["close"]
        close = close.reindex(hours).ffill().bfill().to_numpy()
        for model in ZOO:
            for horizon in HORIZONS:
                spread = 0.01 * np.sqrt(horizon)
                forecast = rng.normal(0, 0.2 * spread, len(hours))
                frames.append(
                    pd.DataFrame({
                        "ts": hours, "symbol": symbol, "model": model, "horizon_h": horizon,
                        "pred_log_return": forecast, "close": close,
                        "lower": close * np.exp(forecast - 1.645 * spread),
                        "upper": close * np.exp(forecast + 1.645 * spread),
                    })
                )  # fmt: skip
    return pd.concat(frames, ignore_index=True)


def main() -> None:
    results: dict[str, float | int | str] = {
        "symbols": len(SYMBOLS), "models": len(ZOO), "horizons": len(HORIZONS),
        "rules": len(RULES), "days": DAYS,
        "path": "pure functions (ml/backtest.py) on synthetic forecasts, then backtest_summary "
        "as a Dagster run on Postgres (its own process) over the year's rows",
    }  # fmt: skip
    # the backtest of the first day reads forecasts from two days before
    hours = pd.date_range(
        FIRST_DAY - timedelta(days=2), FIRST_DAY + timedelta(days=DAYS), freq="h", inclusive="left"
    )
    candles = SampleMarket().fetch(
        SYMBOLS, hours[0].to_pydatetime(), hours[-1].to_pydatetime() + timedelta(hours=1)
    )
    forecasts = synthetic_forecasts(candles, hours)
    results["forecast_rows"] = len(forecasts)
    results["candle_rows"] = len(candles)
    results["inputs_peak_rss_mb"] = peak_rss_mb()
    print(f"{len(forecasts):,} forecasts, {len(candles):,} candles", flush=True)

    costs = Costs(fee_bps=10, slippage_bps=5)
    started = time.perf_counter()
    days = [
        backtest_day(forecasts, candles, FIRST_DAY + timedelta(days=d), list(RULES), costs, False)
        for d in range(DAYS)
    ]
    backtest = pd.concat(days, ignore_index=True)
    results["backtest_seconds"] = round(time.perf_counter() - started, 1)
    results["backtest_seconds_per_day"] = round(results["backtest_seconds"] / DAYS, 3)
    results["backtest_rows"] = len(backtest)
    results["backtest_peak_rss_mb"] = peak_rss_mb()
    print(f"backtest: {results['backtest_seconds']} s", flush=True)

    started = time.perf_counter()
    summary = summarise(backtest, last_days=30)
    results["summary_seconds"] = round(time.perf_counter() - started, 1)
    results["summary_rows"] = len(summary)
    results["summary_peak_rss_mb"] = peak_rss_mb()
    tested = summary["sharpe_p_vs_zero"].notna()
    results["summary_rows_tested"] = int(tested.sum())
    # the forecasts are noise: after costs they should lose, and beat zero only by chance
    all_time = summary[summary["window"] == "all"]
    results["noise_median_total_return_sign_rule"] = round(
        float(all_time[all_time["rule"] == "sign"]["total_return"].median()), 4
    )
    results["noise_rows_beating_zero"] = int(summary["beats_zero"].sum())

    asset_path(backtest, results)
    report("backtest", results)


def asset_path(backtest: pd.DataFrame, results: dict) -> None:
    """The year's rows into the ``backtest`` table through the IO manager, as the daily asset
    writes them, then ``backtest_summary`` as a Dagster run that reads them back."""
    sql(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
    started = time.perf_counter()
    daily = DailyPartitionsDefinition(start_date=FIRST_DAY.strftime("%Y-%m-%d"), timezone="UTC")
    last = FIRST_DAY + timedelta(days=DAYS - 1)
    context = build_output_context(
        asset_key=AssetKey("backtest"),
        definition_metadata={
            "partition_expr": "day",
            "primary_key": ["day", "symbol", "model", "horizon_h", "rule"],
            **described(BACKTEST),
        },
        asset_partitions_def=daily,
        asset_partition_key_range=PartitionKeyRange(
            FIRST_DAY.strftime("%Y-%m-%d"), last.strftime("%Y-%m-%d")
        ),
    )
    io_manager_on(SCHEMA).create_io_manager(None).handle_output(context, backtest)
    results["write_year_seconds"] = round(time.perf_counter() - started, 1)
    # its own process: its peak RSS is the asset run's, not this process's frames
    command = [sys.executable, "-m", "benchmarks.backtest", "--summary-asset"]
    output = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True)
    results.update(json.loads(output.stdout.strip().splitlines()[-1]))
    results["summary_table_rows"] = sql(f"SELECT count(*) FROM {SCHEMA}.backtest_summary")[0][0]
    sql(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")


def summary_asset_run() -> None:
    """``backtest_summary`` as a Dagster run; prints its time and this process's peak RSS."""
    pipeline = bench_definitions(
        SCHEMA, CRYPTIFY_START=FIRST_DAY.strftime("%Y-%m-%d"), CRYPTIFY_SYMBOLS=",".join(SYMBOLS),
        CRYPTIFY_SOURCE="sample",
    )  # fmt: skip
    with postgres_instance() as instance:
        started = time.perf_counter()
        result = materialize(
            list(pipeline.assets or []), selection=["backtest_summary"], instance=instance,
            resources=pipeline.resources,
        )  # fmt: skip
        assert result.success
        seconds = round(time.perf_counter() - started, 1)
    print(json.dumps({"summary_asset_run_seconds": seconds,
                      "summary_asset_peak_rss_mb": peak_rss_mb()}))  # fmt: skip


if __name__ == "__main__":
    if sys.argv[1:] == ["--summary-asset"]:
        summary_asset_run()
    else:
        main()
