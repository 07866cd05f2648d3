"""The ``features`` table of many symbols and hours, built one symbol at a time.

``with_context(build_features(...))`` held every symbol's features two and three times over (the
per-symbol frames and their concatenation, then the copy ``with_context`` makes), most of the
2.2 GB peak of a 50-symbol, 4-year backfill. Here each symbol's rows are computed by the same
functions and written straight into columns allocated once for the whole table, so beyond the
table only one symbol's intermediates are alive at a time. The values are the same, bit for bit.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cryptify_pipeline.ml.context_features import (
    CONTEXT_COLUMNS,
    MarketContext,
    index_features,
    symbol_context,
)
from cryptify_pipeline.ml.features import FEATURE_COLUMNS, empty_features, symbol_features

TABLE_COLUMNS = ("close", *FEATURE_COLUMNS, *CONTEXT_COLUMNS)


def feature_table(candles: pd.DataFrame, start, end, context: MarketContext | None) -> pd.DataFrame:
    """What ``with_context(build_features(candles, start, end), context)`` returns: the features
    and market context of the candles with ``ts`` in [start, end), ordered by symbol and ts."""
    ts = candles["ts"]
    inside = ((ts >= start) & (ts < end) & candles["close"].notna()).to_numpy()
    total = int(inside.sum())
    if not total:
        frame = empty_features()
        for column in CONTEXT_COLUMNS:
            frame[column] = pd.Series(dtype="float64")
        return frame
    index = None
    if context is not None:
        index = index_features(
            context.equity_index, context.index_symbol, ts[inside].min(), ts[inside].max()
        )
    # one float block, a row per column: each column of the frame is a contiguous view of it
    block = np.full((len(TABLE_COLUMNS), total), np.nan)
    stamps, symbols, counts = [], [], []
    offset = 0
    for symbol, group in candles.groupby("symbol", sort=True):
        features = symbol_features(group)
        features = features[(features.index >= start) & (features.index < end)]
        rows = len(features)
        if offset + rows > total:
            raise ValueError(f"candles of {symbol} repeat an hour; one candle per symbol and hour")
        part = block[:, offset : offset + rows]
        for position, column in enumerate(("close", *FEATURE_COLUMNS)):
            part[position] = features[column].to_numpy("float64")
        if context is not None and rows:
            values = symbol_context(
                context,
                index,
                str(symbol),
                pd.DatetimeIndex(features.index),
                features["log_return_1h"].to_numpy("float64"),
                features["log_return_24h"].to_numpy("float64"),
            )
            first = 1 + len(FEATURE_COLUMNS)
            for position, column in enumerate(CONTEXT_COLUMNS, start=first):
                part[position] = values[column]
        stamps.append(features.index)
        symbols.append(symbol)
        counts.append(rows)
        offset += rows
        del features, part
    if offset != total:
        raise ValueError(f"built {offset} features rows for {total} candles")
    frame = pd.DataFrame(block.T, columns=list(TABLE_COLUMNS), copy=False)
    frame.insert(0, "symbol", pd.Series(np.repeat(symbols, counts), dtype="str"))
    frame.insert(0, "ts", stamps[0].append(stamps[1:]) if len(stamps) > 1 else stamps[0])
    return frame


def rows_with_nan(frame: pd.DataFrame, columns) -> int:
    """How many rows have a NaN in any of ``columns``, one column at a time (selecting them all
    at once copies them)."""
    missing = np.zeros(len(frame), dtype=bool)
    for column in columns:
        missing |= frame[column].isna().to_numpy()
    return int(missing.sum())
