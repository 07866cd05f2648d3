"""Forecast intervals: the method before against the one now, on the same forecasts.

Two markets: a GARCH(1,1) one with calm weeks (volatility a third) between ordinary ones and
jumps (0.2% of hours, 8 sigma), and the sample market (GARCH(1,1), Student-t shocks). Per
market, cut-offs 30 days apart; at each, the zero forecast and ridge are trained on the last
``window`` days and forecast every hour of the next 30, with both interval methods:

- before (``WINDOWS_METHOD``): one residual per non-overlapping h-hour window of the hold-out,
  scaled by the 168 h realised volatility, k = ceil((n + 1)(1 - a/2)) of those n windows;
- now (``HOURLY_METHOD``): every held-out hour's residual, scaled by the EWMA volatility
  (half-life a day), the same rank of the n residuals, at least 19 windows' worth.

The models are the same bytes under both (only the interval differs), so the forecasts are
the same. Per method and horizon: the share of forecasts with an interval, coverage, mean
width as a share of the price, and the mean interval (Winkler) score as a share of the price:
width + (2 / a) x the distance by which the realised price falls outside (lower is better),
and coverage in each volatility tercile (``ml/scoring.volatility_terciles``: the EWMA scale at
forecast time against the symbol's last 30 days, as forecast_metrics scores it).
Two windows: the default 180 days, and the 96 days of rows the bootstrap's first model day
has (``bootstrap.WARM_UP_HOURS``). Results go to benchmarks/results/intervals.json.

    python -m benchmarks.intervals
"""

import json
import time
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from cryptify_pipeline.bootstrap import WARM_UP_HOURS
from cryptify_pipeline.market.sample import SampleMarket
from cryptify_pipeline.ml.artifacts import sign_models
from cryptify_pipeline.ml.features import EWMA_VOLATILITY, LOOKBACK_HOURS, build_features
from cryptify_pipeline.ml.forecasting import forecast
from cryptify_pipeline.ml.scoring import TERCILES, volatility_terciles
from cryptify_pipeline.ml.signing import SigningKey
from cryptify_pipeline.ml.targets import HORIZONS, with_targets
from cryptify_pipeline.ml.training import HOURLY_METHOD, WINDOWS_METHOD, train_all
from cryptify_pipeline_tests.support.garch_market import garch_candles

