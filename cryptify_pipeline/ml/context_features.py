"""Market-context features: open interest, funding and an equity index, joined as of each hour.

A features row at ``ts = T`` describes the candle of [T, T + 1 h) and may use only what was known
when that candle closed. Each context value is taken from the context partitions of hours up to
and including T, and from a fixed window of them ending at T:

- open interest measured at whole hours ``<= T`` (the candle's open; the one measured at its
  close, T + 1 h, belongs to the next partition);
- funding rates settled in the ``FUNDING_HOURS`` partition hours ending with T, i.e. at times
  ``< T + 1 h``;
- index bars that opened at hours ``<= T`` (the bar of T closes at T + 1 h).

Reaching into partition T + 1 would make a row depend on how many partitions a run loaded (a
backfill would see it, an hourly run not), so the rule is one hour stricter than what is known at
T + 1 h. Every value comes from a fixed trailing window (as the candle features do), so a row is
bit-identical however much history was computed with it. Missing context is NaN, never an error:
forecasts impute it (``ml/models.py``), and the ``features`` asset counts it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from cryptify_pipeline.hours import HOUR
from cryptify_pipeline.ml.features import LOOKBACK_HOURS, lag, window_mean

OI_MEAN_HOURS = 168
FUNDING_HOURS = 32  # four 8-hourly settlements: the last three are always inside
FUNDING_PERIODS = 3
# longer than any CME closure: the longest, Christmas on a Friday, is 76 shut hours (Thursday
# 12:15 to Sunday 17:00 Chicago; Good Friday's weekend is 73); test_cme_calendar checks it
INDEX_CARRY_HOURS = 96

CONTEXT_COLUMNS = (
    "oi_log_change_1h",
    "oi_log_change_24h",
    "oi_vs_7d_mean",
    "funding_rate",
    "funding_rate_mean_3",
    "hours_since_funding",
    "index_log_return_1h",
    "index_log_return_24h",
    "index_market_open",
    "crypto_minus_index_1h",
    "crypto_minus_index_24h",
)
OPEN_INTEREST_FEATURES = CONTEXT_COLUMNS[:3]
FUNDING_FEATURES = CONTEXT_COLUMNS[3:6]
INDEX_FEATURES = CONTEXT_COLUMNS[6:]
# every window fits in the candles' lookback, so one partition mapping serves all inputs
assert max(OI_MEAN_HOURS + 1, FUNDING_HOURS, INDEX_CARRY_HOURS + 25) <= LOOKBACK_HOURS


@dataclass(frozen=True)
class MarketContext:
    """The context tables as the ``features`` asset reads them (any may be empty), and the
    equity index whose bars become features (None: no index features)."""

    open_interest: pd.DataFrame = field(default_factory=pd.DataFrame)
    funding_rates: pd.DataFrame = field(default_factory=pd.DataFrame)
    equity_index: pd.DataFrame = field(default_factory=pd.DataFrame)
    index_symbol: str | None = None


def with_context(features: pd.DataFrame, context: MarketContext | None) -> pd.DataFrame:
    """``features`` (from ``build_features``) with the ``CONTEXT_COLUMNS`` appended: NaN where
    the context is missing, all NaN without any."""
    result = features.copy()
    for column in CONTEXT_COLUMNS:
        result[column] = np.nan
    if context is None or features.empty:
        return result
    index = index_features(
        context.equity_index, context.index_symbol, result["ts"].min(), result["ts"].max()
    )
    for symbol, rows in result.groupby("symbol", sort=False):
        values = symbol_context(
            context,
            index,
            str(symbol),
            pd.DatetimeIndex(rows["ts"]),
            rows["log_return_1h"].to_numpy("float64"),
            rows["log_return_24h"].to_numpy("float64"),
        )
        for column, value in values.items():
            result.loc[rows.index, column] = value
    return result


def symbol_context(
    context: MarketContext,
    index: pd.DataFrame,
    symbol: str,
    ts: pd.DatetimeIndex,
    log_return_1h: np.ndarray,
    log_return_24h: np.ndarray,
) -> dict[str, np.ndarray]:
    """The ``CONTEXT_COLUMNS`` of one symbol's features rows at ``ts`` (with those rows' 1 h and
    24 h log returns), given ``index``: ``index_features`` over hours that include ``ts``."""
    values = {
        **open_interest_features(_of_symbol(context.open_interest, symbol), ts),
        **funding_features(_of_symbol(context.funding_rates, symbol), ts),
        **{column: index[column].reindex(ts).to_numpy("float64") for column in index.columns},
    }
    with np.errstate(invalid="ignore"):
        values["crypto_minus_index_1h"] = log_return_1h - values["index_log_return_1h"]
        values["crypto_minus_index_24h"] = log_return_24h - values["index_log_return_24h"]
    return {
        column: np.where(np.isinf(values[column]), np.nan, values[column].astype("float64"))
        for column in CONTEXT_COLUMNS
    }


def _of_symbol(frame: pd.DataFrame, symbol: str) -> pd.DataFrame:
    if frame.empty or "symbol" not in frame.columns:
        return frame.iloc[0:0]
    return frame[frame["symbol"] == symbol]


def _grid(ts: pd.DatetimeIndex) -> pd.DatetimeIndex:
    """Every hour from ``LOOKBACK_HOURS`` before the first of ``ts`` to its last: wide enough for
    every window of every row, so a row's value never depends on where the grid starts."""
    return pd.date_range(ts.min() - (LOOKBACK_HOURS - 1) * HOUR, ts.max(), freq="h")


