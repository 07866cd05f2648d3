"""The backtest over a year: hourly forecasts for 2 symbols x every model of the zoo x 3
horizons, traded by the three rules.

The pure functions the assets call (``ml/backtest.py``), on synthetic forecasts around the
sample market's candles: ``backtest_day`` for each of 365 days, as the ``backtest`` asset runs
them in a year's backfill, then ``summarise`` over the 30-day and all-time windows, as
``backtest_summary`` does, bootstrap tests included. The Dagster/Postgres path (reading a year
of forecasts, writing the rows) is not timed here: filling a year of candles and forecasts
through the pipeline takes longer than the backtest itself; its IO is the IO manager's, timed by
benchmarks/io_manager.py. Wall time per stage and the process's peak RSS go to
benchmarks/results/backtest.json.

    python -m benchmarks.backtest
"""

import resource
import time
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from benchmarks._common import report
from cryptify_pipeline.market.sample import SampleMarket
from cryptify_pipeline.ml.backtest import RULES, Costs, backtest_day, summarise
from cryptify_pipeline.ml.models import ZOO
from cryptify_pipeline.ml.targets import HORIZONS

SYMBOLS = ["BTC/USDT", "ETH/USDT"]
DAYS = 365
FIRST_DAY = datetime(2025, 1, 1, tzinfo=UTC)


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
        "path": "pure functions (ml/backtest.py) on synthetic forecasts; no Dagster/Postgres IO",
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
    report("backtest", results)


if __name__ == "__main__":
    main()
