"""Context features: hand-computed values, the as-of rule at its exact edge, exact windows,
and missing context as NaN."""

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from cryptify_pipeline.market.context import cme_equity_open
from cryptify_pipeline.market.sample import SampleMarket
from cryptify_pipeline.ml.context_features import (
    CONTEXT_COLUMNS,
    FUNDING_HOURS,
    INDEX_CARRY_HOURS,
    MarketContext,
    with_context,
)
from cryptify_pipeline.ml.features import LOOKBACK_HOURS, build_features

HOUR = timedelta(hours=1)
START = datetime(2025, 3, 3, tzinfo=UTC)  # a Monday
SYMBOLS = ("BTC/USDT", "ETH/USDT")
INDEX = "ES=F"


def context_frames(first: datetime, last: datetime, seed: int = 0) -> MarketContext:
    """Open interest every hour, funding every 8 h at a few minutes past, an index with
    trading hours: deterministic, in the contract's shape."""
    rng = np.random.default_rng(seed)
    hours = pd.date_range(first, last, freq="h", unit="us")
    oi = pd.concat(
        pd.DataFrame(
            {
                "symbol": symbol,
                "ts": hours,
                "open_interest": 1e4 * np.exp(rng.normal(0, 0.01, len(hours)).cumsum()),
                "open_interest_usd": np.nan,
                "source": "test",
            }
        )
        for symbol in SYMBOLS
    )
    settle = hours[hours.hour % 8 == 0] + timedelta(seconds=7)  # not forced to the hour
    funding = pd.concat(
        pd.DataFrame(
            {
                "symbol": symbol,
                "ts": settle,
                "funding_rate": rng.normal(1e-4, 5e-5, len(settle)),
                "source": "test",
            }
        )
        for symbol in SYMBOLS
    )
    trades = cme_equity_open(hours)
    close = 5_000 * np.exp(rng.normal(0, 0.002, len(hours)).cumsum())
    index = pd.DataFrame(
        {
            "index_symbol": INDEX,
            "ts": hours,
            **{c: np.where(trades, close, np.nan) for c in ("open", "high", "low", "close")},
            "volume": np.where(trades, 1e5, np.nan),
            "market_open": trades,
            "source": "test",
        }
    )
    return MarketContext(oi.reset_index(drop=True), funding.reset_index(drop=True), index, INDEX)


def candles(hours: int) -> pd.DataFrame:
    return SampleMarket().fetch(list(SYMBOLS), START - LOOKBACK_HOURS * HOUR, START + hours * HOUR)


def features(hours: int, context: MarketContext | None) -> pd.DataFrame:
    return with_context(build_features(candles(hours), START, START + hours * HOUR), context)


