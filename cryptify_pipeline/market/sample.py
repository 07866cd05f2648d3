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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

import numpy as np
import pandas as pd

from cryptify_pipeline.market.candles import SOURCE_COLUMNS, empty_candles, typed_candles
from cryptify_pipeline.market.context import (
    FUNDING_EVERY_HOURS,
    cme_equity_open,
    empty_equity_index,
    empty_funding_rates,
    empty_open_interest,
    typed_equity_index,
    typed_funding_rates,
    typed_open_interest,
)
from cryptify_pipeline.market.errors import SourceError

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


# --- market context: open interest, funding and an equity index ---------------------------
#
# Each is simulated in the same whole-year blocks as the candles, from its own RNG seeded by
# (name, year, stream), with its state carried from the previous year's end, so an hour's value
# is the same whichever range is asked for.

OI_PERSISTENCE = 0.98  # hourly AR(1) coefficient of log open interest around its level
OI_PRICE_LOADING = 0.02  # per standardised hourly return: open interest rises with the price
OI_NOISE = 0.02
OI_TURNOVER_MULTIPLE = 12.0  # open interest in US dollars, in hours of spot turnover
FUNDING_BASE = 1e-4  # the exchanges' usual 0.01% per 8 hours
FUNDING_OI_LOADING = 3e-4  # crowded longs (high open interest) pay more
FUNDING_NOISE = 5e-5
FUNDING_CAP = 3.75e-3
INDEX_BTC_CORRELATION = 0.3  # of the index's hourly returns with BTC/USDT's, while it trades
INDEX_CORRELATED_WITH = "BTC/USDT"
_OI_STREAM, _INDEX_STREAM = 1, 2


@dataclass(frozen=True)
class IndexProfile:
    """An equity index future: its level at ``ANCHOR``, hourly volatility while it trades, and
    contracts traded per hour."""

    level: float
    hourly_sigma: float
    hourly_contracts: float


INDEX_PROFILES = {
    "ES=F": IndexProfile(5_900.0, 0.002, 1.2e5),
    "NQ=F": IndexProfile(21_000.0, 0.0026, 6e4),
    "YM=F": IndexProfile(42_500.0, 0.0018, 1.5e4),
}


class SampleContext:
    """The synthetic market's perpetual swaps: open interest and funding rates."""

    name = "sample"

    def fetch_open_interest(
        self, symbols: Sequence[str], start: datetime, end: datetime
    ) -> pd.DataFrame:
        _check_start(start)
        frames = [sample_open_interest(s, start, end) for s in symbols]
        return typed_open_interest(pd.concat(frames)) if frames else empty_open_interest()

    def fetch_funding_rates(
        self, symbols: Sequence[str], start: datetime, end: datetime
    ) -> pd.DataFrame:
        _check_start(start)
        frames = [sample_funding_rates(s, start, end) for s in symbols]
        return typed_funding_rates(pd.concat(frames)) if frames else empty_funding_rates()


class SampleEquityIndex:
    """The synthetic market's equity index futures, trading CME's hours."""

    name = "sample"

    def fetch(self, index_symbols: Sequence[str], start: datetime, end: datetime) -> pd.DataFrame:
        _check_start(start)
        frames = [sample_equity_index(s, start, end) for s in index_symbols]
        return typed_equity_index(pd.concat(frames)) if frames else empty_equity_index()


def _check_start(start: datetime) -> None:
    if start < EPOCH:
        raise SourceError(f"the sample market starts at {EPOCH:%Y-%m-%d}; asked for {start}")


def sample_open_interest(symbol: str, start: datetime, end: datetime) -> pd.DataFrame:
    """Open interest of ``symbol``'s perpetual at every whole hour in [start, end): in base
    units around ``OI_TURNOVER_MULTIPLE`` hours of turnover, following the price (AR(1) in
    logs driven by the hourly returns up to that instant), and in US dollars at the instant's
    price (the open of the candle at ts)."""
    frame = _across_years(start, end, lambda year: _oi_block(symbol, year))
    return typed_open_interest(frame if len(frame) else empty_open_interest())


