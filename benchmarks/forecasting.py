"""Forecasting at scale: two years of hourly candles for 3 symbols from the sample market.

Stages, each a real Dagster run on a Postgres-backed instance: the features backfill (one run
over 17,520 hourly partitions), training one daily partition (7 models x 3 horizons x 3
symbols, per-symbol models, the default 180-day window), and a 30-day walk-forward (daily
training, hourly predictions, daily metrics, then the leaderboard). Besides the times, what the
walk-forward's forecasts were worth: interval coverage per horizon and how many models the
Diebold-Mariano test calls better than zero. The pure feature computation is timed apart
from its Dagster run. Wall time and peak RSS per stage go to benchmarks/results/forecasting.json.

    python -m benchmarks.forecasting
"""

import resource
import time
import warnings
from datetime import UTC, datetime, timedelta

import pandas as pd
from dagster import materialize

from benchmarks._common import bench_definitions, postgres_instance, report, sql
from cryptify_pipeline.market.sample import SampleMarket
from cryptify_pipeline.ml.features import LOOKBACK_HOURS, build_features
from cryptify_pipeline.ml.significance import significantly_better
from cryptify_pipeline_tests.support.database import suite_database_url

warnings.filterwarnings("ignore")
SCHEMA = "bench_forecasting"
SYMBOLS = ["BTC/USDT", "ETH/USDT", "SOL/USDT"]
# two years back from today: the partitions must start earlier than the default 2025-01-01
PIPELINE = bench_definitions(
    SCHEMA, CRYPTIFY_START="2024-01-01", CRYPTIFY_SYMBOLS=",".join(SYMBOLS),
    CRYPTIFY_SOURCE="sample",
)  # fmt: skip
ASSETS = list(PIPELINE.assets or [])


def key(moment: datetime, daily: bool = False) -> str:
    return moment.strftime("%Y-%m-%d" if daily else "%Y-%m-%d-%H:%M")


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def main() -> None:
    resources = PIPELINE.resources
    last_closed = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    first = last_closed - timedelta(hours=17_520 - 1)
    results: dict[str, float] = {"symbols": len(SYMBOLS), "hours": 17_520}
    print(f"{len(SYMBOLS)} symbols x 17,520 hours to {last_closed:%Y-%m-%d %H:%M}")
    print(f"against {suite_database_url()}")

    candles = SampleMarket().fetch(SYMBOLS, first - timedelta(hours=LOOKBACK_HOURS), last_closed)
    started = time.perf_counter()
    build_features(candles, first, last_closed + timedelta(hours=1))
    results["features_compute_seconds"] = round(time.perf_counter() - started, 2)

    with postgres_instance() as instance:

        def stage(name: str, selection: list[str], start: str, end: str, config=None) -> None:
            started = time.perf_counter()
            result = materialize(
                ASSETS, selection=selection, instance=instance, resources=resources,
                run_config=config,
                tags={"dagster/asset_partition_range_start": start,
                      "dagster/asset_partition_range_end": end},
            )  # fmt: skip
            assert result.success, name
            results[f"{name}_seconds"] = round(time.perf_counter() - started, 2)
            results[f"{name}_peak_rss_mb"] = peak_rss_mb()
            print(f"{name:>24}: {results[f'{name}_seconds']:8.2f} s")

        stage("candles", ["candles"], key(first), key(last_closed))
        stage("features", ["features"], key(first), key(last_closed))
        walk_first = (last_closed - timedelta(days=32)).replace(hour=0)
        day = walk_first - timedelta(days=1)
        stage("train_partition", ["models"], key(day, True), key(day, True))
        walk_last = walk_first + timedelta(days=29)
        started = time.perf_counter()
        stage("walk_forward_models", ["models"], key(walk_first, True), key(walk_last, True))
        stage("walk_forward_predictions", ["predictions"], key(walk_first + timedelta(days=1)),
              key(walk_last + timedelta(days=1, hours=23)))  # fmt: skip
        stage("walk_forward_metrics", ["forecast_metrics"],
              key(walk_first + timedelta(days=1), True), key(walk_last, True))  # fmt: skip
        results["walk_forward_seconds"] = round(time.perf_counter() - started, 2)
        leaderboard = materialize(ASSETS, selection=["leaderboard"], instance=instance,
                                  resources=resources)  # fmt: skip
        assert leaderboard.success, "leaderboard"
    results.update(accuracy())
    results["peak_rss_mb"] = peak_rss_mb()
    report("forecasting", results)


def accuracy() -> dict[str, float]:
    """What the walk-forward's forecasts were worth: interval coverage per horizon (all models
    and symbols pooled), and how many (symbol, horizon, model) the leaderboard calls
    significantly better than zero, of how many tested."""
    results: dict[str, float] = {}
    for horizon, covered, scored in sql(
        f"SELECT horizon_h, sum(covered), sum(interval_n) FROM {SCHEMA}.forecast_metrics"
        " GROUP BY horizon_h ORDER BY horizon_h"
    ):
        results[f"coverage_{horizon}h"] = round(float(covered) / float(scored), 4)
    board = pd.DataFrame(
        sql(f"SELECT symbol, horizon_h, model, dm_p_value FROM {SCHEMA}.leaderboard"
            " WHERE \"window\" = 'all' AND model <> 'zero_return'"),
        columns=["symbol", "horizon_h", "model", "dm_p_value"],
    )  # fmt: skip
    better = [
        significantly_better(dict(zip(group["model"], group["dm_p_value"], strict=True)))
        for _, group in board.groupby(["symbol", "horizon_h"])
    ]
    results["models_tested_against_zero"] = len(board)
    results["significantly_better_than_zero"] = sum(map(len, better))
    return results


if __name__ == "__main__":
    main()
