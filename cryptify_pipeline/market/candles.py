"""The candle contract: columns, validation and completeness of hourly OHLCV frames.

A candle's ``ts`` is its open time; the candle is closed (final) once ``ts + 1h`` has passed.
Every source returns frames with ``SOURCE_COLUMNS``; the asset adds ``source`` and ``ingested_at``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import numpy as np
import pandas as pd

from cryptify_pipeline.hours import HOUR, consecutive_runs

PRICE_COLUMNS = ("open", "high", "low", "close")
SOURCE_COLUMNS = (
    "ts", "symbol", "open", "high", "low", "close", "volume", "quote_volume", "trades",
)  # fmt: skip
COLUMNS = (*SOURCE_COLUMNS, "source", "ingested_at")


class CandleValidationError(ValueError):
    """A candle that breaks a rule; nothing of its partition is written."""


def empty_candles() -> pd.DataFrame:
    """A frame with the source columns and their dtypes, and no rows."""
    return typed_candles(pd.DataFrame({column: [] for column in SOURCE_COLUMNS}))


def typed_candles(frame: pd.DataFrame, sort: bool = True) -> pd.DataFrame:
    """``frame``'s source columns with the contract's dtypes, sorted by symbol and time (or in
    ``frame``'s order, with its index)."""
    typed = pd.DataFrame(
        {
            "ts": pd.to_datetime(frame["ts"], utc=True).astype("datetime64[us, UTC]"),
            "symbol": frame["symbol"].astype("str"),
            **{c: frame[c].astype("float64") for c in (*PRICE_COLUMNS, "volume", "quote_volume")},
            "trades": frame["trades"].astype("Int64"),
        }
    )
    if not sort:
        return typed
    return typed.sort_values(["symbol", "ts"], kind="stable").reset_index(drop=True)


def drop_forming(frame: pd.DataFrame, now: datetime) -> pd.DataFrame:
    """Only candles that have closed by ``now``: a forming candle is never final."""
    return frame[frame["ts"] + HOUR <= now].reset_index(drop=True)


def validate_candles(
    frame: pd.DataFrame, symbols: Sequence[str], start: datetime, end: datetime
) -> None:
    """Raise naming symbol, hour and rule for the first candle that breaks a rule."""
    rules = [
        ("symbol is not configured", ~frame["symbol"].isin(list(symbols)).to_numpy()),
        (
            f"timestamp is outside the partition [{start:%Y-%m-%d %H:%M}, {end:%Y-%m-%d %H:%M})",
            ((frame["ts"] < start) | (frame["ts"] >= end)).to_numpy(),
        ),
        *row_rules(frame),
    ]
    if (broken := first_broken(rules)) is not None:
        rule, mask = broken
        rows = frame[mask]
        first = rows.iloc[0]
        raise CandleValidationError(
            f"{first['symbol']} {pd.Timestamp(first['ts']):%Y-%m-%d %H:%M}: {rule} "
            f"({len(rows)} candle(s) break this rule; nothing was written)\n"
            + rows.head(5).to_string(index=False)
        )


def row_rules(frame: pd.DataFrame) -> list[tuple[str, np.ndarray]]:
    """The rules a candle keeps whatever was asked for, each with the rows that break it."""
    numbers = frame[[*PRICE_COLUMNS, "volume"]].to_numpy(dtype="float64")
    rules = [
        ("timestamp is not on the hour", frame["ts"] != frame["ts"].dt.floor("h")),
        ("duplicate (symbol, ts)", frame.duplicated(["symbol", "ts"], keep=False)),
        ("NaN or infinite price or volume", ~np.isfinite(numbers).all(axis=1)),
        ("non-positive price", (numbers[:, :4] <= 0).any(axis=1)),
        ("high < max(open, close)", frame["high"] < frame[["open", "close"]].max(axis=1)),
        ("low > min(open, close)", frame["low"] > frame[["open", "close"]].min(axis=1)),
        ("negative volume", frame["volume"] < 0),
        ("negative or infinite quote volume", _bad_optional(frame["quote_volume"])),
        ("negative trade count", (frame["trades"] < 0).fillna(False)),
    ]
    return [(rule, np.asarray(broken, dtype=bool)) for rule, broken in rules]


def first_broken(rules: list[tuple[str, np.ndarray]]) -> tuple[str, np.ndarray] | None:
    """The first rule that some row breaks, with the rows that break it."""
    return next(((rule, mask) for rule, mask in rules if mask.any()), None)


def _bad_optional(values: pd.Series) -> pd.Series:
    present = values.dropna()
    return pd.Series((present < 0) | ~np.isfinite(present), index=present.index).reindex(
        values.index, fill_value=False
    )


def lost_candles(stored: pd.DataFrame, fetched: pd.DataFrame) -> pd.DataFrame:
    """The (symbol, ts) pairs of ``stored`` that ``fetched`` lacks: what replacing ``stored`` by
    ``fetched`` would delete."""
    before = pd.MultiIndex.from_frame(_keys(stored))
    after = pd.MultiIndex.from_frame(_keys(fetched))
    lost = before.difference(after).to_frame(index=False)
    return _keys(lost).sort_values(["symbol", "ts"], ignore_index=True)


def _keys(frame: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "symbol": frame["symbol"].astype("str"),
            "ts": pd.to_datetime(frame["ts"], utc=True).astype("datetime64[us, UTC]"),
        }
    )


def missing_candles(
    frame: pd.DataFrame, symbols: Sequence[str], start: datetime, end: datetime
) -> pd.DataFrame:
    """The (symbol, ts) pairs in [start, end) that have no candle in ``frame``."""
    hours = pd.date_range(start, end, freq="h", inclusive="left", unit="us")
    if hours.tz is None:
        hours = hours.tz_localize("UTC")
    expected = pd.MultiIndex.from_product([list(symbols), hours], names=["symbol", "ts"])
    present = pd.MultiIndex.from_frame(frame[["symbol", "ts"]])
    missing = expected.difference(present)
    return missing.to_frame(index=False).astype({"symbol": "str"})


def describe_missing(
    missing: pd.DataFrame, limit: int = 100, key: str = "symbol", what: str = "candles"
) -> str:
    """Missing hours as Markdown, one line per symbol (``key`` in the header) with runs of
    hours collapsed."""
    if missing.empty:
        return f"No missing {what}."
    lines = [f"| {key} | missing hours (UTC) |", "|---|---|"]
    for symbol, group in missing.groupby("symbol", sort=True):
        lines.append(f"| {symbol} | {_hour_runs(group['ts'].sort_values().tolist(), limit)} |")
    return "\n".join(lines)


def describe_hours(pairs: pd.DataFrame, limit: int = 20) -> str:
    """(symbol, ts) pairs as one line: ``BTC/USDT 2025-02-03 00:00 to 05:00; ETH/USDT ...``."""
    return "; ".join(
        f"{symbol} {_hour_runs(group['ts'].sort_values().tolist(), limit)}"
        for symbol, group in pairs.groupby("symbol", sort=True)
    )


def _hour_runs(hours: list[pd.Timestamp], limit: int) -> str:
    runs = consecutive_runs(hours)
    shown = [
        f"{first:%Y-%m-%d %H:%M}"
        if first == last
        else f"{first:%Y-%m-%d %H:%M} to {last:%H:%M}"
        if first.date() == last.date()
        else f"{first:%Y-%m-%d %H:%M} to {last:%Y-%m-%d %H:%M}"
        for first, last in runs[:limit]
    ]
    more = f" and {len(runs) - limit} more" if len(runs) > limit else ""
    return ", ".join(shown) + more
