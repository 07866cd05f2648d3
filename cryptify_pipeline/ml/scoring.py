"""Forecasts scored against realised prices, per day, and models ranked over days."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from cryptify_pipeline.ml.metrics import accuracy, figures
from cryptify_pipeline.ml.models import BASELINES, ZERO_RETURN

SUMS = ("n", "sum_abs_error", "sse", "sum_y2", "direction_n", "direction_hits", "covered")


def score_day(predictions: pd.DataFrame, candles: pd.DataFrame, day: datetime) -> pd.DataFrame:
    """Accuracy of the forecasts made on ``day``, per symbol, model and horizon.

    Every model is scored on the same rows: the (symbol, ts, horizon) forecasts that every
    model made and whose target candle exists. Baselines' figures are repeated on each row.
    """
    made = predictions[(predictions["ts"] >= day) & (predictions["ts"] < day + timedelta(days=1))]
    closes = candles.set_index(["symbol", "ts"])["close"]
    realised_close = closes.reindex(pd.MultiIndex.from_frame(made[["symbol", "target_ts"]]))
    made = made.assign(realised_close=realised_close.to_numpy()).dropna(subset=["realised_close"])
    key = ["symbol", "ts", "horizon_h"]
    model_count = made.groupby(key)["model"].transform("nunique")
    made = made[model_count == made["model"].nunique()]
    made = made.assign(realised_log_return=np.log(made["realised_close"] / made["close"]))
    rows = []
    for (symbol, model, horizon), group in made.groupby(["symbol", "model", "horizon_h"]):
        figures_ = accuracy(group["realised_log_return"], group["pred_log_return"])
        covered = (group["lower"] <= group["realised_close"]) & (
            group["realised_close"] <= group["upper"]
        )
        rows.append(
            {
                "day": day,
                "symbol": symbol,
                "model": model,
                "horizon_h": horizon,
                **figures_,
                "covered": int(covered.sum()),
                "coverage": float(covered.mean()),
            }
        )
    scores = pd.DataFrame(rows)
    if scores.empty:
        return scores
    for baseline in BASELINES:
        base = scores[scores["model"] == baseline].set_index(["symbol", "horizon_h"])
        index = pd.MultiIndex.from_frame(scores[["symbol", "horizon_h"]])
        scores[f"mae_{baseline}"] = base["mae"].reindex(index).to_numpy()
        scores[f"rmse_{baseline}"] = base["rmse"].reindex(index).to_numpy()
    return scores


def rank_models(metrics: pd.DataFrame, last_days: int = 30) -> pd.DataFrame:
    """Models ranked by RMSE per symbol and horizon, over the last ``last_days`` days and all
    time, with skill against the zero-return forecast (1 - RMSE / RMSE_zero)."""
    latest = metrics["day"].max()
    windows = {f"{last_days}d": metrics[metrics["day"] > latest - timedelta(days=last_days)],
               "all": metrics}  # fmt: skip
    rows = []
    for window, frame in windows.items():
        pooled = frame.groupby(["symbol", "horizon_h", "model"])[list(SUMS)].sum().reset_index()
        for record in pooled.to_dict("records"):
            rows.append(
                {
                    **{k: record[k] for k in ("symbol", "horizon_h", "model")},
                    "window": window,
                    "n": int(record["n"]),
                    **figures(record),
                    "coverage": record["covered"] / record["n"] if record["n"] else np.nan,
                }
            )
    board = pd.DataFrame(rows)
    group = ["symbol", "horizon_h", "window"]
    zero = board[board["model"] == ZERO_RETURN].set_index(group)["rmse"]
    board["skill_vs_zero"] = (
        1 - board["rmse"] / zero.reindex(pd.MultiIndex.from_frame(board[group])).to_numpy()
    )
    board["rank"] = board.groupby(group)["rmse"].rank(method="min").astype("int64")
    columns = ["symbol", "horizon_h", "model", "window", "n", "mae", "rmse", "r2_vs_zero",
               "directional_accuracy", "coverage", "skill_vs_zero", "rank"]  # fmt: skip
    return board[columns].sort_values(["symbol", "horizon_h", "window", "rank"], ignore_index=True)
