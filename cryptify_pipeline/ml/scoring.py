"""Forecasts scored against realised prices, per day, and models ranked over days.

Every figure of a model is computed on that model's own rows: R2 and skill against the zero
forecast need no zero model (its error on any row is the realised return), skill against drift
pools only the days drift was scored beside it, on the same rows. Ranks compare models on the
rows they share. Days pool exactly through additive sums; the Diebold-Mariano test, which
needs the forecasts in time order, through each day's hourly loss differentials.

Intervals are scored as intervals, every figure a share of the forecast-time price ``close``
(so 0.05 reads "5% of the price"): coverage; the mean width (upper - lower) / close; the
interval (Winkler) score, width + (2 / a) x how far the realised price fell outside; the
pinball loss of each bound as the a/2 and 1 - a/2 quantile (interval score = (2 / a) x their
sum); and coverage in each volatility tercile (``volatility_terciles``): covered and scored
counts per tercile, summed over days, shares derived from the sums.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from cryptify_pipeline.ml.metrics import accuracy, figures
from cryptify_pipeline.ml.significance import diebold_mariano, loss_differential

DRIFT = "drift"
TERCILES = ("low_vol", "mid_vol", "high_vol")
# interval figures summed over the rows with an interval: divided by interval_n they are means
INTERVAL_SUMS = ("sum_width_share", "sum_interval_score", "sum_pinball_lower", "sum_pinball_upper")
TERCILE_SUMS = tuple(f"{kind}_{t}" for t in TERCILES for kind in ("covered", "interval_n"))
SUMS = (
    "n", "sum_abs_error", "sse", "sum_y2", "direction_n", "direction_hits", "covered",
    "interval_n", *INTERVAL_SUMS, *TERCILE_SUMS,
)  # fmt: skip
INTERVAL_FIGURES = (
    "width_share", "interval_score", "pinball_lower", "pinball_upper",
    *(f"coverage_{t}" for t in TERCILES),
)  # fmt: skip
HOURS_PER_DAY = 24
# the volatility history a day's tercile cut points come from, and the least of it that will do
TERCILE_HISTORY_DAYS = 30
MIN_TERCILE_HISTORY_HOURS = 7 * HOURS_PER_DAY
BOARD_COLUMNS = (
    "symbol", "horizon_h", "model", "window", "n", "mae", "rmse", "r2_vs_zero",
    "directional_accuracy", "coverage", *INTERVAL_FIGURES, "skill_vs_zero", "skill_vs_drift",
    "dm_stat", "dm_p_value", "dm_note", "rank", "rank_rows",
)  # fmt: skip


def pinball_loss(bound: np.ndarray, actual: np.ndarray, tau: float) -> np.ndarray:
    """The quantile (pinball) loss of ``bound`` as the ``tau`` quantile of ``actual``:
    tau (y - q) when y >= q, (1 - tau) (q - y) when below."""
    miss = np.asarray(actual, float) - np.asarray(bound, float)
    return np.maximum(tau * miss, (tau - 1) * miss)


def interval_score(
    lower: np.ndarray, upper: np.ndarray, actual: np.ndarray, alpha: np.ndarray | float
) -> np.ndarray:
    """The interval (Winkler) score of a 1 - ``alpha`` interval: its width plus 2 / alpha times
    the distance by which ``actual`` falls outside it (lower is better; Gneiting & Raftery
    2007). Equals 2 / alpha x the pinball losses of the bounds as the alpha/2 and 1 - alpha/2
    quantiles."""
    lower, upper, actual = (np.asarray(v, float) for v in (lower, upper, actual))
    outside = np.maximum(lower - actual, 0.0) + np.maximum(actual - upper, 0.0)
    return upper - lower + (2 / np.asarray(alpha, float)) * outside


def volatility_terciles(volatility: pd.DataFrame, day: datetime) -> pd.Series:
    """The volatility tercile (0 low, 1 mid, 2 high) of each hour of ``day``, per symbol.

    ``volatility`` has columns symbol, ts and volatility (the EWMA scale known at ts). The cut
    points are the symbol's 1/3 and 2/3 quantiles over the ``TERCILE_HISTORY_DAYS`` days before
    ``day``: known before any forecast of the day, and fixed for it, so a day's per-tercile
    counts sum over days. A symbol with less than ``MIN_TERCILE_HISTORY_HOURS`` of history gets
    no tercile (its hours count in no tercile). Indexed by (symbol, ts).
    """
    start = day - timedelta(days=TERCILE_HISTORY_DAYS)
    end = day + timedelta(days=1)
    known = volatility[np.isfinite(volatility["volatility"].to_numpy(float))]
    parts = []
    for symbol, rows in known.groupby("symbol", sort=True):
        history = rows.loc[(rows["ts"] >= start) & (rows["ts"] < day), "volatility"]
        hours = rows[(rows["ts"] >= day) & (rows["ts"] < end)]
        if len(history) < MIN_TERCILE_HISTORY_HOURS or hours.empty:
            continue
        cuts = np.quantile(history.to_numpy(float), [1 / 3, 2 / 3])
        tercile = np.searchsorted(cuts, hours["volatility"].to_numpy(float), side="right")
        parts.append(
            pd.Series(tercile, index=pd.MultiIndex.from_arrays(
                [[symbol] * len(hours), hours["ts"]], names=["symbol", "ts"]))
        )  # fmt: skip
    if not parts:
        return pd.Series([], dtype="int64", index=pd.MultiIndex.from_arrays([[], []],
                         names=["symbol", "ts"]))  # fmt: skip
    return pd.concat(parts)


def score_day(
    predictions: pd.DataFrame,
    candles: pd.DataFrame,
    day: datetime,
    warn: Callable[[str], None] | None = None,
    volatility: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Accuracy of the forecasts made on ``day``, per symbol, model and horizon, and of their
    intervals (in each volatility tercile when ``volatility``, the frame
    ``volatility_terciles`` takes, is given; otherwise the tercile counts are zero).

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
    tercile = np.full(len(made), np.nan)
    if volatility is not None:
        terciles = volatility_terciles(volatility, day)
        if len(terciles):
            where = pd.MultiIndex.from_frame(made[["symbol", "ts"]])
            tercile = terciles.reindex(where).to_numpy(float)
    made = made.assign(tercile=tercile)
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
    close: np.ndarray  # the price at forecast time
    lower: np.ndarray  # interval bounds (prices), NaN where uncalibrated
    upper: np.ndarray
    level: np.ndarray  # the interval's nominal coverage
    tercile: np.ndarray  # volatility tercile at forecast time (0, 1, 2), NaN where unknown
    hour: np.ndarray  # the forecast's hour of the day

    @classmethod
    def of(cls, made: pd.DataFrame, day: datetime) -> _ScoredColumns:
        return cls(
            actual=made["realised_log_return"].to_numpy(float),
            predicted=made["pred_log_return"].to_numpy(float),
            realised_close=made["realised_close"].to_numpy(float),
            close=made["close"].to_numpy(float),
            lower=made["lower"].to_numpy(float),
            upper=made["upper"].to_numpy(float),
            # a frame without levels (none stored) scores width and coverage, not the losses
            level=made.get("interval_level", pd.Series(np.nan, index=made.index)).to_numpy(float),
            tercile=made["tercile"].to_numpy(float),
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
        **interval_figures(rows, bounded, inside),
        # the zero forecast's error on any row is the realised return
        "mae_zero_return": float(np.abs(actual).mean()),
        "rmse_zero_return": float(np.sqrt((actual**2).mean())),
        "loss_diff": series,
    }


def interval_figures(
    rows: _ScoredColumns, bounded: np.ndarray, inside: np.ndarray
) -> dict[str, float | int]:
    """The sums of the interval figures over the rows with an interval, their means, and the
    covered and scored counts per volatility tercile with their coverage."""
    close = rows.close[bounded]
    lower, upper = rows.lower[bounded] / close, rows.upper[bounded] / close
    actual = rows.realised_close[bounded] / close
    alpha = 1 - rows.level[bounded]
    sums = {
        "sum_width_share": float((upper - lower).sum()),
        "sum_interval_score": float(interval_score(lower, upper, actual, alpha).sum()),
        "sum_pinball_lower": float(pinball_loss(lower, actual, alpha / 2).sum()),
        "sum_pinball_upper": float(pinball_loss(upper, actual, 1 - alpha / 2).sum()),
    }
    for tercile, name in enumerate(TERCILES):
        mine = bounded & (rows.tercile == tercile)
        sums[f"covered_{name}"] = int((inside & mine).sum())
        sums[f"interval_n_{name}"] = int(mine.sum())
    return {**sums, **interval_means(sums, int(bounded.sum()))}


def interval_means(sums: Mapping[str, float], scored: int) -> dict[str, float]:
    """Width, interval score and pinball losses per forecast with an interval (``scored`` of
    them in the sums), and coverage per volatility tercile, from their sums (NaN where nothing
    was scored)."""
    means = {}
    for name in INTERVAL_SUMS:
        means[name.removeprefix("sum_")] = sums[name] / scored if scored else np.nan
    for name in TERCILES:
        count = sums[f"interval_n_{name}"]
        means[f"coverage_{name}"] = sums[f"covered_{name}"] / count if count else np.nan
    return means


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
    # days scored before intervals were scored as intervals: no sums (null), no tercile counts
    for column in INTERVAL_SUMS:
        if column not in metrics:
            metrics[column] = np.nan
    for column in TERCILE_SUMS:
        metrics[column] = metrics[column].fillna(0) if column in metrics else 0
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
        # only the days whose interval figures were summed count in their means
        **interval_means(sums, int(own.loc[own["sum_width_share"].notna(), "interval_n"].sum())),
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