warnings.filterwarnings("ignore")
LEVEL = 0.9
MODELS = ["zero_return", "ridge"]
SERVED_DAYS = 30
CUTOFFS = 10
FIRST_CUTOFF = datetime(2025, 9, 1, tzinfo=UTC)
# the rows the bootstrap's first model day has: its warm-up less the features' lookback
WINDOWS = {"180d": 180, "bootstrap": -(-(WARM_UP_HOURS - LOOKBACK_HOURS) // 24)}
METHODS = {"before": WINDOWS_METHOD, "now": HOURLY_METHOD}
KEY = SigningKey.generate()
HOUR = timedelta(hours=1)


def markets(start: datetime, end: datetime) -> dict[str, pd.DataFrame]:
    """Candles of each market from ``start`` (less the features' lookback) to ``end``."""
    first = start - LOOKBACK_HOURS * HOUR
    hours = int((end - first) / HOUR)
    garch = pd.concat(
        [garch_candles(f"G{i}/USDT", first, hours, seed=7 + i, regimes=True, jump_rate=0.002)
         for i in range(4)]
    )  # fmt: skip
    sample = SampleMarket().fetch(["BTC/USDT", "ETH/USDT", "SOL/USDT", "XRP/USDT"], first, end)
    return {"garch+calm+jumps": garch, "sample": sample}


def forecasts(candles: pd.DataFrame, start: datetime, end: datetime, window: int) -> pd.DataFrame:
    """Every forecast of every cut-off under both methods, with the realised price."""
    rows = with_targets(build_features(candles, start, end))
    symbols = sorted(candles["symbol"].unique())
    closes = candles.set_index(["symbol", "ts"])["close"]
    made = []
    for index in range(CUTOFFS):
        cutoff = FIRST_CUTOFF + timedelta(days=index * SERVED_DAYS)
        for name, method in METHODS.items():
            models = train_all(rows, cutoff, HORIZONS, MODELS, window, interval_level=LEVEL,
                               interval_method=method)  # fmt: skip
            serving = pd.concat(
                [sign_models(models.assign(day=pd.Timestamp(cutoff + timedelta(days=d - 1))),
                             KEY) for d in range(SERVED_DAYS)]
            )  # fmt: skip
            frame = forecast(rows, serving, symbols, cutoff,
                             cutoff + timedelta(days=SERVED_DAYS), KEY)  # fmt: skip
            made.append(frame.assign(method=name))
    frame = pd.concat(made, ignore_index=True)
    realised = closes.reindex(pd.MultiIndex.from_frame(frame[["symbol", "target_ts"]]))
    volatility = rows[["symbol", "ts", EWMA_VOLATILITY]].rename(
        columns={EWMA_VOLATILITY: "volatility"}
    )
    days = frame["ts"].dt.floor("D").unique()
    terciles = pd.concat([volatility_terciles(volatility, day.to_pydatetime()) for day in days])
    tercile = terciles.reindex(pd.MultiIndex.from_frame(frame[["symbol", "ts"]]))
    return frame.assign(realised=realised.to_numpy(), tercile=tercile.to_numpy(float))


def summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Per method and horizon: share with an interval, coverage, width and Winkler score."""
    alpha = 1 - LEVEL
    with_interval = frame[frame["interval_calibrated"]]
    low, high, y = with_interval["lower"], with_interval["upper"], with_interval["realised"]
    width = high - low
    winkler = width + (2 / alpha) * ((low - y).clip(lower=0) + (y - high).clip(lower=0))
    scored = with_interval.assign(
        covered=(low <= y) & (y <= high),
        width_pct=100 * width / with_interval["close"],
        winkler_pct=100 * winkler / with_interval["close"],
    )
    table = scored.groupby(["method", "horizon_h"]).agg(
        coverage=("covered", "mean"), width_pct=("width_pct", "mean"),
        winkler_pct=("winkler_pct", "mean"),
    )  # fmt: skip
    for index, name in enumerate(TERCILES):
        mine = scored[scored["tercile"] == index]
        table[f"coverage_{name}"] = mine.groupby(["method", "horizon_h"])["covered"].mean()
    share = frame.groupby(["method", "horizon_h"])["interval_calibrated"].mean()
    return table.join(share.rename("with_interval"), how="right").reset_index()


def main() -> None:
    started = time.perf_counter()
    start = FIRST_CUTOFF - timedelta(days=max(WINDOWS.values()) + 2)
    end = FIRST_CUTOFF + timedelta(days=CUTOFFS * SERVED_DAYS + 2)
    results: dict[str, object] = {
        "level": LEVEL, "cutoffs": CUTOFFS, "served_days": SERVED_DAYS, "models": MODELS,
    }  # fmt: skip
    print(f"{LEVEL:.0%} intervals, {CUTOFFS} cut-offs {SERVED_DAYS} days apart, models {MODELS}")
    for market, candles in markets(start, end).items():
        for window_name, window in WINDOWS.items():
            table = summary(forecasts(candles, start, end, window))
            print(f"\n{market}, {window}-day window ({window_name})")
            print(
                "method  h  with_interval  coverage  width % of price  Winkler % of price"
                "  coverage low / mid / high vol"
            )
            for row in table.itertuples():
                print(
                    f"{row.method:<7}{row.horizon_h:>2}  {row.with_interval:>13.2f}  "
                    f"{row.coverage:>8.3f}  {row.width_pct:>16.2f}  {row.winkler_pct:>18.2f}"
                    f"  {row.coverage_low_vol:.3f} / {row.coverage_mid_vol:.3f} / "
                    f"{row.coverage_high_vol:.3f}"
                )
                prefix = f"{market}/{window_name}/{row.method}/{row.horizon_h}h"
                for column in ("with_interval", "coverage", "width_pct", "winkler_pct",
                               *(f"coverage_{name}" for name in TERCILES)):  # fmt: skip
                    value = getattr(row, column)
                    results[f"{prefix}/{column}"] = None if np.isnan(value) else round(value, 4)
    results["seconds"] = round(time.perf_counter() - started, 1)
    out = Path(__file__).parent / "results" / "intervals.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\ntook {results['seconds']} s; wrote {out}")


if __name__ == "__main__":
    main()
