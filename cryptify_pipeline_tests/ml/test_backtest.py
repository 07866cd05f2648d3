"""The backtest's arithmetic against hand-computed cases: the rules, the costs, overlapping
horizons, no look-ahead, and the statistics and their tests."""

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from cryptify_pipeline.ml.backtest import (
    Costs,
    backtest_day,
    backtest_hours,
    max_drawdown,
    sharpe,
    sharpe_tests,
    signals,
    sortino,
    summarise,
)

H = timedelta(hours=1)
START = datetime(2025, 1, 2, tzinfo=UTC)
COSTS = Costs(fee_bps=10, slippage_bps=5)  # 15 bp a side, 30 bp a round trip


def forecasts(rows, symbol="BTC/USDT", model="ridge", horizon=1) -> pd.DataFrame:
    """(made at, forecast log return[, close, lower, upper]) -> prediction rows."""
    frame = []
    for row in rows:
        ts, value, *bounds = row
        close, lower, upper = bounds or (100.0, math.nan, math.nan)
        frame.append({
            "ts": pd.Timestamp(ts), "symbol": symbol, "model": model, "horizon_h": horizon,
            "pred_log_return": value, "close": close, "lower": lower, "upper": upper,
        })  # fmt: skip
    return pd.DataFrame(frame)


def candles(closes: dict[datetime, float], symbol="BTC/USDT") -> pd.DataFrame:
    return pd.DataFrame(
        {"ts": pd.to_datetime(list(closes)), "symbol": symbol, "close": list(closes.values())}
    )


def test_the_rules_take_sides_from_the_forecasts():
    made = forecasts([
        (START, 0.002, 100.0, 99.0, 101.0),  # up, inside the costs, interval spans no change
        (START, 0.004, 100.0, 100.5, 102.0),  # up beyond the costs, interval above the close
        (START, -0.004, 100.0, 98.0, 99.5),  # down beyond the costs, interval below
        (START, -0.001, 100.0, math.nan, math.nan),  # down, no interval
        (START, 0.0, 100.0, 99.0, 101.0),  # no change
    ])  # fmt: skip
    assert signals(made, "sign", COSTS, False).tolist() == [1, 1, -1, -1, 0]
    assert signals(made, "edge", COSTS, False).tolist() == [0, 1, -1, 0, 0]
    assert signals(made, "interval", COSTS, False).tolist() == [0, 1, -1, 0, 0]
    assert signals(made, "sign", COSTS, True).tolist() == [1, 1, 0, 0, 0]
    with pytest.raises(ValueError, match="unknown rule 'momentum': one of sign, edge, interval"):
        signals(made, "momentum", COSTS, False)


def test_costs_are_charged_on_every_change_of_position():
    made = forecasts([(START - H, 0.01), (START, 0.01), (START + H, -0.01), (START + 2 * H, 0.0)])
    prices = candles({START - H: 100.0, START: 101.0, START + H: 102.01, START + 2 * H: 100.99,
                      START + 3 * H: 100.0})  # fmt: skip
    hours = backtest_hours(made, prices, START, START + 4 * H, ["sign"], COSTS, False)
    assert hours["position"].tolist() == [1, 1, -1, 0]
    assert hours["turnover"].tolist() == [1, 0, 2, 1]  # in, hold, reverse, out
    assert hours["cost"].tolist() == pytest.approx([0.0015, 0, 0.003, 0.0015], abs=1e-15)
    moves = [101 / 100 - 1, 102.01 / 101 - 1, 100.99 / 102.01 - 1, 100 / 100.99 - 1]
    assert hours["buy_and_hold_return"].tolist() == pytest.approx(moves, rel=1e-12)
    assert hours["strategy_return"].tolist() == pytest.approx(
        [moves[0] - 0.0015, moves[1], -moves[2] - 0.003, -0.0015], rel=1e-12
    )
    assert hours["flat_return"].tolist() == [0, 0, 0, 0]
    # long-only: the short is cash, so the reversal is only a sale
    long_only = backtest_hours(made, prices, START, START + 4 * H, ["sign"], COSTS, True)
    assert long_only["position"].tolist() == [1, 1, 0, 0]
    assert long_only["turnover"].tolist() == [1, 0, 1, 0]