def open_interest_features(frame: pd.DataFrame, ts: pd.DatetimeIndex) -> dict[str, np.ndarray]:
    """Log changes of open interest over 1 h and 24 h, and its log ratio to its mean over the
    last ``OI_MEAN_HOURS`` measurements, at each hour of ``ts`` (a missing hour is NaN, and so
    is every window that holds it)."""
    if frame.empty:
        return {column: np.full(len(ts), np.nan) for column in OPEN_INTEREST_FEATURES}
    grid = _grid(ts)
    measured = frame.assign(hour=frame["ts"].dt.floor("h")).drop_duplicates("hour", keep="last")
    oi = measured.set_index("hour")["open_interest"].reindex(grid).to_numpy("float64")
    with np.errstate(divide="ignore", invalid="ignore"):
        columns = {
            "oi_log_change_1h": np.log(oi / lag(oi, 1)),
            "oi_log_change_24h": np.log(oi / lag(oi, 24)),
            "oi_vs_7d_mean": np.log(oi / window_mean(oi, OI_MEAN_HOURS)),
        }
    at = grid.get_indexer(ts)
    return {column: values[at] for column, values in columns.items()}


def funding_features(frame: pd.DataFrame, ts: pd.DatetimeIndex) -> dict[str, np.ndarray]:
    """From the funding rates settled in [T + 1 h - ``FUNDING_HOURS`` h, T + 1 h) for each hour T
    of ``ts``: the last rate, the mean of the last ``FUNDING_PERIODS`` (NaN with fewer), and the
    hours from the last settlement to the candle's close."""
    none = np.full(len(ts), np.nan)
    if frame.empty:
        return {column: none.copy() for column in FUNDING_FEATURES}
    ordered = frame.sort_values("ts")
    settled = pd.DatetimeIndex(ordered["ts"])
    rates = ordered["funding_rate"].to_numpy("float64")
    close = ts + HOUR
    end = settled.searchsorted(close, side="left")  # rates settled before the candle's close
    count = end - settled.searchsorted(close - FUNDING_HOURS * HOUR, side="left")
    last = np.where(count >= 1, rates[np.maximum(end - 1, 0)], np.nan)
    recent = np.stack([rates[np.maximum(end - k, 0)] for k in range(1, FUNDING_PERIODS + 1)])
    mean = np.where(count >= FUNDING_PERIODS, recent.mean(axis=0), np.nan)
    since = (close - settled[np.maximum(end - 1, 0)]) / HOUR
    return {
        "funding_rate": last,
        "funding_rate_mean_3": mean,
        "hours_since_funding": np.where(count >= 1, np.asarray(since, dtype="float64"), np.nan),
    }


def index_features(
    frame: pd.DataFrame, index_symbol: str | None, first: pd.Timestamp, last: pd.Timestamp
) -> pd.DataFrame:
    """Per hour T in [first, last]: the index's log return over 1 h and 24 h between its last
    closes known at T + 1 h and at T (and T - 23 h), and whether it traded in T.

    The last close is carried through hours the market is shut (``market_open`` false) for at
    most ``INDEX_CARRY_HOURS``, so while shut the return is 0 and the first hour after the
    reopening carries the whole closure's move, as the old system's forward-filled close did;
    ``index_market_open`` tells a model which zeros are real. An hour with no row at all
    (missing, not shut) is NaN and stops the carry.
    """
    grid = _grid(pd.DatetimeIndex([first, last]))
    columns = ("index_log_return_1h", "index_log_return_24h", "index_market_open")
    result = pd.DataFrame({c: np.nan for c in columns}, index=grid)
    if frame.empty or index_symbol is None or "index_symbol" not in frame.columns:
        return result.loc[first:last]
    rows = frame[frame["index_symbol"] == index_symbol].set_index("ts").reindex(grid)
    market_open = rows["market_open"].astype("float64")  # NaN where there is no row
    traded = (market_open == 1.0) & rows["close"].notna()
    known = traded | (market_open == 0.0)
    closes = rows["close"].where(traded)
    # carried only across shut hours: a missing hour starts a new group, the carry stops there
    carried = closes.groupby((~known).cumsum()).ffill(limit=INDEX_CARRY_HOURS).where(known)
    carried = carried.to_numpy("float64")
    with np.errstate(divide="ignore", invalid="ignore"):
        result["index_log_return_1h"] = np.log(carried / lag(carried, 1))
        result["index_log_return_24h"] = np.log(carried / lag(carried, 24))
    result["index_market_open"] = np.where(known, traded.astype("float64"), np.nan)
    return result.loc[first:last]
