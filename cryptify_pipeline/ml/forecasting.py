"""Forecasts from stored models, their scores against realised prices, and the leaderboard."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from cryptify_pipeline.ml.artifacts import load_model
from cryptify_pipeline.ml.metrics import accuracy, figures
from cryptify_pipeline.ml.training import interval_scale

SUMS = ("n", "sum_abs_error", "sse", "sum_y2", "direction_n", "direction_hits", "covered")


class MissingInputs(ValueError):
    """Features or models that a forecast needs are not there."""


def model_day(ts: pd.Series) -> pd.Series:
    """The model a forecast at ``ts`` uses: the one trained through the end of the day before."""
    return ts.dt.floor("D") - timedelta(days=1)


def forecast(
    features: pd.DataFrame,
    models: pd.DataFrame,
    symbols: Sequence[str],
    start: datetime,
    end: datetime,
) -> pd.DataFrame:
    """Every model's forecast for every symbol and hour in [start, end)."""
    hours = pd.date_range(start, end, freq="h", inclusive="left", unit="us")
    expected = pd.MultiIndex.from_product([list(symbols), hours], names=["symbol", "ts"])
    present = pd.MultiIndex.from_frame(features[["symbol", "ts"]])
    absent = expected.difference(present)
    if len(absent):
        shown = ", ".join(f"{s} {t:%Y-%m-%d %H:%M}" for s, t in absent[:10])
        raise MissingInputs(
            f"no features for {len(absent)} symbol-hour(s): {shown}"
            f"{' ...' if len(absent) > 10 else ''} (materialise candles and features first)"
        )
    in_window = (features["ts"] >= start) & (features["ts"] < end)
    rows = features[in_window & features["symbol"].isin(list(symbols))].assign(
        model_day=lambda f: model_day(f["ts"])
    )
    needed = set(zip(rows["model_day"], rows["symbol"], strict=True))
    have = set(zip(pd.to_datetime(models["day"], utc=True), models["symbol"], strict=True))
    if missing := sorted(needed - have):
        raise MissingInputs(
            "no models trained through the end of "
            + ", ".join(f"{day:%Y-%m-%d} for {symbol}" for day, symbol in missing[:10])
            + (" ..." if len(missing) > 10 else "")
            + " (materialise those days of the models asset first)"
        )
    # one pass to split the rows: filtering them per model is quadratic over a long range
    batches = dict(list(rows.groupby(["model_day", "symbol"], sort=False)))
    # a model serving several days with the same interval (a baseline whose bytes do not
    # change, a model kept while daily training is paused) predicts them all in one call
    serving: dict[tuple, tuple[object, list[pd.DataFrame]]] = {}
    for record in models.itertuples(index=False):
        batch = batches.get((pd.Timestamp(record.day), record.symbol))
        if batch is None:
            continue
        key = (
            record.sha256, record.symbol, record.model, record.horizon_h,
            record.interval_low, record.interval_high, record.interval_scale_median,
            tuple(record.features),
        )  # fmt: skip
        serving.setdefault(key, (record, []))[1].append(batch)
    out = []
    loaded: dict[str, object] = {}
    for record, day_batches in serving.values():
        batch = pd.concat(day_batches) if len(day_batches) > 1 else day_batches[0]
        if record.sha256 not in loaded:
            loaded[record.sha256] = load_model(
                record.pipeline,
                record.sha256,
                record.sklearn_version,
                name=f"{record.model} {record.symbol} {record.horizon_h}h of {record.day:%Y-%m-%d}",
            )
        predicted = loaded[record.sha256].predict(batch[list(record.features)])
        close = batch["close"].to_numpy()
        scale = interval_scale(batch, record.horizon_h)
        # without a week of history the volatility is unknown: the validation median stands in
        scale = np.where(np.isfinite(scale) & (scale > 0), scale, record.interval_scale_median)
        out.append(
            pd.DataFrame(
                {
                    "ts": batch["ts"].to_numpy(),
                    "symbol": record.symbol,
                    "model": record.model,
                    "horizon_h": record.horizon_h,
                    "target_ts": (batch["ts"] + timedelta(hours=record.horizon_h)).to_numpy(),
                    "close": close,
                    "pred_log_return": predicted,
                    # a log return becomes a price through exp, never 1 + r
                    "pred_price": close * np.exp(predicted),
                    "lower": close * np.exp(predicted + record.interval_low * scale),
                    "upper": close * np.exp(predicted + record.interval_high * scale),
                    "model_day": batch["model_day"].to_numpy(),
                    "model_sha256": record.sha256,
                }
            )
        )
    result = pd.concat(out, ignore_index=True)
    for column in ("ts", "target_ts", "model_day"):
        result[column] = pd.to_datetime(result[column], utc=True).astype("datetime64[us, UTC]")
    for column in ("symbol", "model", "model_sha256"):
        result[column] = result[column].astype("str")
    return result.sort_values(["symbol", "ts", "model", "horizon_h"], ignore_index=True)


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
    for baseline in ("zero_return", "drift"):
        base = scores[scores["model"] == baseline].set_index(["symbol", "horizon_h"])
        index = pd.MultiIndex.from_frame(scores[["symbol", "horizon_h"]])
        scores[f"mae_{baseline}"] = base["mae"].reindex(index).to_numpy()
        scores[f"rmse_{baseline}"] = base["rmse"].reindex(index).to_numpy()
    return scores


def leaderboard(metrics: pd.DataFrame, last_days: int = 30) -> pd.DataFrame:
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
    zero = board[board["model"] == "zero_return"].set_index(group)["rmse"]
    board["skill_vs_zero"] = (
        1 - board["rmse"] / zero.reindex(pd.MultiIndex.from_frame(board[group])).to_numpy()
    )
    board["rank"] = board.groupby(group)["rmse"].rank(method="min").astype("int64")
    columns = ["symbol", "horizon_h", "model", "window", "n", "mae", "rmse", "r2_vs_zero",
               "directional_accuracy", "coverage", "skill_vs_zero", "rank"]  # fmt: skip
    return board[columns].sort_values(["symbol", "horizon_h", "window", "rank"], ignore_index=True)
