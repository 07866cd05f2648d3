"""Every validation rule names symbol, hour and rule."""

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from cryptify_pipeline.market.candles import (
    CandleValidationError,
    describe_hours,
    describe_missing,
    lost_candles,
    missing_candles,
    validate_candles,
)
from cryptify_pipeline.market.sample import SampleMarket

START = datetime(2025, 6, 1, tzinfo=UTC)
END = START + timedelta(hours=6)
SYMBOLS = ["BTC/USDT", "ETH/USDT"]


def good() -> pd.DataFrame:
    return SampleMarket().fetch(SYMBOLS, START, END)


def break_row(column: str, value, row: int = 3) -> pd.DataFrame:
    frame = good()
    frame.loc[row, column] = value
    return frame


@pytest.mark.parametrize(
    ("frame", "rule"),
    [
        (break_row("open", -1.0), "non-positive price"),
        (break_row("close", 0.0), "non-positive price"),
        (break_row("high", 1e-9), "high < max(open, close)"),
        (break_row("low", 1e12), "low > min(open, close)"),
        (break_row("volume", -5.0), "negative volume"),
        (break_row("close", np.nan), "NaN or infinite"),
        (break_row("volume", np.inf), "NaN or infinite"),
        (break_row("quote_volume", -1.0), "negative or infinite quote volume"),
        (break_row("trades", -1), "negative trade count"),
        (break_row("ts", pd.Timestamp("2025-06-01 03:30", tz="UTC")), "not on the hour"),
        (break_row("ts", pd.Timestamp("2025-06-01 09:00", tz="UTC")), "outside the partition"),
        (break_row("ts", pd.Timestamp("2025-06-01 02:00", tz="UTC")), "duplicate (symbol, ts)"),
        (break_row("symbol", "DOGE/USDT"), "symbol is not configured"),
    ],
)
def test_rule_is_named_with_symbol_and_hour(frame, rule):
    with pytest.raises(CandleValidationError) as raised:
        validate_candles(frame, SYMBOLS, START, END)
    message = str(raised.value)
    assert rule in message
    assert message.split(":")[0].split(" ")[0] in {*SYMBOLS, "DOGE/USDT"}
    assert "2025-06-01 0" in message.splitlines()[0]


def test_good_candles_pass_and_missing_quote_volume_is_allowed():
    frame = good()
    frame["quote_volume"] = np.nan
    validate_candles(frame, SYMBOLS, START, END)


def test_missing_candles_are_listed_not_rejected():
    frame = good().drop(index=[0, 1, 7]).reset_index(drop=True)
    validate_candles(frame, SYMBOLS, START, END)
    missing = missing_candles(frame, SYMBOLS, START, END)
    assert list(missing.itertuples(index=False, name=None)) == [
        ("BTC/USDT", pd.Timestamp("2025-06-01 00:00", tz="UTC")),
        ("BTC/USDT", pd.Timestamp("2025-06-01 01:00", tz="UTC")),
        ("ETH/USDT", pd.Timestamp("2025-06-01 01:00", tz="UTC")),
    ]
    text = describe_missing(missing)
    assert "| BTC/USDT | 2025-06-01 00:00 to 01:00 |" in text
    assert "| ETH/USDT | 2025-06-01 01:00 |" in text


def test_lost_candles_are_the_stored_ones_a_replacement_lacks():
    stored = good()
    fetched = stored.drop(index=[0, 1, 2, 9]).reset_index(drop=True)
    lost = lost_candles(stored[["symbol", "ts"]], fetched)
    assert describe_hours(lost) == "BTC/USDT 2025-06-01 00:00 to 02:00; ETH/USDT 2025-06-01 03:00"
    assert lost_candles(stored, stored).empty
    assert lost_candles(stored.iloc[:0], fetched).empty  # nothing stored: nothing to lose
    assert len(lost_candles(stored, fetched.iloc[:0])) == len(stored)
