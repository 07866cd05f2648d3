"""The Diebold-Mariano test: by hand, against the textbook formula, and on known cases."""

import math

import numpy as np
import pytest

from cryptify_pipeline.ml.significance import (
    diebold_mariano,
    loss_differential,
    significantly_better,
)


def test_a_case_worked_by_hand():
    # d = 1, 2, 3, 4 at h = 2: mean 2.5, deviations -1.5 -0.5 0.5 1.5
    # g0 = (2.25 + 0.25 + 0.25 + 2.25) / 4 = 1.25
    # g1 = ((-0.5)(-1.5) + (0.5)(-0.5) + (1.5)(0.5)) / 4 = 0.3125
    # V = g0 + 2 * (1 - 1/2) * g1 = 1.5625; stat = 2.5 / sqrt(1.5625 / 4) = 4
    stat, p_value = diebold_mariano(np.array([1.0, 2.0, 3.0, 4.0]), horizon=2)
    assert stat == pytest.approx(4.0)
    assert p_value == pytest.approx(0.5 * math.erfc(4 / math.sqrt(2)))  # 3.17e-5


def test_one_step_ahead_is_the_plain_t_statistic():
    d = np.random.default_rng(3).normal(0.1, 1.0, 500)
    stat, _ = diebold_mariano(d, horizon=1)
    assert stat == pytest.approx(d.mean() / (d.std(ddof=0) / math.sqrt(len(d))))


def test_missing_hours_drop_out_of_the_mean_and_every_lag():
    d = np.array([1.0, 2.0, np.nan, 3.0, 4.0])
    stat, _ = diebold_mariano(d, horizon=2)
    # mean 2.5 over 4 values; lag-1 pairs with both scored: (2, 1) and (4, 3) only
    centred = np.array([-1.5, -0.5, 0.5, 1.5])
    variance = (centred @ centred + 2 * 0.5 * ((-0.5) * (-1.5) + 1.5 * 0.5)) / 4
    assert stat == pytest.approx(2.5 / math.sqrt(variance / 4))


def test_the_zero_forecast_against_itself_is_undefined():
    y = np.random.default_rng(0).normal(0, 0.01, 100)
    assert all(math.isnan(v) for v in diebold_mariano(loss_differential(y, 0 * y), 6))
    assert all(math.isnan(v) for v in diebold_mariano(np.array([1.0]), 6))


def overlapping_returns(rng, hours: int, horizon: int) -> np.ndarray:
    """h-hour returns of a random walk observed every hour: they overlap by h - 1 hours."""
    steps = rng.normal(0, 0.01, hours + horizon)
    return np.convolve(steps, np.ones(horizon), mode="valid")[:hours]


def test_information_is_significant_and_noise_is_not():
    rng = np.random.default_rng(7)
    horizon, hours = 24, 24 * 90
    y = overlapping_returns(rng, hours, horizon)
    informed = 0.3 * y + rng.normal(0, 0.01, hours)  # knows part of the future
    noise = overlapping_returns(rng, hours, horizon) * 0.2  # unrelated, so worse than zero
    _, p_informed = diebold_mariano(loss_differential(y, informed), horizon)
    stat_noise, p_noise = diebold_mariano(loss_differential(y, noise), horizon)
    assert p_informed < 1e-4
    assert stat_noise < 0 and p_noise > 0.5


def test_ignoring_the_overlap_would_overstate_significance():
    # the same weak edge looks far more significant if the h - 1 autocovariances are ignored
    rng = np.random.default_rng(11)
    horizon, hours = 24, 24 * 60
    y = overlapping_returns(rng, hours, horizon)
    weak = 0.05 * y + overlapping_returns(rng, hours, horizon) * 0.05
    d = loss_differential(y, weak)
    with_overlap, _ = diebold_mariano(d, horizon)
    as_if_independent, _ = diebold_mariano(d, 1)
    assert abs(as_if_independent) > 2 * abs(with_overlap)


def test_significance_is_bonferroni_over_the_models_tested():
    # 3 models tested: the bound is 0.05 / 3 = 0.0167
    p_values = {"ridge": 0.01, "mlp": 0.02, "drift": 0.5, "zero_return": math.nan}
    assert significantly_better(p_values) == ["ridge"]
    assert significantly_better({"ridge": 0.2}) == []
    assert significantly_better({}) == []