def sample_funding_rates(symbol: str, start: datetime, end: datetime) -> pd.DataFrame:
    """Funding rates of ``symbol``'s perpetual settled in [start, end), every 8 hours from
    00:00 UTC: 0.01% plus more when open interest is above its level, plus noise, capped."""
    frame = _across_years(start, end, lambda year: _funding_block(symbol, year))
    return typed_funding_rates(frame if len(frame) else empty_funding_rates())


def sample_equity_index(index_symbol: str, start: datetime, end: datetime) -> pd.DataFrame:
    """One row per hour in [start, end): the bar of ``index_symbol`` where CME's equity futures
    trade (``cme_equity_open``: the week's hours less US holidays), a ``market_open = false``
    row with null prices where they do not. Returns are correlated with BTC/USDT's at
    ``INDEX_BTC_CORRELATION``; the price does not move while the market is shut."""
    frame = _across_years(start, end, lambda year: _index_block(index_symbol, year))
    return typed_equity_index(frame if len(frame) else empty_equity_index())


def _across_years(
    start: datetime, end: datetime, block: Callable[[int], pd.DataFrame]
) -> pd.DataFrame:
    """The rows of [start, end) from yearly blocks of ``BLOCK_HOURS`` hourly rows."""
    first, last = _hours_since_epoch(start), _hours_since_epoch(end)
    parts = []
    for year in range(start.year, end.year + 1):
        year_start = _hours_since_epoch(datetime(year, 1, 1, tzinfo=UTC))
        lo, hi = max(first, year_start) - year_start, min(last, _next_year(year)) - year_start
        if lo < hi:
            rows = block(year)
            parts.append(rows.iloc[lo:hi] if "block_hour" not in rows else _between(rows, lo, hi))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def _between(rows: pd.DataFrame, lo: int, hi: int) -> pd.DataFrame:
    hour = rows["block_hour"]
    return rows[(hour >= lo) & (hour < hi)].drop(columns="block_hour")


def _year_hours(year: int) -> int:
    return _next_year(year) - _hours_since_epoch(datetime(year, 1, 1, tzinfo=UTC))


def _block_ts(year: int) -> pd.DatetimeIndex:
    return pd.date_range(datetime(year, 1, 1, tzinfo=UTC), periods=BLOCK_HOURS, freq="h", unit="us")


def _standardised_returns(symbol: str, year: int) -> np.ndarray:
    candles = _year_block(symbol, year)
    log_return = np.log(candles["close"].to_numpy() / candles["open"].to_numpy())
    return log_return / profile(symbol).hourly_sigma


@lru_cache(maxsize=256)
def _oi_path(symbol: str, year: int) -> tuple[np.ndarray, float]:
    """The log deviation of open interest at each instant of the block (before the hour's
    candle), and its value at the year's end."""
    start = state = 0.0 if year == EPOCH.year else _oi_path(symbol, year - 1)[1]
    rng = np.random.default_rng([_seed(symbol), year, _OI_STREAM])
    drive = OI_PRICE_LOADING * _standardised_returns(symbol, year)
    drive += OI_NOISE * rng.standard_normal(BLOCK_HOURS)
    after = np.empty(BLOCK_HOURS)  # after the hour's candle
    for hour in range(BLOCK_HOURS):
        state = OI_PERSISTENCE * state + drive[hour]
        after[hour] = state
    return np.concatenate(([start], after[:-1])), float(after[_year_hours(year) - 1])


@lru_cache(maxsize=256)
def _oi_block(symbol: str, year: int) -> pd.DataFrame:
    known = profile(symbol)
    deviation, _ = _oi_path(symbol, year)
    contracts = known.hourly_turnover * OI_TURNOVER_MULTIPLE / known.level * np.exp(deviation)
    price = _year_block(symbol, year)["open"].to_numpy()  # the price at the instant ts
    return pd.DataFrame(
        {
            "symbol": symbol,
            "ts": _block_ts(year),
            "open_interest": contracts,
            "open_interest_usd": contracts * price,  # in the quote currency
            "source": "sample",
        }
    )


