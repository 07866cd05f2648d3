"""Training one model for one symbol and horizon at a cut-off, with its validation record.

The rows are those whose target is known at the cut-off (the purge), optionally only the last
``window_days``. The last ``VALIDATION_FRACTION`` of them is held out: the model is fitted on the
rest, purged again so that no fitted target reaches into the held-out period, and the held-out
rows give the validation figures and the interval. The stored model is exactly the one that was
validated and calibrated.

The interval is the 5% and 95% quantiles of the held-out residuals, each divided by the
volatility known at its hour (``volatility_168h * sqrt(h)``), with the split-conformal
finite-sample correction (``conformal_levels``); a forecast multiplies them back by the
volatility at its own hour. Plain quantiles of raw residuals covered 84-89% on the sample
market, least at 24 h, where the held-out weeks hold the fewest independent windows.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from cryptify_pipeline.ml.artifacts import save_model
from cryptify_pipeline.ml.features import LOOKBACK_HOURS, MODEL_FEATURES
from cryptify_pipeline.ml.metrics import accuracy
from cryptify_pipeline.ml.models import MODEL_ZOO
from cryptify_pipeline.ml.targets import purge

VALIDATION_FRACTION = 0.2
MIN_FIT_ROWS = 100
MIN_VALIDATION_ROWS = 24
INTERVAL_QUANTILES = (0.05, 0.95)


class NotEnoughData(ValueError):
    """Too few rows with known targets to fit and validate a model."""


@dataclass(frozen=True)
class Split:
    fit: pd.DataFrame
    validation: pd.DataFrame


def split_rows(
    rows: pd.DataFrame, horizon: int, cutoff: datetime, window_days: int | None
) -> Split:
    """Purged training rows at ``cutoff``, split into fitting and held-out validation rows."""
    known = purge(rows, horizon, cutoff).sort_values("ts")
    # only complete rows: a feature still warming up (or after a gap) is NaN, and a column that
    # is NaN in every fitted row cannot be learned from; forecasts impute, training does not
    known = known[known[list(MODEL_FEATURES)].notna().all(axis=1)]
    if window_days is not None:
        known = known[known["ts"] >= cutoff - timedelta(days=window_days)]
    if len(known) < MIN_FIT_ROWS + MIN_VALIDATION_ROWS:
        raise NotEnoughData(
            f"{len(known)} complete rows with known {horizon}h targets before "
            f"{cutoff:%Y-%m-%d %H:%M}; need at least {MIN_FIT_ROWS + MIN_VALIDATION_ROWS} "
            f"(backfill more history: features need {LOOKBACK_HOURS} hours of candles first)"
        )
    validation_start = known["ts"].iloc[int(len(known) * (1 - VALIDATION_FRACTION))]
    validation = known[known["ts"] >= validation_start]
    # a fitted target log(close[t+h] / close[t]) must not reach into the held-out period
    fit = known[known["ts"] + timedelta(hours=horizon) <= validation_start]
    return Split(fit=fit, validation=validation)


def train_model(
    model: str, symbol: str, horizon: int, split: Split, cutoff: datetime
) -> dict[str, object]:
    """Fit ``model`` and return its record: window, validation figures, interval and the stored
    model (format, bytes, hash, versions; ``artifacts.sign_models`` signs it)."""
    target = f"target_{horizon}h"
    features = list(MODEL_FEATURES)
    pipeline = MODEL_ZOO[model]()
    pipeline.fit(split.fit[features], split.fit[target].to_numpy())
    predicted = pipeline.predict(split.validation[features])
    actual = split.validation[target].to_numpy()
    scale = interval_scale(split.validation, horizon)
    usable = np.isfinite(scale) & (scale > 0)
    levels = conformal_levels(len(split.validation), horizon)
    lower, upper = np.quantile(((actual - predicted) / scale)[usable], levels)
    figures = accuracy(actual, predicted)
    return {
        "symbol": symbol,
        "model": model,
        "horizon_h": horizon,
        "cutoff": cutoff,
        "fit_start": split.fit["ts"].min(),
        "fit_end": split.fit["ts"].max(),
        "validation_start": split.validation["ts"].min(),
        "validation_end": split.validation["ts"].max(),
        "fit_rows": len(split.fit),
        "validation_rows": len(split.validation),
        "features": features,
        "val_mae": figures["mae"],
        "val_rmse": figures["rmse"],
        "val_r2_vs_zero": figures["r2_vs_zero"],
        "val_directional_accuracy": figures["directional_accuracy"],
        "interval_low": float(lower),
        "interval_high": float(upper),
        "interval_scale_median": float(np.median(scale[usable])),
        **save_model(pipeline),
    }


def conformal_levels(rows: int, horizon: int) -> tuple[float, float]:
    """Quantile levels for a 90% interval from ``rows`` held-out residuals.

    Sample quantiles of n draws cover less than their level when n is small; the split-conformal
    correction takes level (1 - a)(1 + 1/n). Targets h hours ahead overlap, so n is the number
    of non-overlapping h-hour windows, not of rows: about 36 for a 24 h horizon by default.
    """
    windows = max(rows // horizon, 1)
    upper = min(1.0, INTERVAL_QUANTILES[1] * (1 + 1 / windows))
    return 1.0 - upper, upper


def interval_scale(rows: pd.DataFrame, horizon: int) -> np.ndarray:
    """The volatility a forecast's residual is measured in: 168 h realised, over h hours."""
    return rows["volatility_168h"].to_numpy("float64") * np.sqrt(horizon)


def train_all(
    rows: pd.DataFrame, cutoff: datetime, horizons: Iterable[int], models: Iterable[str],
    window_days: int | None = None,
) -> pd.DataFrame:  # fmt: skip
    """Every (symbol, horizon, model) record at ``cutoff``, one row each.

    Models are per symbol: symbols differ in volatility regime, and one symbol's model needs
    nothing from another's rows.
    """
    records = []
    for symbol, group in rows.groupby("symbol", sort=True):
        for horizon in horizons:
            split = split_rows(group, horizon, cutoff, window_days)  # shared by every model
            records += [train_model(model, str(symbol), horizon, split, cutoff) for model in models]
    return pd.DataFrame.from_records(records)
