"""Training one model for one symbol and horizon at a cut-off, with its validation record.

The rows are those whose target is known at the cut-off (the purge), optionally only the last
``window_days``. The last ``VALIDATION_FRACTION`` of them is held out: the model is fitted on the
rest, purged again so that no fitted target reaches into the held-out period, and the held-out
rows give the validation figures and the interval. The minimums count the rows actually fitted
and held out, after that purge. The stored model is exactly the one that was validated and
calibrated. Boosted models choose their rounds the same way, one level down: on the last part
of the fitted rows, purged (``fit_model``).

The interval is split-conformal on every held-out hour (``conformal_interval``, method
``INTERVAL_METHOD``): each residual divided by the EWMA volatility known at its hour (half-life
a day, ``features.ewma_volatility``) times sqrt(h), the finite-sample order statistic of all
of them, and a minimum set by the overlap of h-hour residuals (as many windows' worth as one
residual per window would need); a forecast multiplies the bounds back by the volatility at
its own hour. With too few residuals for the level there is no interval: the record says
``interval_calibrated = False`` and the bounds are NaN. ``WINDOWS_METHOD`` (one residual per
window, 168 h volatility) is what came before, kept to compare with (benchmarks/intervals.py).

Symbols are trained in parallel (``train_all``'s ``n_jobs``, joblib's process workers), each
fit on one thread wherever it runs, so a parallel run stores the same bytes as a serial one.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from fractions import Fraction
from typing import Any

import joblib
import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from cryptify_pipeline.ml import lstm
from cryptify_pipeline.ml.artifacts import save_model
from cryptify_pipeline.ml.features import EWMA_VOLATILITY, LOOKBACK_HOURS, MODEL_FEATURES
from cryptify_pipeline.ml.metrics import accuracy
from cryptify_pipeline.ml.models import BOOSTED, WINDOWED, ZOO, model_features
from cryptify_pipeline.ml.targets import purge

VALIDATION_FRACTION = 0.2
MIN_FIT_ROWS = 100
MIN_VALIDATION_ROWS = 24

# How an interval is made, stored with it: the residuals it is calibrated on and their scale.
HOURLY_METHOD = "conformal-hourly/ewma-24h"  # every held-out hour, EWMA volatility
WINDOWS_METHOD = "conformal-windows/vol-168h"  # one residual per h-hour window, 168 h volatility
INTERVAL_METHOD = HOURLY_METHOD
SCALE_COLUMNS = {HOURLY_METHOD: EWMA_VOLATILITY, WINDOWS_METHOD: "volatility_168h"}


class NotEnoughData(ValueError):
    """Too few rows with known targets to fit and validate a model."""


@dataclass(frozen=True)
class Split:
    fit: pd.DataFrame
    validation: pd.DataFrame


def split_rows(
    rows: pd.DataFrame, horizon: int, cutoff: datetime, window_days: int | None
) -> Split:
    """Purged training rows at ``cutoff``, split into fitting and held-out validation rows;
    too few of either after the hold-out and its purge is a ``NotEnoughData``."""
    known = purge(rows, horizon, cutoff).sort_values("ts")
    # only complete rows: a feature still warming up (or after a gap) is NaN, and a column that
    # is NaN in every fitted row cannot be learned from; forecasts impute, training does not.
    # Market context is not required: missing context must not block a model, so a +context
    # model's imputer (or its trees) handles NaN context in training as in forecasts
    known = known[known[list(MODEL_FEATURES)].notna().all(axis=1)]
    if window_days is not None:
        known = known[known["ts"] >= window_start(cutoff, window_days)]
    split = hold_out_last(known, horizon, VALIDATION_FRACTION)
    if len(split.fit) < MIN_FIT_ROWS or len(split.validation) < MIN_VALIDATION_ROWS:
        raise NotEnoughData(
            f"{len(known)} complete rows with known {horizon}h targets before "
            f"{cutoff:%Y-%m-%d %H:%M} leave {len(split.fit)} to fit and "
            f"{len(split.validation)} to validate after holding out the last "
            f"{VALIDATION_FRACTION:.0%} and purging {horizon} h; need at least {MIN_FIT_ROWS} "
            f"and {MIN_VALIDATION_ROWS} (backfill more history: features need "
            f"{LOOKBACK_HOURS} hours of candles first)"
        )
    return split


def window_start(cutoff: datetime, window_days: int) -> datetime:
    """The oldest row a ``window_days`` window at ``cutoff`` fits on."""
    return cutoff - timedelta(days=window_days)


def rows_needed(cutoffs: Sequence[datetime], window_days: int) -> tuple[datetime, datetime]:
    """[start, end) of the rows training at ``cutoffs`` can use: each cut-off's window, and the
    candles its targets look ahead to (t + h <= cut-off - 1 h), so nothing before the window
    and nothing from the cut-off on."""
    return window_start(min(cutoffs), window_days), max(cutoffs)


def min_known_rows(horizon: int, interval_level: float | None = None) -> int:
    """The fewest consecutive complete rows with known targets that ``split_rows`` accepts:
    after holding out the last ``VALIDATION_FRACTION`` and purging ``horizon`` hours, at least
    ``MIN_FIT_ROWS`` are left to fit and ``MIN_VALIDATION_ROWS`` held out (154 at 24 h). With
    ``interval_level``, also enough held out to calibrate it (``min_calibration_residuals``:
    2,276 rows at 24 h and 90%)."""
    held_out = MIN_VALIDATION_ROWS
    if interval_level is not None:
        held_out = max(held_out, min_calibration_residuals(interval_level, horizon))
    rows = MIN_FIT_ROWS + held_out
    while True:
        start = int(rows * (1 - VALIDATION_FRACTION))  # index of the first held-out row
        if start - horizon + 1 >= MIN_FIT_ROWS and rows - start >= held_out:
            return rows
        rows += 1


def hold_out_last(rows: pd.DataFrame, horizon: int, fraction: float) -> Split:
    """The last ``fraction`` of ``rows`` (in time order) held out, and the earlier rows whose
    target ends before it: a target log(close[t+h] / close[t]) must not reach into it."""
    if rows.empty:
        return Split(fit=rows, validation=rows)
    start = rows["ts"].iloc[min(int(len(rows) * (1 - fraction)), len(rows) - 1)]
    return Split(
        fit=rows[rows["ts"] + timedelta(hours=horizon) <= start],
        validation=rows[rows["ts"] >= start],
    )


def fit_model(model: str, fit: pd.DataFrame, horizon: int) -> tuple[Any, int | None]:
    """``model`` fitted on ``fit``, and its boosting rounds if it has them.

    A boosted model's rounds are chosen on the last ``VALIDATION_FRACTION`` of the fitted rows
    (time-ordered, purged by the horizon, never the held-out validation rows): the round with
    the lowest error there, then a fit on all the rows with that many rounds.
    """
    features, target = list(model_features(model)), f"target_{horizon}h"
    boosted = BOOSTED.get(model)
    rounds = None
    if boosted is not None:
        inner = hold_out_last(fit, horizon, VALIDATION_FRACTION)
        probe = boosted.build(boosted.most).fit(inner.fit[features], inner.fit[target].to_numpy())
        losses = boosted.losses(
            probe, inner.validation[features], inner.validation[target].to_numpy()
        )
        rounds = int(np.argmin(losses)) + 1
    pipeline = ZOO[model]() if rounds is None else boosted.build(rounds)
    return pipeline.fit(fit[features], fit[target].to_numpy()), rounds


def train_model(
    model: str, symbol: str, horizon: int, split: Split, cutoff: datetime, interval_level: float,
    interval_method: str = INTERVAL_METHOD,
    *, windowed: WindowedFit | None = None,
) -> dict[str, object]:  # fmt: skip
    """Fit ``model`` and return its record: window, validation figures, the interval calibrated
    for ``interval_level`` by ``interval_method`` and the stored model (format, bytes, hash,
    versions; ``artifacts.sign_models`` signs it). A windowed model (the LSTM) comes fitted for
    every horizon of its symbol at once (``windowed``, from ``fit_windowed``)."""
    target = f"target_{horizon}h"
    features = list(model_features(model))
    fitted, fit_end = len(split.fit), split.fit["ts"].max()
    if model in WINDOWED:
        if windowed is None:
            raise ValueError(f"{model} is fitted for all horizons at once: pass its fit")
        pipeline, rounds, predicted = windowed.network, windowed.epochs, windowed.predicted
        fitted, fit_end = windowed.fit_rows, windowed.fit_end
    else:
        pipeline, rounds = fit_model(model, split.fit, horizon)
        predicted = pipeline.predict(split.validation[features])
    actual = split.validation[target].to_numpy()
    scale = interval_scale(split.validation, horizon, interval_method)
    usable = np.isfinite(scale) & (scale > 0)
    interval = conformal_interval(
        ((actual - predicted) / scale)[usable], split.validation["ts"][usable], horizon,
        interval_level, interval_method,
    )  # fmt: skip
    figures = accuracy(actual, predicted)
    return {
        "symbol": symbol,
        "model": model,
        "horizon_h": horizon,
        "cutoff": cutoff,
        "fit_start": split.fit["ts"].min(),
        "fit_end": fit_end,
        "validation_start": split.validation["ts"].min(),
        "validation_end": split.validation["ts"].max(),
        "fit_rows": fitted,
        "validation_rows": len(split.validation),
        "boosting_rounds": rounds,
        "features": features,
        "val_mae": figures["mae"],
        "val_rmse": figures["rmse"],
        "val_r2_vs_zero": figures["r2_vs_zero"],
        "val_directional_accuracy": figures["directional_accuracy"],
        "interval_level": interval_level,
        "interval_method": interval.method,
        "interval_residuals": interval.residuals,
        "interval_windows": interval.windows,
        "interval_calibrated": interval.calibrated,
        "interval_low": interval.low,
        "interval_high": interval.high,
        "interval_scale_median": float(np.median(scale[usable])) if usable.any() else np.nan,
        **save_model(pipeline),
    }


@dataclass(frozen=True)
class WindowedFit:
    """An LSTM fitted for one horizon: the network, its epochs, the windows it was fitted on
    and the hour of the last, and its predictions of the horizon's held-out rows."""

    network: lstm.LstmForecaster
    epochs: int
    fit_rows: int
    fit_end: pd.Timestamp
    predicted: np.ndarray


