"""The market-context contract: open interest, funding rates and equity-index bars.

Three hourly-partitioned tables beside the candles (see docs/forecasting.md, Market context):

- ``open_interest`` (symbol, ts): the open interest of the symbol's perpetual swap measured at
  the instant ``ts`` (a whole hour), known at ``ts``.
- ``funding_rates`` (symbol, ts): the rate settled at the funding time ``ts`` as the exchange
  gives it (8-hourly), known at ``ts``; it belongs to the partition hour containing ``ts``, so
  most hours hold none.
- ``equity_index`` (index_symbol, ts): one row per index and hour; the bar that opened at ``ts``
  (known at ``ts + 1 h``), or ``market_open = false`` with null prices for an hour the market
  is shut. No price is invented for a shut hour.

``symbol`` is the pipeline's spot spelling (``BTC/USDT``); the perpetual's is ``BTC/USDT:USDT``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import numpy as np
import pandas as pd

from cryptify_pipeline.market.cme_calendar import cme_equity_open

OPEN_INTEREST_COLUMNS = ("symbol", "ts", "open_interest", "open_interest_usd", "source")
FUNDING_COLUMNS = ("symbol", "ts", "funding_rate", "source")
EQUITY_PRICE_COLUMNS = ("open", "high", "low", "close", "volume")
EQUITY_INDEX_COLUMNS = ("index_symbol", "ts", *EQUITY_PRICE_COLUMNS, "market_open", "source")
# the context tables, as collect_job, gap repair, bootstrap and the benchmark name them
CONTEXT_TABLE_NAMES = ("open_interest", "funding_rates", "equity_index")
# every table collect_job writes per hour (then it computes the features from them)
COLLECTED_TABLES = ("candles", *CONTEXT_TABLE_NAMES)
FUNDING_EVERY_HOURS = 8  # the usual funding interval: 00:00, 08:00, 16:00 UTC

# What a context fetch came to, as ``source_status`` in its materialisation's metadata: the
# asset writes it and gap repair reads it, so it lives below both.
OK = "ok"
DISABLED = "disabled"  # CRYPTIFY_CONTEXT_SOURCE / CRYPTIFY_EQUITY_INDEX_SOURCE = none
RETRYABLE = "failed, retryable"  # network, 5xx, 429: gap repair asks again
FAILED = "failed"  # configuration, unknown symbol, malformed data: retrying will not help
STATUS_KEY = "source_status"
# when the equity index trades (CME Globex's hours and US holidays): ``cme_calendar``


class ContextValidationError(ValueError):
    """A context row that breaks a rule; nothing of its partition is written."""


def perpetual_of(symbol: str) -> str:
    """The linear perpetual swap of a spot pair in ccxt's spelling: ``BTC/USDT:USDT``."""
    base, _, quote = symbol.partition("/")
    return f"{base}/{quote}:{quote}"


def _ts(values: object) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(pd.to_datetime(values, utc=True)).as_unit("us")


_TEXT_COLUMNS = frozenset({"symbol", "index_symbol", "source"})


def _dtype(column: str) -> str:
    if column in _TEXT_COLUMNS:
        return "str"
    return "bool" if column == "market_open" else "float64"


