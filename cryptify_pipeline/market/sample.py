"""An offline, deterministic synthetic market for demos and tests (``source='sample'``).

Per symbol, a geometric random walk whose hourly volatility follows GARCH(1,1) with Student-t
shocks (fat tails, volatility clustering). Log returns have zero mean, so no model should beat
"the price stays where it is". Known symbols look like themselves: BTC/USDT trades near 90,000
at the start of 2025 with an hourly volatility of 0.6% (about 56% a year), ETH/USDT near 3,300
at 0.8%, SOL/USDT near 190 at 1.1% (``PROFILES``); any other symbol gets a level between 1 and
10,000 from its name and an hourly volatility of 1%.

The candle for a given hour is the same whichever range is asked for and in whatever order:
the path is simulated from a fixed epoch in whole-year blocks of a fixed size, each drawn from
its own RNG seeded by (symbol, year), and the whole path is shifted by one constant per symbol
so that it passes through the profile's level at ``ANCHOR``. Same-size arrays make numpy's
arithmetic bit-identical however the range is cut, and each block's end state is cached per
process.
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
ANCHOR = datetime(2025, 1, 1, tzinfo=UTC)  # where each known symbol opens at its level
BLOCK_HOURS = 366 * 24  # every year's block has a leap year's length; the tail goes unused
HOURLY_SIGMA = 0.01
GARCH_ALPHA = 0.08
GARCH_BETA = 0.90
T_DEGREES_OF_FREEDOM = 5.0
_T_SCALE = np.sqrt((T_DEGREES_OF_FREEDOM - 2) / T_DEGREES_OF_FREEDOM)  # unit-variance shocks
STABLE_QUOTES = ("USDT", "USDC", "USD", "FDUSD", "BUSD", "DAI", "TUSD")


@dataclass(frozen=True)
class Profile:
    """How a base asset trades: its price in US dollars at ``ANCHOR``, its unconditional hourly
    volatility, and its hourly turnover in US dollars."""

    level: float
    hourly_sigma: float
    hourly_turnover: float


# levels near those of January 2025; volatilities near their recent realised ones
PROFILES = {
    "BTC": Profile(90_000.0, 0.006, 6e8),
    "ETH": Profile(3_300.0, 0.008, 3e8),
    "SOL": Profile(190.0, 0.011, 1e8),
    "BNB": Profile(700.0, 0.007, 4e7),
    "XRP": Profile(2.3, 0.011, 8e7),
    "DOGE": Profile(0.33, 0.013, 5e7),
    "ADA": Profile(0.9, 0.011, 3e7),
    "AVAX": Profile(36.0, 0.012, 2e7),
    "LINK": Profile(21.0, 0.012, 2e7),
    "LTC": Profile(100.0, 0.010, 2e7),
}


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
    log_close: float  # of the unshifted path, which starts at 0 at the epoch


@dataclass(frozen=True)
class _Year:
    """One year's simulated hours: the unshifted log prices and what shapes each candle."""

    log_open: np.ndarray
    log_close: np.ndarray
    sigma: np.ndarray
    high_draw: np.ndarray
    low_draw: np.ndarray
    volume_noise: np.ndarray


def profile(symbol: str) -> Profile:
    """The symbol's level (base over quote), volatility and turnover; a level from the name for
    unknown assets."""
    base, _, quote = symbol.partition("/")
    if base in PROFILES and (quote in STABLE_QUOTES or quote in PROFILES):
        known = PROFILES[base]
        level = known.level / (1.0 if quote in STABLE_QUOTES else PROFILES[quote].level)
        return Profile(level, known.hourly_sigma, known.hourly_turnover)
    # a price level between 1 and 10,000 that depends only on the symbol
    level = 10.0 ** np.random.default_rng([_seed(symbol), 0]).uniform(0, 4)
    return Profile(float(level), HOURLY_SIGMA, 2e7)


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
    return _candles(symbol, year, _simulate_year(symbol, year)[0])


@lru_cache(maxsize=256)
def _year_end_state(symbol: str, year: int) -> _State:
    return _simulate_year(symbol, year)[1]


def _start_state(symbol: str, year: int) -> _State:
    if year == EPOCH.year:
        return _State(profile(symbol).hourly_sigma ** 2, 0.0, 0.0)
    return _year_end_state(symbol, year - 1)


def _log_shift(symbol: str) -> float:
    """What the unshifted path needs added to open at the profile's level at ``ANCHOR``."""
    return float(np.log(profile(symbol).level)) - _start_state(symbol, ANCHOR.year).log_close


def _simulate_year(symbol: str, year: int) -> tuple[_Year, _State]:
    sigma2 = profile(symbol).hourly_sigma ** 2
    omega = sigma2 * (1 - GARCH_ALPHA - GARCH_BETA)
    state = _start_state(symbol, year)
    rng = np.random.default_rng([_seed(symbol), year])
    shocks = rng.standard_t(T_DEGREES_OF_FREEDOM, BLOCK_HOURS) * _T_SCALE
    high_draw, low_draw = np.abs(rng.standard_normal((2, BLOCK_HOURS)))
    volume_noise = rng.lognormal(0.0, 0.35, BLOCK_HOURS)

    variance = np.empty(BLOCK_HOURS)
    previous_variance, previous_shock = state.variance, state.shock
    for hour in range(BLOCK_HOURS):  # GARCH(1,1): sigma2_t = w + a * r_{t-1}^2 + b * sigma2_{t-1}
        previous_variance = (
            omega
            + GARCH_ALPHA * previous_variance * previous_shock * previous_shock
            + GARCH_BETA * previous_variance
        )
        variance[hour] = previous_variance
        previous_shock = shocks[hour]
    sigma = np.sqrt(variance)
    log_close = state.log_close + np.cumsum(sigma * shocks)
    log_open = np.concatenate(([state.log_close], log_close[:-1]))
    year_hours = _next_year(year) - _hours_since_epoch(datetime(year, 1, 1, tzinfo=UTC))
    end = year_hours - 1
    simulated = _Year(log_open, log_close, sigma, high_draw, low_draw, volume_noise)
    return simulated, _State(float(variance[end]), float(shocks[end]), float(log_close[end]))


def _candles(symbol: str, year: int, simulated: _Year) -> pd.DataFrame:
    """The year's candles: the path shifted to the symbol's level, with its high, low and
    volume."""
    shift, known = _log_shift(symbol), profile(symbol)
    open_, close = np.exp(simulated.log_open + shift), np.exp(simulated.log_close + shift)
    sigma = simulated.sigma
    # the path's excursions beyond open and close within the hour scale with its volatility
    high = np.maximum(open_, close) * np.exp(0.5 * sigma * simulated.high_draw)
    low = np.minimum(open_, close) * np.exp(-0.5 * sigma * simulated.low_draw)
    ts = pd.date_range(datetime(year, 1, 1, tzinfo=UTC), periods=BLOCK_HOURS, freq="h", unit="us")
    intraday = 1.0 + 0.3 * np.sin(2 * np.pi * (ts.hour.to_numpy() - 8) / 24)
    # turnover in quote currency, higher when the market moves
    quote_volume = (
        known.hourly_turnover * simulated.volume_noise * intraday * (sigma / known.hourly_sigma)
    )
    typical = (open_ + high + low + close) / 4
    return pd.DataFrame(
        {
            "ts": ts,
            "symbol": symbol,
            "open": open_,
            "high": high,
            "low": low,
            "close": close,
            "volume": quote_volume / typical,
            "quote_volume": quote_volume,
            # an average trade of a few thousand dollars' worth
            "trades": np.rint(quote_volume / 2_000).astype("int64"),
        }
    )
