"""The sample market is deterministic whatever range or order, and plausible."""

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from cryptify_pipeline.market import sample as sample_market
from cryptify_pipeline.market.candles import validate_candles
from cryptify_pipeline.market.errors import SourceError
from cryptify_pipeline.market.sample import SampleMarket

SYMBOLS = ["BTC/USDT", "ETH/USDT", "SOL/USDT"]


def clear_caches() -> None:
    sample_market._year_block.cache_clear()
    sample_market._year_end_state.cache_clear()


def test_same_candle_whatever_range_and_order():
    start, end = datetime(2024, 12, 30, tzinfo=UTC), datetime(2025, 1, 3, tzinfo=UTC)
    clear_caches()
    whole = SampleMarket().fetch(SYMBOLS, start, end)  # one range across a year boundary
    clear_caches()
    hours = [start + timedelta(hours=h) for h in range(int((end - start) / timedelta(hours=1)))]
    one_by_one = [SampleMarket().fetch(SYMBOLS, h, h + timedelta(hours=1)) for h in reversed(hours)]
    pieced = pd.concat(one_by_one).sort_values(["symbol", "ts"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(whole, pieced, check_exact=True)


def test_a_later_year_first_gives_the_same_history():
    clear_caches()
    later_first = SampleMarket().fetch(["BTC/USDT"], datetime(2026, 5, 1, tzinfo=UTC),
                                       datetime(2026, 5, 2, tzinfo=UTC))  # fmt: skip
    clear_caches()
    SampleMarket().fetch(["BTC/USDT"], datetime(2019, 1, 1, tzinfo=UTC),
                         datetime(2019, 1, 2, tzinfo=UTC))  # fmt: skip
    again = SampleMarket().fetch(["BTC/USDT"], datetime(2026, 5, 1, tzinfo=UTC),
                                 datetime(2026, 5, 2, tzinfo=UTC))  # fmt: skip
    pd.testing.assert_frame_equal(later_first, again, check_exact=True)


def test_symbols_differ_and_opens_continue_closes():
    frame = SampleMarket().fetch(SYMBOLS, datetime(2025, 3, 1, tzinfo=UTC),
                                 datetime(2025, 3, 8, tzinfo=UTC))  # fmt: skip
    closes = frame.pivot(index="ts", columns="symbol", values="close")
    assert closes.corr().min().min() < 0.9
    for _, group in frame.groupby("symbol"):
        np.testing.assert_array_equal(group["open"].to_numpy()[1:], group["close"].to_numpy()[:-1])


def test_plausible_ohlc_and_volatility_over_a_year():
    start, end = datetime(2025, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC)
    frame = SampleMarket().fetch(SYMBOLS, start, end)
    assert len(frame) == 3 * 8760
    validate_candles(frame, SYMBOLS, start, end)  # every OHLC rule holds
    log_returns = np.log(frame["close"] / frame["open"])
    for symbol, returns in log_returns.groupby(frame["symbol"]):
        assert 0.005 <= returns.std() <= 0.02, symbol
        assert abs(returns.mean()) < 0.001, symbol  # a random walk: nothing to predict
        assert returns.kurt() > 1, symbol  # fat tails
    # volatility clusters: squared returns are autocorrelated
    squared = log_returns[frame["symbol"] == "BTC/USDT"] ** 2
    assert squared.autocorr(lag=1) > 0.05
    assert (frame["volume"] > 0).all() and (frame["quote_volume"] > 0).all()


def test_before_the_epoch_is_refused():
    with pytest.raises(SourceError, match="starts at 2017-01-01"):
        SampleMarket().fetch(["BTC/USDT"], datetime(2016, 12, 31, tzinfo=UTC),
                             datetime(2017, 1, 2, tzinfo=UTC))  # fmt: skip


def test_known_symbols_trade_at_their_usual_levels_and_volatilities():
    start, end = datetime(2024, 7, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)
    frame = SampleMarket().fetch(SYMBOLS, start, end)
    closes = frame.groupby("symbol")["close"]
    usual = {"BTC/USDT": (10_000, 500_000), "ETH/USDT": (500, 30_000), "SOL/USDT": (20, 2_000)}
    for symbol, (low, high) in usual.items():
        assert low < closes.min()[symbol] and closes.max()[symbol] < high, symbol
    # each opens at its profile's level at the anchor
    anchor = frame[frame["ts"] == pd.Timestamp(sample_market.ANCHOR)].set_index("symbol")
    for symbol in SYMBOLS:
        assert anchor.loc[symbol, "open"] == pytest.approx(sample_market.profile(symbol).level)
    log_returns = np.log(frame["close"] / frame["open"]).groupby(frame["symbol"]).std()
    assert log_returns["BTC/USDT"] < log_returns["ETH/USDT"] < log_returns["SOL/USDT"]
    for symbol in SYMBOLS:
        assert log_returns[symbol] == pytest.approx(sample_market.profile(symbol).hourly_sigma,
                                                    rel=0.15)  # fmt: skip


def test_cross_pairs_and_unknown_symbols():
    assert sample_market.profile("ETH/BTC").level == pytest.approx(3_300 / 90_000)
    unknown = sample_market.profile("ZZZ/USDT")
    assert 1 <= unknown.level <= 10_000 and unknown.hourly_sigma == 0.01
    assert sample_market.profile("ZZZ/USDT") == unknown  # from the name alone
