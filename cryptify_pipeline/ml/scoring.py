"""Forecasts scored against realised prices, per day, and models ranked over days.

Every figure of a model is computed on that model's own rows: R2 and skill against the zero
forecast need no zero model (its error on any row is the realised return), skill against drift
pools only the days drift was scored beside it, on the same rows. Ranks compare models on the
rows they share. Days pool exactly through additive sums; the Diebold-Mariano test, which
needs the forecasts in time order, through each day's hourly loss differentials.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from cryptify_pipeline.ml.metrics import accuracy, figures
from cryptify_pipeline.ml.significance import diebold_mariano, loss_differential

DRIFT = "drift"
SUMS = (
    "n", "sum_abs_error", "sse", "sum_y2", "direction_n", "direction_hits", "covered",
    "interval_n",
)  # fmt: skip
HOURS_PER_DAY = 24
BOARD_COLUMNS = (
    "symbol", "horizon_h", "model", "window", "n", "mae", "rmse", "r2_vs_zero",
    "directional_accuracy", "coverage", "skill_vs_zero", "skill_vs_drift", "dm_stat",
    "dm_p_value", "dm_note", "rank", "rank_rows",
)  # fmt: skip


def score_day(
    predictions: pd.DataFrame,
    candles: pd.DataFrame,
    day: datetime,
    warn: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """Accuracy of the forecasts made on ``day``, per symbol, model and horizon.

    Per symbol and horizon, every model is scored on the same rows: the hours at which every
    model of that symbol and horizon forecast and whose target candle exists. An hour some
    model lacks is dropped for all of them and named through ``warn``; other symbols and
    horizons keep theirs. Beside each model: the zero forecast's and drift's figures on those
    rows, and ``loss_diff``, the hourly series the Diebold-Mariano test pools over days (hour
    of the day -> zero's squared error minus the model's; None where not scored).
    """
    made = predictions[(predictions["ts"] >= day) & (predictions["ts"] < day + timedelta(days=1))]
    closes = candles.set_index(["symbol", "ts"])["close"]
    realised_close = closes.reindex(pd.MultiIndex.from_frame(made[["symbol", "target_ts"]]))
    made = made.assign(realised_close=realised_close.to_numpy()).dropna(subset=["realised_close"])
    made = shared_rows(made, warn or (lambda message: None))
    made = made.assign(realised_log_return=np.log(made["realised_close"] / made["close"]))
    # columns taken out once and sliced per group: a day holds thousands of groups, and pandas
    # costs milliseconds per group and column
    columns = _ScoredColumns.of(made, day)
    groups = made.groupby(["symbol", "model", "horizon_h"]).indices
    rows = [
        {"day": day, "symbol": symbol, "model": model, "horizon_h": horizon,
         **_scores(columns.take(groups[symbol, model, horizon]))}
        for symbol, model, horizon in sorted(groups)
    ]  # fmt: skip
    scores = pd.DataFrame(rows)
    if scores.empty:
        return scores
    # drift's figures on the same rows, where drift was forecast beside the model
    drift = scores[scores["model"] == DRIFT].set_index(["symbol", "horizon_h"])
    index = pd.MultiIndex.from_frame(scores[["symbol", "horizon_h"]])
    for column in ("mae", "rmse", "sse"):
        scores[f"{column}_drift"] = drift[column].reindex(index).to_numpy()
    return scores


def shared_rows(made: pd.DataFrame, warn: Callable[[str], None]) -> pd.DataFrame:
    """The rows of hours at which every model of their symbol and horizon forecast; each
    (symbol, horizon) that loses hours is named through ``warn`` with the models missing."""
    key = ["symbol", "horizon_h"]
    models_of_group = made.groupby(key)["model"].transform("nunique")
    models_at_hour = made.groupby([*key, "ts"])["model"].transform("nunique")
    complete = models_at_hour == models_of_group
    for (symbol, horizon), dropped in made[~complete].groupby(key, sort=True):
        group = made[(made["symbol"] == symbol) & (made["horizon_h"] == horizon)]
        hours = sorted(dropped["ts"].unique())
        absent = []
        for model, forecasts in group.groupby("model", sort=True):
            made_at = set(forecasts["ts"])
            missing = [hour for hour in hours if hour not in made_at]
            if missing:
                shown = ", ".join(f"{h:%H:%M}" for h in missing[:6])
                absent.append(f"{model} at {shown}{' ...' if len(missing) > 6 else ''}")
        warn(
            f"{symbol} {horizon}h: {len(hours)} hour(s) of {hours[0]:%Y-%m-%d} dropped from every "
            f"model's scores, for lack of a forecast by {'; '.join(absent)}"
        )
    return made[complete]


@dataclass(frozen=True)
class _ScoredColumns:
    """What a model's figures are computed from, as arrays of one length."""

    actual: np.ndarray  # realised log return
    predicted: np.ndarray  # forecast log return
    realised_close: np.ndarray
    lower: np.ndarray  # interval bounds (prices), NaN where uncalibrated
    upper: np.ndarray
    hour: np.ndarray  # the forecast's hour of the day

    @classmethod
    def of(cls, made: pd.DataFrame, day: datetime) -> _ScoredColumns:
        return cls(
            actual=made["realised_log_return"].to_numpy(float),
            predicted=made["pred_log_return"].to_numpy(float),
            realised_close=made["realised_close"].to_numpy(float),
            lower=made["lower"].to_numpy(float),
            upper=made["upper"].to_numpy(float),
            hour=((made["ts"] - pd.Timestamp(day)) // timedelta(hours=1)).to_numpy(),
        )

    def take(self, positions: np.ndarray) -> _ScoredColumns:
        return _ScoredColumns(**{f.name: getattr(self, f.name)[positions] for f in fields(self)})


def _scores(rows: _ScoredColumns) -> dict[str, object]:
    """One model's figures over its rows of a day."""
    actual, predicted = rows.actual, rows.predicted
    # an uncalibrated interval has no bounds: it is neither a hit nor a miss
    bounded = np.isfinite(rows.lower) & np.isfinite(rows.upper)
    inside = (rows.lower <= rows.realised_close) & (rows.realised_close <= rows.upper)
    covered, interval_n = int((inside & bounded).sum()), int(bounded.sum())
    series: list[float | None] = [None] * HOURS_PER_DAY
    for hour, value in zip(rows.hour, loss_differential(actual, predicted), strict=True):
        series[int(hour)] = float(value)
    return {
        **accuracy(actual, predicted),
        "covered": covered,
        "interval_n": interval_n,
        "coverage": covered / interval_n if interval_n else np.nan,
        # the zero forecast's error on any row is the realised return
        "mae_zero_return": float(np.abs(actual).mean()),
        "rmse_zero_return": float(np.sqrt((actual**2).mean())),
        "loss_diff": series,
    }


def rank_models(metrics: pd.DataFrame, last_days: int = 30) -> pd.DataFrame:
    """Per symbol and horizon, every model over the last ``last_days`` days and all time.

    A model's figures are over its own rows: ``skill_vs_zero = 1 - RMSE / RMSE_zero`` with the
    zero forecast's RMSE on the same rows, ``skill_vs_drift`` likewise over the days drift was
    scored beside it, and the Diebold-Mariano test against zero (``dm_stat`` > 0: lower squared
    errors; ``dm_p_value`` one-sided; both null, and ``dm_note`` saying why, when the window is
    too short to test). ``rank`` orders by RMSE the models scored on the window's last day, on
    the days they were all scored (``rank_rows`` rows each); a model no longer scored has no
    rank.
    """
    metrics = _with_columns_of_older_scores(metrics)
    latest = metrics["day"].max()
    windows = {f"{last_days}d": metrics[metrics["day"] > latest - timedelta(days=last_days)],
               "all": metrics}  # fmt: skip
    rows = []
    for window, frame in windows.items():
        for (symbol, horizon), group in frame.groupby(["symbol", "horizon_h"], sort=True):
            ranks = _shared_row_ranks(group)
            days = pd.date_range(group["day"].min(), group["day"].max(), freq="D")
            for model, own in group.groupby("model", sort=True):
                rows.append(
                    {
                        "symbol": symbol,
                        "horizon_h": horizon,
                        "model": model,
                        "window": window,
                        **_pooled(own, int(horizon), days),
                        **ranks.get(model, {"rank": pd.NA, "rank_rows": pd.NA}),
                    }  # fmt: skip
                )
    board = pd.DataFrame(rows, columns=list(BOARD_COLUMNS))
    board["rank"] = board["rank"].astype("Int64")
    board["rank_rows"] = board["rank_rows"].astype("Int64")
    # a string column, stored as text even when every model was tested and it holds only nulls
    board["dm_note"] = board["dm_note"].astype("string")
    return board.sort_values(
        ["symbol", "horizon_h", "window", "rank", "rmse"], ignore_index=True, na_position="last"
    )


def _with_columns_of_older_scores(metrics: pd.DataFrame) -> pd.DataFrame:
    """Scores written before a column existed: every bounded interval, no drift pairing, no
    hourly series (re-score those days to fill them)."""
    metrics = metrics.copy()
    if "interval_n" not in metrics:
        metrics["interval_n"] = metrics["n"]
    metrics["interval_n"] = metrics["interval_n"].fillna(metrics["n"])
    for column, empty in (("sse_drift", np.nan), ("loss_diff", None)):
        if column not in metrics:
            metrics[column] = empty
    return metrics


def _pooled(own: pd.DataFrame, horizon: int, days: pd.DatetimeIndex) -> dict[str, object]:
    """One model's figures over its own rows of the window."""
    sums = own[list(SUMS)].sum()
    paired = own[own["sse_drift"].notna()]
    drift_sse = paired["sse_drift"].sum()
    series = _hourly_series(own, days)
    test = diebold_mariano(series, horizon)
    note = test.note
    if sums["n"] and not np.isfinite(series).any():
        note = "not tested: these days were scored before hourly loss differentials were kept"
    return {
        "n": int(sums["n"]),
        **figures(sums),
        "coverage": sums["covered"] / sums["interval_n"] if sums["interval_n"] else np.nan,
        "skill_vs_zero": 1 - np.sqrt(sums["sse"] / sums["sum_y2"]) if sums["sum_y2"] else np.nan,
        "skill_vs_drift": 1 - np.sqrt(paired["sse"].sum() / drift_sse) if drift_sse else np.nan,
        "dm_stat": test.stat,
        "dm_p_value": test.p_value,
        "dm_note": note,
    }


def _hourly_series(own: pd.DataFrame, days: pd.DatetimeIndex) -> np.ndarray:
    """The model's loss differentials hour by hour over ``days``, NaN where not scored."""
    series = np.full(len(days) * HOURS_PER_DAY, np.nan)
    position = {day: index for index, day in enumerate(days)}
    for day, hourly in zip(own["day"], own["loss_diff"], strict=True):
        if not isinstance(hourly, list):
            continue
        start = position[pd.Timestamp(day)] * HOURS_PER_DAY
        series[start : start + HOURS_PER_DAY] = [np.nan if v is None else v for v in hourly]
    return series


def _shared_row_ranks(group: pd.DataFrame) -> dict[str, dict[str, int]]:
    """Rank and rows of the models scored on ``group``'s last day, by RMSE on the days all of
    them were scored (on a day, every model of a symbol and horizon has the same rows)."""
    current = sorted(group.loc[group["day"] == group["day"].max(), "model"].unique())
    by_day = group[group["model"].isin(current)].pivot_table(
        index="day", columns="model", values=["sse", "n"], aggfunc="sum"
    )
    shared = by_day[(by_day["n"][current] > 0).all(axis=1)]  # NaN where a model is absent
    sse, n = shared["sse"][current].sum(), shared["n"][current].sum()
    rmse = np.sqrt(sse / n)
    ranks = rmse.rank(method="min")
    return {
        model: {"rank": int(ranks[model]), "rank_rows": int(n[model])}
        for model in current
        if n[model] > 0
    }
