"""Hourly candles from a GARCH(1,1) random walk with a fixed seed, for interval tests and the
intervals benchmark.

Volatility clusters (sigma2[t] = omega + alpha r[t-1]^2 + beta sigma2[t-1], Student-t shocks
of unit variance); optionally ``regimes``: calm weeks (volatility a third) alternating with
ordinary ones, and ``jump_rate`` jumps per hour of ``jump_size`` times the current volatility.
Returns have zero mean: the best forecast is no change, and only the interval has work to do.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from cryptify_pipeline.market.candles import typed_candles

ALPHA, BETA = 0.08, 0.90
T_DEGREES_OF_FREEDOM = 5.0


def garch_returns(
    hours: int, seed: int, sigma: float = 0.006, *, regimes: bool = False,
    jump_rate: float = 0.0, jump_size: float = 8.0,
) -> np.ndarray:  # fmt: skip
    """``hours`` hourly log returns of unconditional volatility about ``sigma``."""
    rng = np.random.default_rng(seed)
    shocks = rng.standard_t(T_DEGREES_OF_FREEDOM, hours)
    shocks *= np.sqrt((T_DEGREES_OF_FREEDOM - 2) / T_DEGREES_OF_FREEDOM)
    jumps = (rng.random(hours) < jump_rate) * rng.choice([-1.0, 1.0], hours) * jump_size
    level = np.ones(hours)
    if regimes:  # every other week calm: the volatility's level a third of the ordinary one
        level = np.where((np.arange(hours) // 168) % 2 == 1, 1 / 3, 1.0)
    omega = sigma**2 * (1 - ALPHA - BETA)
    returns, variance = np.empty(hours), sigma**2
    previous = 0.0
    for hour in range(hours):
        variance = omega * level[hour] ** 2 + ALPHA * previous**2 + BETA * variance
        volatility = np.sqrt(variance)
        returns[hour] = volatility * (shocks[hour] + jumps[hour])
        previous = volatility * shocks[hour]  # a jump is news, not a new regime
    return returns


def garch_candles(
    symbol: str, start: datetime, hours: int, seed: int, level: float = 100.0, **kwargs
) -> pd.DataFrame:
    """Candles of ``symbol`` from ``start``, one per hour, closes following ``garch_returns``."""
    returns = garch_returns(hours, seed, **kwargs)
    close = level * np.exp(np.cumsum(returns))
    open_ = np.concatenate([[level], close[:-1]])
    wiggle = np.abs(np.random.default_rng(seed + 1).standard_normal((2, hours))) * 0.002
    high = np.maximum(open_, close) * (1 + wiggle[0])
    low = np.minimum(open_, close) * (1 - wiggle[1])
    volume = np.exp(np.random.default_rng(seed + 2).normal(5, 0.3, hours))
    frame = pd.DataFrame(
        {
            "ts": pd.date_range(start, start + timedelta(hours=hours - 1), freq="h"),
            "symbol": symbol,
            "open": open_,
            "high": high,
            "low": low,
            "close": close,
            "volume": volume,
            "quote_volume": volume * close,
            "trades": np.full(hours, 100),
        }
    )
    return typed_candles(frame)