def _typed(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """``frame``'s ``columns`` in the contract's dtypes (text, UTC ``ts``, ``market_open`` as
    bool, every other column float64), sorted by the key: the first column, then ``ts``."""
    typed = pd.DataFrame(
        {
            column: _ts(frame[column]) if column == "ts" else frame[column].astype(_dtype(column))
            for column in columns
        }
    )
    return typed.sort_values([columns[0], "ts"], kind="stable").reset_index(drop=True)


def typed_open_interest(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame``'s open-interest columns with the contract's dtypes, sorted by symbol and ts."""
    return _typed(frame, OPEN_INTEREST_COLUMNS)


def typed_funding_rates(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame``'s funding columns with the contract's dtypes, sorted by symbol and ts."""
    return _typed(frame, FUNDING_COLUMNS)


def typed_equity_index(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame``'s equity-index columns with the contract's dtypes, sorted by index and ts."""
    return _typed(frame, EQUITY_INDEX_COLUMNS)


def _empty(columns: Sequence[str]) -> pd.DataFrame:
    return pd.DataFrame({column: [] for column in columns})


def empty_open_interest() -> pd.DataFrame:
    """No rows, the open-interest columns and dtypes."""
    return typed_open_interest(_empty(OPEN_INTEREST_COLUMNS))


def empty_funding_rates() -> pd.DataFrame:
    """No rows, the funding columns and dtypes."""
    return typed_funding_rates(_empty(FUNDING_COLUMNS))


def empty_equity_index() -> pd.DataFrame:
    """No rows, the equity-index columns and dtypes."""
    return typed_equity_index(_empty(EQUITY_INDEX_COLUMNS))


def hours(start: datetime, end: datetime) -> pd.DatetimeIndex:
    """The whole hours in [start, end), UTC."""
    index = pd.date_range(start, end, freq="h", inclusive="left", unit="us")
    return index if index.tz is not None else index.tz_localize("UTC")


def shut_hours(
    bars: pd.DataFrame, index_symbols: Sequence[str], start: datetime, end: datetime, source: str
) -> pd.DataFrame:
    """``bars`` (open hours only) completed with a ``market_open = false`` row, null prices, for
    every hour of [start, end) the market was shut: those the bars lack where CME is shut
    (``cme_equity_open``, holidays included). A bar always wins: an hour with one stays open
    whatever the calendar says. Hours CME trades that have no bar stay missing (the
    completeness check reports them)."""
    if bars.empty:  # possibly without columns: no source had a bar
        bars = empty_equity_index()
    frames = [bars[bars["index_symbol"].isin(list(index_symbols))]]
    grid = hours(start, end)
    shut = grid[~cme_equity_open(grid)]
    for index_symbol in index_symbols:
        have = set(bars.loc[bars["index_symbol"] == index_symbol, "ts"])
        closed = [ts for ts in shut if ts not in have]
        if closed:
            frames.append(
                pd.DataFrame(
                    {
                        "index_symbol": index_symbol,
                        "ts": closed,
                        **{c: np.nan for c in EQUITY_PRICE_COLUMNS},
                        "market_open": False,
                        "source": source,
                    }
                )
            )
    frames = [frame for frame in frames if not frame.empty]
    return typed_equity_index(pd.concat(frames)) if frames else empty_equity_index()


def validate_context(frame: pd.DataFrame, table: str, start: datetime, end: datetime) -> None:
    """Raise naming the table, key, hour and rule of the first row that breaks a rule."""
    key = "index_symbol" if table == "equity_index" else "symbol"
    ts = frame["ts"]
    rules: list[tuple[str, object]] = [
        (
            f"timestamp is outside the partition [{start:%Y-%m-%d %H:%M}, {end:%Y-%m-%d %H:%M})",
            (ts < start) | (ts >= end),
        ),
        (f"duplicate ({key}, ts)", frame.duplicated([key, "ts"], keep=False)),
    ]
    if table == "open_interest":
        value = frame["open_interest"]
        rules += [
            ("timestamp is not on the hour", ts != ts.dt.floor("h")),
            ("NaN, infinite or negative open interest", ~np.isfinite(value) | (value < 0)),
            ("negative open interest in USD", (frame["open_interest_usd"] < 0).fillna(False)),
        ]
    elif table == "funding_rates":
        rate = frame["funding_rate"]
        rules.append(("NaN or infinite funding rate", ~np.isfinite(rate)))
    else:
        prices = frame[list(EQUITY_PRICE_COLUMNS[:4])].to_numpy(dtype="float64")
        open_ = frame["market_open"].to_numpy(dtype=bool)
        rules += [
            ("timestamp is not on the hour", ts != ts.dt.floor("h")),
            (
                "open hour without a positive finite price",
                open_ & ~(np.isfinite(prices) & (prices > 0)).all(axis=1),
            ),
            ("shut hour with a price", ~open_ & ~np.isnan(prices).all(axis=1)),
            ("high < max(open, close)", frame["high"] < frame[["open", "close"]].max(axis=1)),
            ("low > min(open, close)", frame["low"] > frame[["open", "close"]].min(axis=1)),
        ]
    for rule, broken in rules:
        mask = np.asarray(broken, dtype=bool)
        if mask.any():
            first = frame[mask].iloc[0]
            raise ContextValidationError(
                f"{table}: {first[key]} {pd.Timestamp(first['ts']):%Y-%m-%d %H:%M}: {rule} "
                f"({int(mask.sum())} row(s) break this rule; nothing was written)"
            )


def lost_rows(stored: pd.DataFrame, fetched: pd.DataFrame, key: str) -> pd.DataFrame:
    """The (key, ts) pairs of ``stored`` that ``fetched`` lacks: what replacing ``stored`` by
    ``fetched`` would delete. For the equity index a stored bar replaced by a shut row counts
    as lost too (the market does not close an hour after the fact)."""

    def keys(frame: pd.DataFrame) -> pd.MultiIndex:
        if "market_open" in frame.columns:
            frame = frame[frame["market_open"].astype(bool)]
        return pd.MultiIndex.from_arrays(
            [frame[key].astype("str"), _ts(frame["ts"])], names=[key, "ts"]
        )

    return keys(stored).difference(keys(fetched)).to_frame(index=False)


def missing_hours(
    frame: pd.DataFrame, keys: Sequence[str], key: str, start: datetime, end: datetime
) -> pd.DataFrame:
    """The (key, ts) pairs of the whole hours in [start, end) with no row in ``frame``; as
    ``symbol``-named columns so ``candles.describe_missing`` prints them."""
    expected = pd.MultiIndex.from_product([list(keys), hours(start, end)], names=["symbol", "ts"])
    present = pd.MultiIndex.from_arrays(
        [frame[key].astype("str"), _ts(frame["ts"])], names=["symbol", "ts"]
    )
    return expected.difference(present).to_frame(index=False).astype({"symbol": "str"})


def funding_gaps(
    frame: pd.DataFrame, symbols: Sequence[str], start: datetime, end: datetime, every_hours: int
) -> pd.DataFrame:
    """(symbol, ts) of the funding times on the ``every_hours`` grid (00:00 UTC based) in
    [start, end) with no rate within the hour after them."""
    grid = hours(start, end)
    grid = grid[grid.hour % every_hours == 0]
    expected = pd.MultiIndex.from_product([list(symbols), grid], names=["symbol", "ts"])
    present = pd.MultiIndex.from_arrays(
        [frame["symbol"].astype("str"), _ts(frame["ts"]).floor("h")], names=["symbol", "ts"]
    )
    return expected.difference(present).to_frame(index=False).astype({"symbol": "str"})
