"""Is a model better than the zero forecast, or lucky? The Diebold-Mariano test.

The loss differential of a forecast is ``d_t = y_t^2 - (y_t - f_t)^2``: the zero forecast's
squared error (its error is the realised return itself) minus the model's. A model better than
zero has ``E[d] > 0``. Forecasts h hours ahead made every hour overlap, so ``d`` is
autocorrelated up to lag h - 1 (MA(h-1) under the null), and exactly those lags enter the
variance of its mean, each with weight one. Bartlett weights (Newey-West) would shrink them and
understate the variance when the forecasts move slowly, as learned models' do, calling a
useless model better far too often; they are only the fallback when the unweighted sum is not
positive. The Harvey-Leybourne-Newbold correction and Student t(T-1) p-values keep the test's
size near nominal in samples of a month. Fewer than ``MIN_WINDOWS`` independent h-hour windows
get no test at all: the variance cannot be estimated from a handful of windows.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

# a model is called better than zero below this one-sided p-value, after Bonferroni over the
# models compared for a symbol and horizon
SIGNIFICANCE = 0.05
# independent h-hour windows (h * MIN_WINDOWS scored hours) below which nothing is tested;
# at 30 the one-sided 5% test calls a useless model better in ~6% of samples, not 5%
# (simulated in cryptify_pipeline_tests/ml/test_significance.py)
MIN_WINDOWS = 30


class DieboldMariano(NamedTuple):
    """A test's statistic and one-sided p-value; both NaN when not tested, and ``note`` says
    why (None when tested)."""

    stat: float
    p_value: float
    note: str | None


def loss_differential(realised: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Per forecast: the zero forecast's squared error minus the model's (> 0: model better)."""
    realised, predicted = np.asarray(realised, float), np.asarray(predicted, float)
    return realised**2 - (realised - predicted) ** 2


def diebold_mariano(
    differential: np.ndarray, horizon: int, min_windows: int = MIN_WINDOWS
) -> DieboldMariano:
    """The test of ``H1: E[d] > 0`` for ``differential`` in time order, one value per hour, NaN
    where no forecast was scored.

    With T scored hours, ``g_k = sum (d_t - mean)(d_{t-k} - mean) / T`` over the pairs both
    scored and ``V = g0 + 2 (g1 + ... + g_{h-1})`` (if not positive, Bartlett-weighted:
    ``g0 + 2 sum (1 - k/h) g_k``), ``stat = mean / sqrt(V / T) * sqrt((T + 1 - 2h +
    h(h-1)/T) / T)`` (Harvey, Leybourne and Newbold 1997) and ``p = P(t(T-1) > stat)``.
    Not tested (NaN, with a note) below ``min_windows * horizon`` scored hours, or when ``d``
    does not vary (the zero forecast against itself).
    """
    if horizon < 1 or min_windows < 2:
        raise ValueError(
            f"the test needs a horizon of at least 1 hour and at least 2 windows, got "
            f"horizon {horizon} and min_windows {min_windows}"
        )
    d = np.asarray(differential, float)
    scored = np.isfinite(d)
    count = int(scored.sum())
    needed = min_windows * horizon
    if count < needed:
        return _untested(
            f"too few forecasts to test: {count} scored hour(s), {count / horizon:.1f} "
            f"independent {horizon}-hour windows; the test needs {min_windows} ({needed} hours)"
        )
    mean = float(d[scored].mean())
    # a missing hour contributes nothing to any autocovariance it would be part of
    centred = np.where(scored, d - mean, 0.0)
    lags = np.arange(1, min(horizon, len(d)))
    autocovariances = np.array([centred[k:] @ centred[:-k] for k in lags]) / count
    g0 = float(centred @ centred) / count
    variance = g0 + 2 * float(autocovariances.sum())
    if not variance > 0:
        # Newey-West is never negative; zero only when d does not vary
        variance = g0 + 2 * float(((1 - lags / horizon) * autocovariances).sum())
    if not variance > 0:
        return _untested("not tested: its squared errors equal the zero forecast's throughout")
    correction = (count + 1 - 2 * horizon + horizon * (horizon - 1) / count) / count
    stat = mean / math.sqrt(variance / count) * math.sqrt(correction)
    # imported here: scipy.stats costs every run process seconds to import, and only scoring
    # needs it; stdtr(df, -x) is Student t's survival function at x
    from scipy.special import stdtr

    return DieboldMariano(stat, float(stdtr(count - 1, -stat)), None)


def _untested(note: str) -> DieboldMariano:
    return DieboldMariano(math.nan, math.nan, note)


def significantly_better(p_values: dict[str, float]) -> list[str]:
    """The models whose p-value is below SIGNIFICANCE / (number of models tested); a model
    without a p-value was not tested and does not count."""
    tested = {model: p for model, p in p_values.items() if np.isfinite(p)}
    if not tested:
        return []
    bound = SIGNIFICANCE / len(tested)
    return sorted(model for model, p in tested.items() if p < bound)


def significantly_worse(p_values: dict[str, float]) -> list[str]:
    """The models significantly worse than the zero forecast: ``p_values`` are the one-sided
    p-values of "better" (P(t > stat)), so "worse"'s are ``1 - p`` (P(t < stat)), compared
    with SIGNIFICANCE / (number of models tested) as ``significantly_better`` does."""
    tested = {model: p for model, p in p_values.items() if np.isfinite(p)}
    if not tested:
        return []
    bound = SIGNIFICANCE / len(tested)
    return sorted(model for model, p in tested.items() if 1 - p < bound)
