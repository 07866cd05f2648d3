"""The table built symbol by symbol is the whole-frame build, bit for bit."""

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from cryptify_pipeline.market.sample import SampleMarket
from cryptify_pipeline.ml.context_features import MarketContext, with_context
from cryptify_pipeline.ml.feature_table import feature_table, rows_with_nan
from cryptify_pipeline.ml.features import LOOKBACK_HOURS, build_features
from cryptify_pipeline_tests.ml.test_context_features import START, context_frames

HOUR = timedelta(hours=1)
SYMBOLS = ["BTC/USDT", "ETH/USDT", "SOL/USDT"]


@pytest.fixture(scope="module")
def candles() -> pd.DataFrame:
    frame = SampleMarket().fetch(SYMBOLS, START - LOOKBACK_HOURS * HOUR, START + 72 * HOUR)
    # holes: a missing hour inside the window of one symbol, and one before it of another
    hole = (frame["symbol"] == "ETH/USDT") & (frame["ts"] == START + 30 * HOUR)
    early = (frame["symbol"] == "SOL/USDT") & (frame["ts"] == START - 5 * HOUR)
    # shuffled: nothing may depend on the order the candles arrive in
    return frame[~hole & ~early].sample(frac=1.0, random_state=3).reset_index(drop=True)


@pytest.fixture(scope="module")
def world() -> MarketContext:
    return context_frames(START - LOOKBACK_HOURS * HOUR, START + 72 * HOUR)


@pytest.mark.parametrize("context", ["world", "empty", "none"])
def test_the_table_is_the_whole_build_bit_for_bit(candles, world, context):
    known = {"world": world, "empty": MarketContext(), "none": None}[context]
    start, end = START + 2 * HOUR, START + 60 * HOUR
    expected = with_context(build_features(candles, start, end), known)
    table = feature_table(candles, start, end, known)
    pd.testing.assert_frame_equal(table, expected, check_exact=True)
    assert len(table) == 3 * 58 - 1  # the hole in the window has no row
    if context == "world":  # the context columns are really filled, not NaN by accident
        collected = table["symbol"] != "SOL/USDT"  # the context has BTC and ETH only
        assert table.loc[collected, "funding_rate"].notna().all()
        assert table.loc[~collected, "funding_rate"].isna().all()
        assert table["crypto_minus_index_1h"].notna().any()


def test_a_window_without_candles_gives_the_same_empty_table(candles, world):
    later = START + 200 * HOUR
    expected = with_context(build_features(candles, later, later + HOUR), world)
    table = feature_table(candles, later, later + HOUR, world)
    assert table.empty
    assert list(table.columns) == list(expected.columns)


def test_a_repeated_candle_is_an_error_naming_the_symbol(candles):
    repeated = pd.concat([candles, candles[candles["symbol"] == "BTC/USDT"].head(1)])
    with pytest.raises(ValueError, match="BTC/USDT|duplicate"):
        feature_table(repeated, START, START + 10 * HOUR, None)


def test_rows_with_nan_counts_rows_not_cells():
    frame = pd.DataFrame({"a": [1.0, np.nan, np.nan, 4.0], "b": [np.nan, np.nan, 3.0, 4.0]})
    assert rows_with_nan(frame, ["a", "b"]) == 3
    assert rows_with_nan(frame, ["a"]) == 2
    assert rows_with_nan(frame, []) == 0