def fit_windowed(
    model: str, symbol: str, splits: dict[int, Split], history: pd.DataFrame, hours: int
) -> dict[int, WindowedFit]:
    """The LSTM of every horizon of ``splits`` from one network with an output per horizon,
    fitted on the windows of ``hours`` hours ending at the rows every horizon fits on (complete
    windows only), and each horizon's predictions of its own held-out rows.

    The rows are those of every split's fit: each target of each row ends before every
    horizon's held-out hours. The epochs are chosen on the last ``VALIDATION_FRACTION`` of them,
    purged by the longest horizon, as the boosted models' rounds are (``fit_model``), then the
    network is fitted on all of them for that many epochs.
    """
    features, horizons = list(model_features(model)), sorted(splits)
    targets = [f"target_{horizon}h" for horizon in horizons]
    rows = splits[horizons[0]].fit
    for split in splits.values():
        rows = rows[rows["ts"].isin(split.fit["ts"])]
    # windows start no earlier than the first fitted row: the model depends on the training
    # window alone, whatever else was read (a longer history gives the same network)
    history = history[history["ts"] >= rows["ts"].min()] if len(rows) else history

    def samples(part: pd.DataFrame, complete: bool) -> tuple[np.ndarray, np.ndarray]:
        x, y = lstm.windows(history, part["ts"], features, hours), part[targets].to_numpy("float32")
        return lstm.training_samples(x, y, len(MODEL_FEATURES)) if complete else (x, y)

    fit = samples(rows, complete=True)
    inner = hold_out_last(rows, max(horizons), VALIDATION_FRACTION)
    probe, check = samples(inner.fit, complete=True), samples(inner.validation, complete=False)
    if len(fit[0]) < MIN_FIT_ROWS or not len(probe[0]) or not len(check[0]):
        shown = "/".join(str(horizon) for horizon in horizons)
        raise NotEnoughData(
            f"{symbol}: {model} ({shown}h) has {len(fit[0])} complete {hours}-hour windows "
            f"of feature rows among its {len(rows)} fitted rows ({len(probe[0])} before its "
            f"early-stopping hold-out); need at least {MIN_FIT_ROWS} (backfill more history: "
            f"a window needs {hours} consecutive hours of complete features)"
        )
    networks, epochs = lstm.train(fit, probe, check)
    return {
        horizon: WindowedFit(
            network,
            epochs,
            len(fit[0]),
            rows["ts"].max(),
            network.predict(samples(splits[horizon].validation, complete=False)[0]),
        )  # fmt: skip
        for horizon, network in zip(horizons, networks, strict=True)
    }