@lru_cache(maxsize=256)
def _funding_block(symbol: str, year: int) -> pd.DataFrame:
    deviation, _ = _oi_path(symbol, year)
    rng = np.random.default_rng([_seed(symbol), year, _OI_STREAM + 10])
    noise = rng.standard_normal(BLOCK_HOURS)
    rate = FUNDING_BASE + FUNDING_OI_LOADING * np.tanh(deviation / 0.15) + FUNDING_NOISE * noise
    ts = _block_ts(year)
    settles = ts.hour % FUNDING_EVERY_HOURS == 0
    return pd.DataFrame(
        {
            "symbol": symbol,
            "ts": ts[settles],
            "funding_rate": np.clip(rate, -FUNDING_CAP, FUNDING_CAP)[settles],
            "source": "sample",
            "block_hour": np.flatnonzero(settles),
        }
    )


def _index_profile(index_symbol: str) -> IndexProfile:
    if index_symbol in INDEX_PROFILES:
        return INDEX_PROFILES[index_symbol]
    level = 10.0 ** np.random.default_rng([_seed(index_symbol), 0]).uniform(2, 5)
    return IndexProfile(float(level), 0.002, 5e4)


@lru_cache(maxsize=64)
def _index_path(index_symbol: str, year: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Unshifted log close of each hour of the block (flat while shut), the hour's return, and
    the log close at the year's end."""
    state = 0.0 if year == EPOCH.year else _index_path(index_symbol, year - 1)[2]
    rng = np.random.default_rng([_seed(index_symbol), year, _INDEX_STREAM])
    own = rng.standard_normal(BLOCK_HOURS)
    btc = np.clip(_standardised_returns(INDEX_CORRELATED_WITH, year), -6, 6)
    rho = INDEX_BTC_CORRELATION
    shocks = rho * btc + np.sqrt(1 - rho * rho) * own
    trading = cme_equity_open(_block_ts(year))
    log_return = _index_profile(index_symbol).hourly_sigma * shocks * trading
    log_close = state + np.cumsum(log_return)
    return log_close, log_return, float(log_close[_year_hours(year) - 1])


@lru_cache(maxsize=64)
def _index_block(index_symbol: str, year: int) -> pd.DataFrame:
    known = _index_profile(index_symbol)
    anchor_state = (
        0.0 if ANCHOR.year == EPOCH.year else _index_path(index_symbol, ANCHOR.year - 1)[2]
    )
    log_close, log_return, _ = _index_path(index_symbol, year)
    shift = np.log(known.level) - anchor_state
    close = np.exp(log_close + shift)
    open_ = np.exp(log_close - log_return + shift)
    rng = np.random.default_rng([_seed(index_symbol), year, _INDEX_STREAM + 10])
    high_draw, low_draw = np.abs(rng.standard_normal((2, BLOCK_HOURS)))
    ts = _block_ts(year)
    trading = cme_equity_open(ts)
    # busier in US cash-market hours (14:30-21:00 UTC)
    us_hours = (ts.hour >= 14) & (ts.hour < 21)
    volume = known.hourly_contracts * rng.lognormal(0.0, 0.3, BLOCK_HOURS) * (1 + 2 * us_hours)
    half_sigma = 0.5 * known.hourly_sigma
    shut = np.where(trading, 1.0, np.nan)
    return pd.DataFrame(
        {
            "index_symbol": index_symbol,
            "ts": ts,
            "open": open_ * shut,
            "high": np.maximum(open_, close) * np.exp(half_sigma * high_draw) * shut,
            "low": np.minimum(open_, close) * np.exp(-half_sigma * low_draw) * shut,
            "close": close * shut,
            "volume": volume * shut,
            "market_open": trading,
            "source": "sample",
        }
    )
