"""Does the market context help? Price models against their ``+context`` twins on the sample.

Three symbols, 120 days of the sample market's candles and context (open interest, funding,
ES=F). A walk-forward over the last ``WALK_DAYS`` days: models are trained on the
``TRAINING_DAYS`` before a cut-off (as the ``models`` asset does), every ``RETRAIN_EVERY_DAYS``
days rather than daily to keep it affordable, and forecast every hour of the days after their
cut-off (``ml/forecasting``), and are scored against the realised
candles (``ml/scoring``, every model on the same rows); the days are ranked into the
leaderboard, whose ``dm_stat`` / ``dm_p_value`` test each model against the zero forecast.
Beside it, the head-to-head: the Diebold-Mariano test of each ``+context`` model against its
price twin on squared errors (> 0: the context model's errors are lower), and how strongly each
context column correlates with the future returns at all (on the synthetic sample there is no
reason it should). Pure functions, no Dagster: the asset chain is the same code.

    python -m benchmarks.ablation            # the walk-forward (~30 min on a loaded 2-core box)
    python -m benchmarks.ablation --timing   # only the cost of the context features
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks._common import report
from cryptify_pipeline.market.sample import SampleContext, SampleEquityIndex, SampleMarket
from cryptify_pipeline.ml.artifacts import sign_models
from cryptify_pipeline.ml.context_features import CONTEXT_COLUMNS, MarketContext, with_context
from cryptify_pipeline.ml.features import LOOKBACK_HOURS, build_features
from cryptify_pipeline.ml.forecasting import forecast
from cryptify_pipeline.ml.models import CONTEXT_SUFFIX
from cryptify_pipeline.ml.scoring import rank_models, score_day
from cryptify_pipeline.ml.significance import diebold_mariano
from cryptify_pipeline.ml.signing import SigningKey
from cryptify_pipeline.ml.targets import with_targets
from cryptify_pipeline.ml.training import train_all

warnings.filterwarnings("ignore")
SYMBOLS = ["BTC/USDT", "ETH/USDT", "SOL/USDT"]
INDEX = "ES=F"
HORIZONS = (6, 24)
TWINS = ("ridge", "hist_gbm")
MODELS = ["zero_return", "drift", *TWINS, *(f"{m}{CONTEXT_SUFFIX}" for m in TWINS)]
DAYS = 120  # of feature rows (after the candles' lookback)
TRAINING_DAYS = 90
WALK_DAYS = DAYS - TRAINING_DAYS  # the first forecast day has a full training window
RETRAIN_EVERY_DAYS = 7  # daily retraining took 3.5 min a day on the shared 2-core machine
LEVEL = 0.9
END = datetime(2025, 6, 1, tzinfo=UTC)  # fixed: the same numbers on every run
HOUR = timedelta(hours=1)


def market(first: datetime, end: datetime) -> tuple[pd.DataFrame, MarketContext]:
    context = MarketContext(
        SampleContext().fetch_open_interest(SYMBOLS, first, end),
        SampleContext().fetch_funding_rates(SYMBOLS, first, end),
        SampleEquityIndex().fetch([INDEX], first, end),
        INDEX,
    )
    return SampleMarket().fetch(SYMBOLS, first, end), context


def head_to_head(forecasts: pd.DataFrame, candles: pd.DataFrame) -> list[dict[str, object]]:
    """Per symbol, horizon and twin: the DM test of ``+context`` against price on the hours
    both forecast (> 0: the context model's squared errors are lower)."""
    closes = candles.set_index(["symbol", "ts"])["close"]
    realised = closes.reindex(pd.MultiIndex.from_frame(forecasts[["symbol", "target_ts"]]))
    frame = forecasts.assign(y=np.log(realised.to_numpy() / forecasts["close"].to_numpy()))
    rows = []
    for (symbol, horizon), group in frame.groupby(["symbol", "horizon_h"], sort=True):
        wide = group.pivot_table(index="ts", columns="model", values="pred_log_return")
        y = group.drop_duplicates("ts").set_index("ts")["y"].reindex(wide.index)
        for twin in TWINS:
            price, context = wide[twin], wide[f"{twin}{CONTEXT_SUFFIX}"]
            hours = pd.date_range(wide.index.min(), wide.index.max(), freq="h")
            d = ((y - price) ** 2 - (y - context) ** 2).reindex(hours).to_numpy()
            stat, p_value, _ = diebold_mariano(d, int(horizon))  # NaN: too few hours
            rows.append(
                {
                    "symbol": symbol,
                    "horizon_h": int(horizon),
                    "model": twin,
                    "rmse_price": float(np.sqrt(np.nanmean((y - price) ** 2))),
                    "rmse_context": float(np.sqrt(np.nanmean((y - context) ** 2))),
                    "dm_context_vs_price": stat,
                    "p_context_better": p_value,
                }
            )
    return rows


def information(features: pd.DataFrame) -> pd.DataFrame:
    """Spearman correlation of each context column with the future return, per horizon: what
    the context could tell a model at all."""
    rows = with_targets(features, HORIZONS)
    return pd.DataFrame(
        {
            f"{h}h": [
                rows[column].corr(rows[f"target_{h}h"], method="spearman")
                for column in CONTEXT_COLUMNS
            ]
            for h in HORIZONS
        },
        index=list(CONTEXT_COLUMNS),
    )


def context_cost() -> dict[str, float]:
    """Seconds to compute the price features of two years of 3 symbols (52,560 rows), and to
    append their context: the pure computation, as the forecasting benchmark times features."""
    first_row = END - timedelta(days=730)
    candles, context = market(first_row - LOOKBACK_HOURS * HOUR, END)
    started = time.perf_counter()
    features = build_features(candles, first_row, END)
    priced = time.perf_counter()
    with_context(features, context)
    done = time.perf_counter()
    return {
        "timing_rows": len(features),
        "price_features_seconds": round(priced - started, 2),
        "context_features_seconds": round(done - priced, 2),
    }


def main() -> None:
    if "--timing" in sys.argv:
        out = Path(__file__).parent / "results" / "ablation.json"
        results = json.loads(out.read_text()) if out.exists() else {}
        report("ablation", {**results, **context_cost()})
        return
    started = time.perf_counter()
    first_row = END - timedelta(days=DAYS)
    candles, context = market(first_row - LOOKBACK_HOURS * HOUR, END)
    features = with_context(build_features(candles, first_row, END), context)
    rows = with_targets(features)
    key = SigningKey.generate()
    walk = [END - timedelta(days=WALK_DAYS - d) for d in range(WALK_DAYS)]
    print(f"{len(SYMBOLS)} symbols, {DAYS} days to {END:%Y-%m-%d}, {WALK_DAYS} forecast days")
    forecasts, scores = [], []
    for day in walk:
        if (day - walk[0]).days % RETRAIN_EVERY_DAYS == 0:
            trained = train_all(rows, day, HORIZONS, MODELS, TRAINING_DAYS, interval_level=LEVEL)
            print(f"  trained {len(trained)} models through {day:%Y-%m-%d}")
        # the models of the last retraining serve the day, as the previous day's models
        models = trained.assign(day=pd.Timestamp(day - timedelta(days=1)))
        made = forecast(
            features, sign_models(models, key), SYMBOLS, day, day + timedelta(days=1), key
        )
        forecasts.append(made)
        scores.append(score_day(made, candles, day))
    forecasts = pd.concat(forecasts, ignore_index=True)
    board = rank_models(pd.concat(scores, ignore_index=True), last_days=WALK_DAYS)
    board = board[board["window"] == "all"]
    shown = ["symbol", "horizon_h", "model", "n", "rmse", "skill_vs_zero", "dm_stat",
             "dm_p_value", "rank"]  # fmt: skip
    print(board[shown].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    duel = pd.DataFrame(head_to_head(forecasts, candles))
    print(duel.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    corr = information(features)
    print(corr.to_string(float_format=lambda v: f"{v:+.3f}"))

    results: dict[str, object] = {
        "symbols": len(SYMBOLS),
        "days": DAYS,
        "training_days": TRAINING_DAYS,
        "forecast_days": WALK_DAYS,
        "seconds": round(time.perf_counter() - started, 1),
        "max_abs_spearman_context_vs_future_return": round(float(corr.abs().max().max()), 4),
    }
    for name in MODELS:
        mine = board[board["model"] == name]
        results[f"{name}_mean_skill_vs_zero"] = round(float(mine["skill_vs_zero"].mean()), 5)
        results[f"{name}_mean_rank"] = round(float(mine["rank"].astype(float).mean()), 2)
        if name != "zero_return":
            results[f"{name}_dm_better_than_zero_p05"] = int((mine["dm_p_value"] < 0.05).sum())
    for twin in TWINS:
        mine = duel[duel["model"] == twin]
        results[f"{twin}_context_lower_rmse"] = int(
            (mine["rmse_context"] < mine["rmse_price"]).sum()
        )
        results[f"{twin}_context_better_p05"] = int((mine["p_context_better"] < 0.05).sum())
        results[f"{twin}_price_better_p05"] = int((mine["p_context_better"] > 0.95).sum())
        results[f"{twin}_mean_dm_context_vs_price"] = round(
            float(mine["dm_context_vs_price"].mean()), 3
        )
    results["comparisons_per_model"] = len(SYMBOLS) * len(HORIZONS)
    report("ablation", {**results, **context_cost()})


if __name__ == "__main__":
    main()