def same(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    x, y = a.to_numpy("float64"), b.to_numpy("float64")
    return bool(((x == y) | (np.isnan(x) & np.isnan(y))).all())


def within(context: MarketContext, first: datetime, end: datetime) -> MarketContext:
    """The context partitions [first, end): rows with first <= ts < end."""

    def cut(frame: pd.DataFrame) -> pd.DataFrame:
        return frame[(frame["ts"] >= first) & (frame["ts"] < end)]

    return MarketContext(
        cut(context.open_interest), cut(context.funding_rates), cut(context.equity_index), INDEX
    )


@pytest.fixture(scope="module")
def world():
    return context_frames(START - LOOKBACK_HOURS * HOUR, START + 24 * 9 * HOUR)


def test_hand_computed_values_at_one_hour(world):
    t = pd.Timestamp(START + 100 * HOUR)  # Friday 04:00, the index trades
    row = features(101, world).set_index(["symbol", "ts"]).loc[("BTC/USDT", t)]
    oi = world.open_interest[world.open_interest["symbol"] == "BTC/USDT"].set_index("ts")
    oi = oi["open_interest"]
    assert row["oi_log_change_1h"] == pytest.approx(np.log(oi[t] / oi[t - HOUR]), abs=1e-15)
    assert row["oi_log_change_24h"] == pytest.approx(np.log(oi[t] / oi[t - 24 * HOUR]), rel=1e-12)
    week = oi[(oi.index > t - 168 * HOUR) & (oi.index <= t)]
    assert len(week) == 168
    assert row["oi_vs_7d_mean"] == pytest.approx(np.log(oi[t] / week.mean()), rel=1e-9)

    funding = world.funding_rates[world.funding_rates["symbol"] == "BTC/USDT"].set_index("ts")
    settled = funding[funding.index < t + HOUR]["funding_rate"]  # 00:00:07 is the last
    assert row["funding_rate"] == settled.iloc[-1]
    assert row["funding_rate_mean_3"] == pytest.approx(settled.iloc[-3:].mean(), rel=1e-12)
    assert row["hours_since_funding"] == pytest.approx(5 - 7 / 3600)  # 00:00:07 to 05:00

    bars = world.equity_index.set_index("ts")["close"]
    assert row["index_market_open"] == 1.0
    assert row["index_log_return_1h"] == pytest.approx(np.log(bars[t] / bars[t - HOUR]))
    assert row["index_log_return_24h"] == pytest.approx(np.log(bars[t] / bars[t - 24 * HOUR]))
    assert row["crypto_minus_index_1h"] == pytest.approx(
        row["log_return_1h"] - row["index_log_return_1h"], abs=1e-15
    )


def test_index_shut_hours_carry_the_close_and_the_reopening_carries_the_closure(world):
    frame = features(24 * 7, world)
    btc = frame[frame["symbol"] == "BTC/USDT"].set_index("ts")
    friday_close = pd.Timestamp(START + (4 * 24 + 21) * HOUR)  # the last bar of the week
    weekend = btc.loc[friday_close + HOUR : friday_close + 48 * HOUR]
    assert (weekend["index_market_open"] == 0.0).all()
    assert (weekend["index_log_return_1h"] == 0.0).all()
    assert (weekend["crypto_minus_index_1h"] == weekend["log_return_1h"]).all()
    # Sunday 2025-03-09 17:00 Chicago: daylight saving began that morning, so 22:00 UTC
    reopen = friday_close + 49 * HOUR
    assert not cme_equity_open(pd.DatetimeIndex([reopen - HOUR]))[0]
    bars = world.equity_index.set_index("ts")["close"]
    assert btc.loc[reopen, "index_market_open"] == 1.0
    assert btc.loc[reopen, "index_log_return_1h"] == pytest.approx(
        np.log(bars[reopen] / bars[friday_close])
    )


def test_a_missing_index_hour_is_nan_and_stops_the_carry(world):
    gap = pd.Timestamp(START + (4 * 24 + 22) * HOUR)  # Friday 22:00, the first shut hour
    index = world.equity_index[world.equity_index["ts"] != gap]
    frame = features(24 * 7, MarketContext(world.open_interest, world.funding_rates, index, INDEX))
    btc = frame[frame["symbol"] == "BTC/USDT"].set_index("ts")
    assert np.isnan(btc.loc[gap, "index_market_open"])
    # shut hours after a missing one have no known close until the market trades again
    after = btc.loc[gap : gap + 24 * HOUR]
    assert after["index_log_return_1h"].isna().all()
    assert (after.loc[gap + HOUR :, "index_market_open"] == 0.0).all()


def test_stale_context_is_nan_not_carried_forever(world):
    cut = pd.Timestamp(START + 48 * HOUR)
    old = MarketContext(
        world.open_interest[world.open_interest["ts"] < cut],
        world.funding_rates[world.funding_rates["ts"] < cut],
        world.equity_index,
        INDEX,
    )
    btc = features(120, old).set_index(["symbol", "ts"]).loc["BTC/USDT"]
    assert btc.loc[: cut - HOUR, "funding_rate"].notna().all()
    assert btc.loc[cut - HOUR + FUNDING_HOURS * HOUR :, "funding_rate"].isna().all()
    assert btc.loc[cut:, "oi_log_change_1h"].isna().all()
    assert INDEX_CARRY_HOURS < LOOKBACK_HOURS


def test_context_known_after_the_close_never_reaches_a_row(world):
    # row t describes the candle closing at t + 1 h: change every context value from t + 1 h
    # on (the next partition) and row t, and every row before, stay bit-identical
    t = START + 79 * HOUR  # 07:00: a rate settles at 08:00:07, in the next partition

    def changed(frame: pd.DataFrame, column: str) -> pd.DataFrame:
        frame = frame.copy()
        later = frame["ts"] >= t + HOUR
        frame.loc[later, column] = frame.loc[later, column] * 1.5 + 1e-3
        return frame

    other = MarketContext(
        changed(world.open_interest, "open_interest"),
        changed(world.funding_rates, "funding_rate"),
        changed(world.equity_index, "close"),
        INDEX,
    )
    a, b = features(120, world), features(120, other)
    columns = list(CONTEXT_COLUMNS)
    known = a["ts"] <= t
    assert same(a[known][columns], b[known][columns])
    # the next hour sees the changed open interest, index bar and funding
    next_hour = a["ts"] == t + HOUR
    for column in ("oi_log_change_1h", "funding_rate", "index_log_return_1h"):
        assert (a[next_hour][column].to_numpy() != b[next_hour][column].to_numpy()).all()
    after = a["ts"] > t
    assert not same(a[after][columns], b[after][columns])


def test_any_hour_is_bit_identical_however_its_history_was_computed(world):
    batch = features(24 * 6, world)
    frame = candles(24 * 6)
    for offset in range(0, 24 * 6, 7):
        t = START + offset * HOUR
        first = t - (LOOKBACK_HOURS - 1) * HOUR  # the partitions the features of t read
        own = frame[(frame["ts"] >= first) & (frame["ts"] <= t)]
        alone = with_context(build_features(own, t, t + HOUR), within(world, first, t + HOUR))
        expected = batch[batch["ts"] == t].reset_index(drop=True)
        assert same(alone[list(CONTEXT_COLUMNS)], expected[list(CONTEXT_COLUMNS)]), t
    # a full week of context: nothing is missing
    assert not batch[list(CONTEXT_COLUMNS)].isna().any().any()


@pytest.mark.parametrize(
    "context", [None, MarketContext(), MarketContext(index_symbol=INDEX)], ids=str
)
def test_missing_context_is_nan_and_the_price_features_are_untouched(context):
    priced = build_features(candles(24), START, START + 24 * HOUR)
    frame = with_context(priced, context)
    assert list(frame.columns) == [*priced.columns, *CONTEXT_COLUMNS]
    assert frame[list(CONTEXT_COLUMNS)].isna().all().all()
    assert same(frame[priced.columns[2:]], priced[priced.columns[2:]])


def test_an_index_symbol_that_is_not_collected_is_nan(world):
    other = MarketContext(world.open_interest, world.funding_rates, world.equity_index, "NQ=F")
    frame = features(24, other)
    assert frame["index_log_return_1h"].isna().all()
    assert frame["oi_log_change_1h"].notna().all()