@dataclass(frozen=True)
class Interval:
    """Bounds in units of the forecast's volatility (NaN when not calibrated), how they were
    made, the residuals they were calibrated on and the independent windows those span."""

    low: float
    high: float
    residuals: int
    windows: int
    calibrated: bool
    method: str = INTERVAL_METHOD


def conformal_rank(level: float, windows: int) -> int:
    """k = ceil((n + 1)(1 - a/2)): the upper bound is the k-th smallest of n scores (the lower
    the k-th largest), so each tail misses with probability at most a/2 for exchangeable
    scores, and on average exactly 1 - k / (n + 1)."""
    tail = (1 - Fraction(level).limit_denominator(10_000)) / 2
    return math.ceil((windows + 1) * (1 - tail))


def min_calibration_windows(level: float) -> int:
    """The fewest windows for which the k-th smallest score exists (k <= n): 19 at 90%, 39 at
    95%. With fewer, no order statistic is far enough out, and the interval is uncalibrated."""
    windows = 1
    while conformal_rank(level, windows) > windows:
        windows += 1
    return windows


def min_calibration_residuals(level: float, horizon: int) -> int:
    """The fewest hourly residuals h hours ahead to calibrate ``level`` on: as many windows'
    worth (n / h) as one residual per window would need (``min_calibration_windows``; 114,
    228 and 456 at 6, 12 and 24 h and 90%, 936 at 24 h and 95%), and enough that the k-th
    residual is not the most extreme (k <= n - 1: 39 at 90%). With fewer, no interval."""
    residuals = horizon * min_calibration_windows(level)
    while conformal_rank(level, residuals) > residuals - 1:
        residuals += 1
    return residuals


