"""The coverage band a split-conformal interval must land in, derived from its windows (or
its hourly residuals: ``hourly_coverage_band``).

For one calibration on n exchangeable held-out scores the upper bound is the k-th smallest,
k = ceil((n + 1)(1 - a/2)), and the lower bound the k-th largest. F(score) of the k-th smallest
of n draws is Beta(k, n - k + 1): mean k / (n + 1), variance k (n - k + 1) / ((n + 1)^2 (n + 2)).
So a calibration's coverage has expectation

    E = 1 - 2 (1 - k / (n + 1)) = 2k / (n + 1) - 1,   at least 1 - a (the guarantee),

and, bounding the two tails' covariance (positive) by treating them as independent, a variance
of at most 2 k (n - k + 1) / ((n + 1)^2 (n + 2)). Measuring it on m effectively independent
test windows (rows / h: h-hour targets made every hour overlap) adds the binomial E (1 - E) / m.
Averaged over R calibrations the variance is the mean of theirs over R, and the band is

    [1 - a - z sd,  mean E + z sd].
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from cryptify_pipeline.ml.training import conformal_rank


@dataclass(frozen=True)
class Band:
    low: float
    high: float
    expected: float
    sd: float

    def __contains__(self, coverage: float) -> bool:
        return self.low <= coverage <= self.high

    def __str__(self) -> str:
        return f"[{self.low:.4f}, {self.high:.4f}] (expected {self.expected:.4f}, sd {self.sd:.4f})"


def expected_coverage(level: float, windows: int) -> float:
    """2k / (n + 1) - 1: what a calibration on ``windows`` scores covers on average."""
    k = conformal_rank(level, windows)
    return 2 * k / (windows + 1) - 1


def coverage_band(
    level: float, windows: Sequence[int], test_windows: Sequence[float], z: float = 3.0
) -> Band:
    """The band for the mean coverage of calibrations on ``windows[i]`` scores, each tested on
    ``test_windows[i]`` independent windows (see the module's docstring)."""
    count = len(windows)
    expected, variance = 0.0, 0.0
    for n, m in zip(windows, test_windows, strict=True):
        k = conformal_rank(level, n)
        e = 2 * k / (n + 1) - 1
        expected += e / count
        variance += (2 * k * (n - k + 1) / ((n + 1) ** 2 * (n + 2)) + e * (1 - e) / m) / count**2
    sd = math.sqrt(variance)
    return Band(level - z * sd, expected + z * sd, expected, sd)


def hourly_coverage_band(
    level: float, horizon: int, residuals: Sequence[int], test_windows: Sequence[float],
    z: float = 3.0,
) -> Band:  # fmt: skip
    """The band for the mean coverage of ``HOURLY_METHOD`` calibrations on ``residuals[i]``
    hourly residuals ``horizon`` hours ahead, each tested on ``test_windows[i]`` independent
    windows. The rank is that of n exchangeable scores, so a calibration covers on average
    2k / (n + 1) - 1 (at least 1 - a); its spread is the Beta one of the k / (n + 1)
    quantile estimated from only m = n / h independent windows, q (1 - q) / (m + 2) per tail
    (the two tails counted as independent, as in ``coverage_band``)."""
    count = len(residuals)
    expected, variance = 0.0, 0.0
    for n, m in zip(residuals, test_windows, strict=True):
        k = conformal_rank(level, n)
        e = 2 * k / (n + 1) - 1
        q = k / (n + 1)
        expected += e / count
        variance += (2 * q * (1 - q) / (n / horizon + 2) + e * (1 - e) / m) / count**2
    sd = math.sqrt(variance)
    return Band(level - z * sd, expected + z * sd, expected, sd)
