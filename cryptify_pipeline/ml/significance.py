"""Is a model better than the zero forecast, or lucky? The Diebold-Mariano test.

The loss differential of a forecast is ``d_t = y_t^2 - (y_t - f_t)^2``: the zero forecast's
squared error (its error is the realised return itself) minus the model's. A model better than
zero has ``E[d] > 0``. Forecasts h hours ahead made every hour overlap, so ``d`` is
autocorrelated up to lag h - 1; its mean's variance is estimated with Newey-West (Bartlett
weights ``1 - k/h``, lags 1..h-1), which is never negative.
"""

from __future__ import annotations

import math

import numpy as np

# a model is called better than zero below this one-sided p-value, after Bonferroni over the
# models compared for a symbol and horizon
SIGNIFICANCE = 0.05


def loss_differential(realised: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Per forecast: the zero forecast's squared error minus the model's (> 0: model better)."""
    realised, predicted = np.asarray(realised, float), np.asarray(predicted, float)
    return realised**2 - (realised - predicted) ** 2


def diebold_mariano(differential: np.ndarray, horizon: int) -> tuple[float, float]:
    """(statistic, one-sided p-value) of ``H1: E[d] > 0`` for ``differential`` in time order,
    one value per hour, NaN where no forecast was scored.

    ``stat = mean(d) / sqrt(V / T)`` with ``V = g0 + 2 sum_{k<h} (1 - k/h) g_k`` and
    ``g_k = sum (d_t - mean)(d_{t-k} - mean) / T`` over the pairs both scored; T is the number
    of scored hours. The p-value is from the normal distribution (T is in the hundreds or more).
    NaN when undefined: fewer than two values, or no variation (the zero forecast against
    itself).
    """
    d = np.asarray(differential, float)
    scored = np.isfinite(d)
    count = int(scored.sum())
    if count < 2:
        return math.nan, math.nan
    mean = float(d[scored].mean())
    # a missing hour contributes nothing to any autocovariance it would be part of
    centred = np.where(scored, d - mean, 0.0)
    variance = float(centred @ centred) / count
    for lag in range(1, min(horizon, len(d))):
        weight = 1 - lag / horizon
        variance += 2 * weight * float(centred[lag:] @ centred[:-lag]) / count
    if not variance > 0:
        return math.nan, math.nan
    stat = mean / math.sqrt(variance / count)
    return stat, 0.5 * math.erfc(stat / math.sqrt(2))  # P(N(0, 1) > stat)


def significantly_better(p_values: dict[str, float]) -> list[str]:
    """The models whose p-value is below SIGNIFICANCE / (number of models tested)."""
    tested = {model: p for model, p in p_values.items() if np.isfinite(p)}
    if not tested:
        return []
    bound = SIGNIFICANCE / len(tested)
    return sorted(model for model, p in tested.items() if p < bound)