def test_overlapping_forecasts_each_hold_a_share_for_their_horizon():
    horizon = 3
    made = forecasts(
        [(START + k * H, v) for k, v in enumerate([0.01, 0.01, -0.01, 0.01])], horizon=horizon
    )
    prices = candles({START + k * H: 100.0 for k in range(-1, 9)})
    hours = backtest_hours(made, prices, START, START + 8 * H, ["sign"], COSTS, False)
    # hour t holds the forecasts of t-3 .. t-1, a third each
    assert hours["position"].tolist() == pytest.approx([0, 1 / 3, 2 / 3, 1 / 3, 1 / 3, 0,
                                                        1 / 3, 0])  # fmt: skip
    # the same as the mean of 3 books, each trading every third forecast for 3 hours
    books = np.zeros((horizon, 8))
    for k, value in enumerate([1, 1, -1, 1]):
        books[k % horizon, k + 1 : k + 1 + horizon] = value
    assert hours["position"].to_numpy() == pytest.approx(books.mean(axis=0))
    # and the hours in common do not depend on where the backtest starts
    later = backtest_hours(made, prices, START + 3 * H, START + 8 * H, ["sign"], COSTS, False)
    assert later["position"].tolist() == hours["position"].tolist()[3:]
    assert later["turnover"].tolist() == hours["turnover"].tolist()[3:]


def test_an_hours_position_does_not_see_anything_after_it():
    rng = np.random.default_rng(1)
    day = START
    hours = pd.date_range(day - 2 * timedelta(days=1), day + timedelta(days=1), freq="h")
    prices = candles(dict(zip(hours, 100 * np.exp(np.cumsum(rng.normal(0, 0.01, len(hours)))),
                              strict=True)))  # fmt: skip
    made = pd.concat([
        forecasts([(ts, rng.normal(0, 0.01), 100.0, 99.0 + rng.normal(), 101.0 + rng.normal())
                   for ts in hours], model=model, horizon=horizon)
        for model in ("ridge", "mlp") for horizon in (6, 12, 24)
    ], ignore_index=True)  # fmt: skip
    honest = backtest_day(made, prices, day, ["sign", "edge", "interval"], COSTS, False)
    for cut in (day, day + 7 * H, day + 23 * H):
        # every candle from the cut's on, and every forecast made at its close or later, differ
        later_prices = prices.assign(
            close=np.where(prices["ts"] >= cut, prices["close"] * 1.5, prices["close"])
        )
        later_made = made.assign(
            pred_log_return=np.where(made["ts"] >= cut, -made["pred_log_return"],
                                     made["pred_log_return"]),
            lower=np.where(made["ts"] >= cut, 150.0, made["lower"]),
        )  # fmt: skip
        peeked = backtest_day(later_made, later_prices, day, ["sign", "edge", "interval"],
                              COSTS, False)  # fmt: skip
        hour = (cut - day) // H
        for before, after in zip(honest["position"], peeked["position"], strict=True):
            assert after[: hour + 1] == before[: hour + 1]
        changed = [after != before for before, after in
                   zip(honest["position"], peeked["position"], strict=True)]  # fmt: skip
        if hour < 23:
            assert any(changed)  # the perturbation does reach the later hours


def test_zero_forecasts_never_trade_and_cost_nothing():
    made = forecasts([(START + k * H, 0.0, 100.0, 99.0, 101.0) for k in range(-24, 24)],
                     model="zero_return", horizon=6)  # fmt: skip
    prices = candles({START + k * H: 100 + k for k in range(-1, 24)})
    [row] = backtest_day(made, prices, START, ["sign"], COSTS, False).to_dict("records")
    assert row["strategy_return"] == [0.0] * 24
    assert row["costs"] == 0.0 and row["strategy_return_day"] == 0.0
    assert row["buy_and_hold_return_day"] == pytest.approx(123 / 99 - 1)
    assert (row["fee_bps"], row["slippage_bps"], row["sides"]) == (10, 5, "long_short")


def test_trading_on_flat_prices_earns_exactly_minus_its_costs():
    values = [0.01, -0.01, 0.0, 0.02] * 12
    made = forecasts([(START + k * H, v) for k, v in zip(range(-24, 24), values, strict=True)],
                     horizon=6)  # fmt: skip
    prices = candles({START + k * H: 100.0 for k in range(-1, 24)})
    hours = backtest_hours(made, prices, START, START + 24 * H, ["sign"], COSTS, False)
    assert (hours["turnover"] > 0).any()
    assert hours["strategy_return"].tolist() == (-hours["cost"]).tolist()
    [row] = backtest_day(made, prices, START, ["sign"], COSTS, False).to_dict("records")
    assert row["gross_return"] == 0.0
    assert row["strategy_return_day"] == pytest.approx(np.prod(1 - hours["cost"]) - 1, rel=1e-12)