def conformal_interval(
    scores: np.ndarray, ts: pd.Series, horizon: int, level: float,
    method: str = INTERVAL_METHOD,
) -> Interval:  # fmt: skip
    """Split-conformal bounds from held-out scaled residuals ``scores`` at hours ``ts``.

    ``HOURLY_METHOD``: every hourly residual, n of them; the upper bound is the k-th smallest
    and the lower the k-th largest, k = ``conformal_rank(level, n)`` = ceil((n + 1)(1 - a/2)).
    Residuals h hours ahead made every hour overlap, so they carry only about m = n / h
    windows' worth of independent information: that sets the minimum (n / h windows at least
    as many as one residual per window would need, ``min_calibration_residuals``), so the
    bound always lies inside the residuals, about n a/2 of them beyond it (43 at 24 h and 90%,
    864 held out), never the single most extreme one.

    The guarantee and its limits. For exchangeable residuals each tail misses with probability
    at most a/2 (on average 1 - k / (n + 1)). Overlapping residuals are not exchangeable, but
    when the scaled residuals are stationary a new one's rank among them is still close to
    uniform, so the average coverage stays near 1 - a; what the overlap costs is steadiness:
    from one calibration to the next the coverage varies as if only m were independent (the
    band in ``cryptify_pipeline_tests/support/coverage.py``). A correction counted in windows,
    ceil((m + 1)(1 - a/2)) windows, over-covered (94% at 24 h on a GARCH market, 36 windows).
    Stationarity is the real assumption: scaling by a volatility that reacts within hours
    takes out most of the clustering, but a break after the hold-out (a model that degrades,
    tails fatter than the held-out period saw) is not covered by any guarantee, only measured
    by the evaluation. Measured (benchmarks/intervals.py): 89-90% at 6 h everywhere, but at
    24 h 87-88.5% on the sample market and on one with calm weeks and jumps, where one
    residual per window with the 168 h volatility covered 94% with bands nearly twice as
    wide.

    ``WINDOWS_METHOD`` (the method before): one score per h-hour window, counted back from the
    newest held-out hour, and k = ``conformal_rank`` of their number (19 windows at 90%, where
    k = n: a bound was the single most extreme window).
    """
    scores = np.asarray(scores, float)
    if method == HOURLY_METHOD:
        ordered, n = np.sort(scores), len(scores)
        k = conformal_rank(level, n)
        if n < min_calibration_residuals(level, horizon):
            return Interval(np.nan, np.nan, n, n // horizon, False, method)
        return Interval(float(ordered[n - k]), float(ordered[k - 1]), n, n // horizon, True, method)
    if method != WINDOWS_METHOD:
        raise ValueError(f"unknown interval method {method!r}; known: {', '.join(SCALE_COLUMNS)}")
    newest = ts.max()
    hours_back = ((newest - ts) // timedelta(hours=1)).to_numpy()
    windows = np.sort(scores[hours_back % horizon == 0])
    n = len(windows)
    if n < min_calibration_windows(level):
        return Interval(np.nan, np.nan, n, n, False, method)
    k = conformal_rank(level, n)
    return Interval(float(windows[n - k]), float(windows[k - 1]), n, n, True, method)


def interval_scale(rows: pd.DataFrame, horizon: int, method: str = INTERVAL_METHOD) -> np.ndarray:
    """The volatility a forecast's residual is measured in, over h hours: the EWMA volatility
    at its hour (the 168 h realised one for ``WINDOWS_METHOD``) times sqrt(h)."""
    return rows[SCALE_COLUMNS[method]].to_numpy("float64") * np.sqrt(horizon)


def default_training_jobs() -> int:
    """All cores but one, at least one: the run's own process keeps a core. joblib counts the
    cores this process may use (affinity and container quotas), not the machine's."""
    return max(1, joblib.cpu_count() - 1)


def train_symbol(
    rows: pd.DataFrame, symbol: str, cutoff: datetime, horizons: Sequence[int],
    models: Sequence[str], window_days: int | None, interval_level: float,
    interval_method: str = INTERVAL_METHOD,
    lstm_window_hours: int = lstm.WINDOW_HOURS,
) -> list[dict[str, object]]:  # fmt: skip
    """The records of one symbol's rows, every horizon and model.

    Single-threaded inside (BLAS and OpenMP): parallel summations order their terms by thread
    count, so a fit on two threads need not be bit-identical to one on one; and the cores are
    for the other symbols' workers. threadpoolctl limits only the libraries already loaded, and
    a model's load when it is first built: so every model is built once before the limit.
    """
    for model in models:
        ZOO[model]()
    with threadpool_limits(limits=1):
        splits = {}
        for horizon in horizons:
            try:
                splits[horizon] = split_rows(rows, horizon, cutoff, window_days)  # every model's
            except NotEnoughData as error:
                raise NotEnoughData(f"{symbol}: {error}") from None
        # an LSTM learns every horizon at once: one network per symbol, an output per horizon
        windowed = {
            model: fit_windowed(model, symbol, splits, rows, lstm_window_hours)
            for model in models
            if model in WINDOWED
        }
        return [
            train_model(
                model,
                symbol,
                horizon,
                split,
                cutoff,
                interval_level,
                interval_method,
                windowed=windowed[model][horizon] if model in windowed else None,
            )  # fmt: skip
            for horizon, split in splits.items()
            for model in models
        ]


def train_all(
    rows: pd.DataFrame, cutoff: datetime, horizons: Iterable[int], models: Iterable[str],
    window_days: int | None = None, *, interval_level: float, n_jobs: int = 1,
    interval_method: str = INTERVAL_METHOD,
    lstm_window_hours: int = lstm.WINDOW_HOURS,
) -> pd.DataFrame:  # fmt: skip
    """Every (symbol, horizon, model) record at ``cutoff``, one row each, with intervals
    calibrated for ``interval_level``; symbols on up to ``n_jobs`` worker processes.

    Models are per symbol: symbols differ in volatility regime, and one symbol's model needs
    nothing from another's rows, so symbols train apart. The records are the same, bytes
    included, whatever ``n_jobs`` is (``train_symbol``).
    """
    if n_jobs < 1:
        raise ValueError(f"n_jobs must be at least 1, not {n_jobs}")
    if interval_method not in SCALE_COLUMNS:
        raise ValueError(
            f"unknown interval method {interval_method!r}; known: {', '.join(SCALE_COLUMNS)}"
        )
    horizons, models = list(horizons), list(models)
    groups = [(str(symbol), group) for symbol, group in rows.groupby("symbol", sort=True)]
    if not groups:
        raise NotEnoughData(f"no rows of any symbol to train on at {cutoff:%Y-%m-%d %H:%M}")
    tasks = (
        joblib.delayed(train_symbol)(
            group,
            symbol,
            cutoff,
            horizons,
            models,
            window_days,
            interval_level,
            interval_method,
            lstm_window_hours,
        )
        for symbol, group in groups
    )
    workers = min(n_jobs, len(groups))
    if workers <= 1:  # no pool to start for one symbol or one job
        per_symbol = [function(*args, **kwargs) for function, args, kwargs in tasks]
    else:
        per_symbol = joblib.Parallel(n_jobs=workers, backend="loky")(tasks)
    records = [record for symbol_records in per_symbol for record in symbol_records]
    frame = pd.DataFrame.from_records(records)
    if not frame.empty:
        frame["boosting_rounds"] = frame["boosting_rounds"].astype("Int64")
    return frame
