"""An offline, deterministic synthetic market for demos and tests (``source='sample'``).

Per symbol, a geometric random walk whose hourly volatility follows GARCH(1,1) with Student-t
shocks (fat tails, volatility clustering, unconditional hourly sigma of 1%). Log returns have
zero mean, so no model should beat "the price stays where it is".

The candle for a given hour is the same whichever range is asked for and in whatever order:
the path is simulated from a fixed epoch in whole-year blocks of a fixed size, each drawn from
its own RNG seeded by (symbol, year). Same-size arrays make numpy's arithmetic bit-identical
however the range is cut, and each block's end state is cached per process.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

import numpy as np
import pandas as pd

from cryptify_pipeline.market.candles import SOURCE_COLUMNS, empty_candles, typed_candles
from cryptify_pipeline.market.sources import SourceError

EPOCH = datetime(2017, 1, 1, tzinfo=UTC)
BLOCK_HOURS = 366 * 24  # every year's block has a leap year's length; the tail goes unused
HOURLY_SIGMA = 0.01
GARCH_ALPHA = 0.08
GARCH_BETA = 0.90
GARCH_OMEGA = HOURLY_SIGMA**2 * (1 - GARCH_ALPHA - GARCH_BETA)
T_DEGREES_OF_FREEDOM = 5.0
_T_SCALE = np.sqrt((T_DEGREES_OF_FREEDOM - 2) / T_DEGREES_OF_FREEDOM)  # unit-variance shocks


class SampleMarket:
    """The synthetic market: ``fetch`` returns closed candles like any other source."""

    name = "sample"

    def fetch(self, symbols: Sequence[str], start: datetime, end: datetime) -> pd.DataFrame:
        if start < EPOCH:
            raise SourceError(f"the sample market starts at {EPOCH:%Y-%m-%d}; asked for {start}")
        frames = [sample_candles(symbol, start, end) for symbol in symbols]
        return typed_candles(pd.concat(frames)) if frames else empty_candles()


@dataclass(frozen=True)
class _State:
    variance: float
    shock: float  # last standardised shock, which drives the next variance
    log_close: float


def sample_candles(symbol: str, start: datetime, end: datetime) -> pd.DataFrame:
    """Candles of ``symbol`` with open time in [start, end), both on the hour."""
    first = _hours_since_epoch(start)
    last = _hours_since_epoch(end)  # exclusive
    parts = []
    for year in range(start.year, end.year + 1):
        year_start = _hours_since_epoch(datetime(year, 1, 1, tzinfo=UTC))
        lo, hi = max(first, year_start) - year_start, min(last, _next_year(year)) - year_start
        if lo < hi:
            parts.append(_year_block(symbol, year).iloc[lo:hi])
    if not parts:
        return pd.DataFrame(columns=list(SOURCE_COLUMNS))
    return pd.concat(parts, ignore_index=True)


def _hours_since_epoch(moment: datetime) -> int:
    return int((moment - EPOCH).total_seconds() // 3600)


def _next_year(year: int) -> int:
    return _hours_since_epoch(datetime(year + 1, 1, 1, tzinfo=UTC))


def _seed(symbol: str) -> int:
    return int.from_bytes(hashlib.sha256(symbol.encode()).digest()[:8], "little")


@lru_cache(maxsize=256)
def _year_block(symbol: str, year: int) -> pd.DataFrame:
    frame, _ = _simulate_year(symbol, year)
    return frame


@lru_cache(maxsize=256)
def _year_end_state(symbol: str, year: int) -> _State:
    return _simulate_year(symbol, year)[1]


def _start_state(symbol: str, year: int) -> _State:
    if year == EPOCH.year:
        # a price level between 1 and 10,000 that depends only on the symbol
        level = np.random.default_rng([_seed(symbol), 0]).uniform(0, 4)
        return _State(HOURLY_SIGMA**2, 0.0, float(np.log(10.0) * level))
    return _year_end_state(symbol, year - 1)


def _simulate_year(symbol: str, year: int) -> tuple[pd.DataFrame, _State]:
    state = _start_state(symbol, year)
    rng = np.random.default_rng([_seed(symbol), year])
    shocks = rng.standard_t(T_DEGREES_OF_FREEDOM, BLOCK_HOURS) * _T_SCALE
    high_draw, low_draw = np.abs(rng.standard_normal((2, BLOCK_HOURS)))
    volume_noise = rng.lognormal(0.0, 0.35, BLOCK_HOURS)

    variance = np.empty(BLOCK_HOURS)
    previous_variance, previous_shock = state.variance, state.shock
    for hour in range(BLOCK_HOURS):  # GARCH(1,1): sigma2_t = w + a * r_{t-1}^2 + b * sigma2_{t-1}
        previous_variance = (
            GARCH_OMEGA
            + GARCH_ALPHA * previous_variance * previous_shock * previous_shock
            + GARCH_BETA * previous_variance
        )
        variance[hour] = previous_variance
        previous_shock = shocks[hour]
    sigma = np.sqrt(variance)
    log_returns = sigma * shocks
    log_close = state.log_close + np.cumsum(log_returns)
    log_open = np.concatenate(([state.log_close], log_close[:-1]))

    open_, close = np.exp(log_open), np.exp(log_close)
    # the path's excursions beyond open and close within the hour scale with its volatility
    high = np.maximum(open_, close) * np.exp(0.5 * sigma * high_draw)
    low = np.minimum(open_, close) * np.exp(-0.5 * sigma * low_draw)
    ts = pd.date_range(datetime(year, 1, 1, tzinfo=UTC), periods=BLOCK_HOURS, freq="h", unit="us")
    intraday = 1.0 + 0.3 * np.sin(2 * np.pi * (ts.hour.to_numpy() - 8) / 24)
    # turnover of ~20M in quote currency per hour, higher when the market moves
    quote_volume = 2e7 * volume_noise * intraday * (sigma / HOURLY_SIGMA)
    typical = (open_ + high + low + close) / 4
    frame = pd.DataFrame(
        {
            "ts": ts,
            "symbol": symbol,
            "open": open_,
            "high": high,
            "low": low,
            "close": close,
            "volume": quote_volume / typical,
            "quote_volume": quote_volume,
            "trades": np.rint(quote_volume / 2_000).astype("int64"),
        }
    )
    year_hours = _next_year(year) - _hours_since_epoch(datetime(year, 1, 1, tzinfo=UTC))
    end = year_hours - 1
    return frame, _State(float(variance[end]), float(shocks[end]), float(log_close[end]))
