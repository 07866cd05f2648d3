"""The sample market's context (open interest, funding, an equity index) is deterministic
whatever range is asked, keeps the contract, and looks like the real thing."""

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from cryptify_pipeline.market import sample as sample_market
from cryptify_pipeline.market.context import (
    EQUITY_INDEX_COLUMNS,
    FUNDING_COLUMNS,
    OPEN_INTEREST_COLUMNS,
    cme_equity_open,
    empty_equity_index,
    empty_funding_rates,
    empty_open_interest,
    validate_context,
)
from cryptify_pipeline.market.errors import SourceError
from cryptify_pipeline.market.sample import (
    SampleContext,
    SampleEquityIndex,
    SampleMarket,
    sample_equity_index,
    sample_funding_rates,
    sample_open_interest,
)

SYMBOLS = ["BTC/USDT", "ETH/USDT"]


def clear_caches() -> None:
    for cached in (
        sample_market._year_block, sample_market._year_end_state, sample_market._oi_path,
        sample_market._oi_block, sample_market._funding_block, sample_market._index_path,
        sample_market._index_block,
    ):  # fmt: skip
        cached.cache_clear()


def at(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_empty_frames_have_the_contracts_columns_and_dtypes():
    assert tuple(empty_open_interest().columns) == OPEN_INTEREST_COLUMNS
    assert tuple(empty_funding_rates().columns) == FUNDING_COLUMNS
    assert tuple(empty_equity_index().columns) == EQUITY_INDEX_COLUMNS
    index = empty_equity_index()
    assert str(index["ts"].dtype) == "datetime64[us, UTC]"
    assert index["market_open"].dtype == bool and index["close"].dtype == "float64"


def test_cme_hours():
    # Sunday 2025-03-02 22:00 shut, 23:00 open; Monday 22:00 break; Friday 22:00 shut to Sunday
    def is_open(*args: int) -> bool:
        return bool(cme_equity_open(pd.DatetimeIndex([at(*args)]))[0])

    assert not is_open(2025, 3, 2, 22) and is_open(2025, 3, 2, 23)
    assert is_open(2025, 3, 3, 21) and not is_open(2025, 3, 3, 22) and is_open(2025, 3, 3, 23)
    assert is_open(2025, 3, 7, 21) and not is_open(2025, 3, 7, 22) and not is_open(2025, 3, 7, 23)
    assert not is_open(2025, 3, 8, 12)
    week = pd.date_range(at(2025, 3, 3), at(2025, 3, 10), freq="h", inclusive="left")
    assert cme_equity_open(week).sum() == 5 * 23 + 1  # five sessions of 23 h; DST on Sunday 9th


def test_cme_hours_follow_chicagos_clock_in_january_and_july():
    def is_open(*args: int) -> bool:
        return bool(cme_equity_open(pd.DatetimeIndex([at(*args)]))[0])

    # January (CST, UTC-6): Sunday 23:00 UTC opens, the break and Friday's close at 22:00 UTC
    assert not is_open(2025, 1, 5, 22) and is_open(2025, 1, 5, 23)
    assert is_open(2025, 1, 6, 21) and not is_open(2025, 1, 6, 22) and is_open(2025, 1, 6, 23)
    assert is_open(2025, 1, 10, 21) and not is_open(2025, 1, 10, 22)
    # July (CDT, UTC-5): everything an hour earlier in UTC
    assert not is_open(2025, 7, 6, 21) and is_open(2025, 7, 6, 22)
    assert is_open(2025, 7, 7, 20) and not is_open(2025, 7, 7, 21) and is_open(2025, 7, 7, 22)
    assert is_open(2025, 7, 11, 20) and not is_open(2025, 7, 11, 21)
    for monday in (at(2025, 1, 6), at(2025, 7, 7)):
        week = pd.date_range(monday, monday + timedelta(days=7), freq="h", inclusive="left")
        assert cme_equity_open(week).sum() == 5 * 23
    # the sample market's index keeps the same calendar
    index = sample_equity_index("ES=F", at(2025, 7, 11, 19), at(2025, 7, 13, 23))
    traded = index.loc[index["market_open"], "ts"].dt.hour.tolist()
    assert traded == [19, 20, 22]  # Friday 19:00, 20:00; Sunday 22:00 UTC


def test_same_values_whatever_range_and_order():
    start, end = at(2024, 12, 30), at(2025, 1, 3)
    clear_caches()
    whole_oi = SampleContext().fetch_open_interest(SYMBOLS, start, end)
    whole_funding = SampleContext().fetch_funding_rates(SYMBOLS, start, end)
    whole_index = SampleEquityIndex().fetch(["ES=F"], start, end)
    clear_caches()
    hours = [start + timedelta(hours=h) for h in range(int((end - start) / timedelta(hours=1)))]
    oi, funding, index = [], [], []
    for hour in reversed(hours):
        after = hour + timedelta(hours=1)
        oi.append(SampleContext().fetch_open_interest(SYMBOLS, hour, after))
        funding.append(SampleContext().fetch_funding_rates(SYMBOLS, hour, after))
        index.append(SampleEquityIndex().fetch(["ES=F"], hour, after))

    def pieced(frames: list[pd.DataFrame], key: str) -> pd.DataFrame:
        return pd.concat(frames).sort_values([key, "ts"]).reset_index(drop=True)

    pd.testing.assert_frame_equal(whole_oi, pieced(oi, "symbol"), check_exact=True)
    pd.testing.assert_frame_equal(whole_funding, pieced(funding, "symbol"), check_exact=True)
    pd.testing.assert_frame_equal(whole_index, pieced(index, "index_symbol"), check_exact=True)


def test_a_later_year_first_gives_the_same_history():
    start, end = at(2026, 5, 1), at(2026, 5, 3)
    clear_caches()

    def both() -> tuple[pd.DataFrame, pd.DataFrame]:
        return sample_open_interest("BTC/USDT", start, end), sample_equity_index("ES=F", start, end)

    later_first = both()
    clear_caches()
    sample_equity_index("ES=F", at(2019, 1, 1), at(2019, 1, 2))
    sample_open_interest("BTC/USDT", at(2019, 1, 1), at(2019, 1, 2))
    again = both()
    for first, second in zip(later_first, again, strict=True):
        pd.testing.assert_frame_equal(first, second, check_exact=True)


def test_open_interest_every_hour_follows_the_price():
    start, end = at(2025, 1, 1), at(2025, 7, 1)
    oi = sample_open_interest("BTC/USDT", start, end)
    validate_context(oi, "open_interest", start, end)
    assert len(oi) == int((end - start) / timedelta(hours=1)) and (oi["source"] == "sample").all()
    candles = SampleMarket().fetch(["BTC/USDT"], start, end)
    # in US dollars at the price of the instant: the open of the hour's candle
    np.testing.assert_allclose(oi["open_interest_usd"], oi["open_interest"] * candles["open"])
    assert 3e9 < oi["open_interest_usd"].median() < 2e10  # billions, like BTC's perpetuals
    # correlated: the hourly change of log open interest with the hour's return just before
    d_oi = np.diff(np.log(oi["open_interest"].to_numpy()))
    returns = np.log(candles["close"] / candles["open"]).to_numpy()[:-1]
    assert 0.3 < np.corrcoef(d_oi, returns)[0, 1] < 0.9


def test_funding_every_eight_hours_within_the_cap():
    start, end = at(2025, 2, 1), at(2025, 3, 1)
    funding = sample_funding_rates("ETH/USDT", start, end)
    validate_context(funding, "funding_rates", start, end)
    assert len(funding) == 28 * 3
    assert set(funding["ts"].dt.hour) == {0, 8, 16} and (funding["ts"].dt.minute == 0).all()
    assert funding["funding_rate"].abs().max() <= sample_market.FUNDING_CAP
    assert 0 < funding["funding_rate"].mean() < 5e-4 and funding["funding_rate"].std() > 1e-5
    # more open interest, more funding
    oi = sample_open_interest("ETH/USDT", start, end).set_index("ts")["open_interest"]
    assert np.corrcoef(oi.loc[funding["ts"]], funding["funding_rate"])[0, 1] > 0.3


def test_equity_index_trades_cme_hours_only_and_never_invents_a_price():
    start, end = at(2025, 3, 1), at(2025, 4, 1)
    index = sample_equity_index("ES=F", start, end)
    validate_context(index, "equity_index", start, end)
    assert len(index) == 31 * 24 and (index["source"] == "sample").all()
    np.testing.assert_array_equal(index["market_open"], cme_equity_open(index["ts"]))
    shut = index[~index["market_open"]]
    assert shut[["open", "high", "low", "close", "volume"]].isna().all().all()
    traded = index[index["market_open"]]
    assert 4000 < traded["close"].median() < 8000
    # the price waits while the market is shut: each open continues the previous close
    np.testing.assert_allclose(traded["open"].to_numpy()[1:], traded["close"].to_numpy()[:-1])
    returns = np.log(traded["close"] / traded["open"])
    assert 0.001 < returns.std() < 0.004


def test_equity_index_correlates_with_btc_while_it_trades():
    start, end = at(2025, 1, 1), at(2025, 7, 1)
    index = sample_equity_index("ES=F", start, end)
    btc = SampleMarket().fetch(["BTC/USDT"], start, end)
    traded = index["market_open"].to_numpy()
    index_returns = np.log(index["close"] / index["open"]).to_numpy()[traded]
    btc_returns = np.log(btc["close"] / btc["open"]).to_numpy()[traded]
    assert 0.15 < np.corrcoef(index_returns, btc_returns)[0, 1] < 0.45


def test_other_index_symbols_and_the_epoch():
    nasdaq = sample_equity_index("NQ=F", at(2025, 1, 6), at(2025, 1, 7))
    assert nasdaq["close"].dropna().between(15_000, 30_000).all()
    with pytest.raises(SourceError, match="starts at 2017-01-01"):
        SampleEquityIndex().fetch(["ES=F"], at(2016, 12, 31), at(2017, 1, 2))
    with pytest.raises(SourceError, match="starts at 2017-01-01"):
        SampleContext().fetch_open_interest(["BTC/USDT"], at(2016, 12, 31), at(2017, 1, 2))


def test_equity_index_follows_the_holidays():
    # Thanksgiving week 2026: Thursday's halt 18:00-23:00 UTC, Friday's close after 18:00 UTC
    start, end = at(2026, 11, 26, 12), at(2026, 11, 28)
    index = sample_equity_index("ES=F", start, end).set_index("ts")
    validate_context(index.reset_index(), "equity_index", start, end)
    thursday = index.loc[at(2026, 11, 26, 17) : at(2026, 11, 26, 23), "market_open"]
    assert thursday.tolist() == [True, False, False, False, False, False, True]
    friday = index.loc[at(2026, 11, 27, 17) : at(2026, 11, 27, 19), "market_open"]
    assert friday.tolist() == [True, True, False]  # 12:00 Chicago trades, until 12:15
    # the price waits through the halt: the reopening bar opens at the last close
    assert index.loc[at(2026, 11, 26, 23), "open"] == pytest.approx(
        index.loc[at(2026, 11, 26, 17), "close"], rel=1e-12
    )
    # Good Friday 2026 and Christmas 2026 (a Friday): no bar all day
    for day in (at(2026, 4, 3), at(2026, 12, 25)):
        assert not sample_equity_index("ES=F", day, day + timedelta(days=1))["market_open"].any()