def test_a_missing_candle_is_a_missing_return_not_a_zero():
    made = forecasts([(START - H, 0.01), (START, 0.01)])
    prices = candles({START - H: 100.0, START + H: 101.0})  # the candle of START is missing
    hours = backtest_hours(made, prices, START, START + 2 * H, ["sign"], COSTS, False)
    assert hours["strategy_return"].isna().tolist() == [True, True]


def test_the_statistics_by_hand():
    returns = np.array([0.01, -0.02, 0.03, 0.0])
    mean, spread = returns.mean(), returns.std(ddof=1)
    assert sharpe(returns) == pytest.approx(mean / spread * math.sqrt(8760))
    assert sortino(returns) == pytest.approx(mean / math.sqrt(0.02**2 / 4) * math.sqrt(8760))
    # equity 1, 1.01, 0.9898, 1.019494, 1.019494: the fall from 1.01 to 0.9898
    assert max_drawdown(returns) == pytest.approx(0.9898 / 1.01 - 1)
    assert math.isnan(sharpe(np.zeros(10)))
    assert math.isnan(sortino(np.array([0.01, 0.02])))
    assert max_drawdown(np.array([0.01, 0.02])) == 0.0


def test_the_sharpe_tests_need_enough_windows_and_find_a_real_edge():
    rng = np.random.default_rng(3)
    hold = rng.normal(0, 0.01, 24 * 60)
    short = sharpe_tests(hold[:179], hold[:179], 6)
    assert math.isnan(short.p_vs_zero) and math.isnan(short.p_vs_hold)
    assert short.note == (
        "too few hours to test: 179 hour(s), 29.8 independent 6-hour windows; the test needs "
        "30 (180 hours)"
    )
    never = sharpe_tests(np.zeros(24 * 60), hold, 6)
    assert never.note == "not tested: the strategy's return never varies"
    # knowing the sign of every hour is an edge no bootstrap mistakes for luck
    perfect = sharpe_tests(np.abs(hold), hold, 6)
    assert perfect.p_vs_zero < 0.01 and perfect.p_vs_hold < 0.01 and perfect.note is None
    # noise is not an edge, and the same data gets the same p-values
    noise = rng.normal(0, 0.01, 24 * 60)
    first, again = sharpe_tests(noise, hold, 6), sharpe_tests(noise, hold, 6)
    assert first == again
    assert first.p_vs_zero > 0.05


def test_the_summary_pools_days_over_the_leaderboards_windows():
    rng = np.random.default_rng(5)
    days = pd.date_range(START, periods=40, freq="D")
    hours = pd.date_range(START - 2 * timedelta(days=1), days[-1] + timedelta(days=1), freq="h")
    prices = candles(dict(zip(hours, 100 * np.exp(np.cumsum(rng.normal(0, 0.01, len(hours)))),
                              strict=True)))  # fmt: skip
    returns = np.log(prices["close"]).diff().shift(-1).to_numpy()
    made = pd.concat([
        forecasts([(ts, 0.0) for ts in hours], model="zero_return", horizon=1),
        # an oracle: the next hour's move
        forecasts([(ts, r) for ts, r in zip(hours, np.nan_to_num(returns), strict=True)],
                  model="oracle", horizon=1),
    ], ignore_index=True)  # fmt: skip
    backtest = pd.concat(
        [backtest_day(made, prices, day.to_pydatetime(), ["sign"], Costs(0, 0), False)
         for day in days], ignore_index=True,
    )  # fmt: skip
    summary = summarise(backtest, last_days=30).set_index(["model", "window"])
    assert summary.loc[("oracle", "30d"), "hours"] == 30 * 24
    assert summary.loc[("oracle", "all"), "hours"] == 40 * 24
    oracle = summary.loc[("oracle", "all")]
    assert oracle["hit_rate"] == 1.0 and oracle["exposure"] == 1.0
    assert bool(oracle["beats_zero"]) and bool(oracle["beats_buy_and_hold"])
    zero = summary.loc[("zero_return", "all")]
    assert zero["total_return"] == 0.0 and zero["turnover_per_day"] == 0.0
    assert zero["test_note"] == "not tested: the strategy's return never varies"
    assert not zero["beats_zero"]
    # the strategy's figures are those of the hours pooled over days
    pooled = np.concatenate([r for r in backtest[backtest["model"] == "oracle"]["strategy_return"]])
    assert oracle["total_return"] == pytest.approx(np.prod(1 + pooled) - 1)
