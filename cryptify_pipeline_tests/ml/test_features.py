"""Features against hand-computed values and textbook definitions; windows are exact."""

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from cryptify_pipeline.market.sample import SampleMarket
from cryptify_pipeline.ml.features import (
    EWMA_VOLATILITY,
    FEATURE_COLUMNS,
    LOOKBACK_HOURS,
    RECURSION_HOURS,
    SIGNAL_HOURS,
    build_features,
    ema,
    ewma_volatility,
    macd,
    rsi,
    true_range,
    wilder,
    window_std,
)

HOUR = timedelta(hours=1)
START = datetime(2025, 3, 1, tzinfo=UTC)


def candles(hours: int, symbols=("BTC/USDT",), start=START) -> pd.DataFrame:
    return SampleMarket().fetch(list(symbols), start - LOOKBACK_HOURS * HOUR, start + hours * HOUR)


def same(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    """Exactly equal, NaN where the other is NaN."""
    x, y = a.to_numpy("float64"), b.to_numpy("float64")
    return bool(((x == y) | (np.isnan(x) & np.isnan(y))).all())


def test_hand_computed_values_at_one_hour():
    frame = candles(1)
    row = build_features(frame, START, START + HOUR).iloc[0]
    c = frame.set_index("ts")
    close, volume = c["close"], c["volume"]
    t = pd.Timestamp(START)
    prev = close[t - HOUR]
    assert row["close"] == close[t]
    assert row["log_return_1h"] == pytest.approx(np.log(close[t] / prev), rel=1e-12)
    for hours in (3, 6, 12, 24, 48, 168):
        expected = np.log(close[t] / close[t - hours * HOUR])
        assert row[f"log_return_{hours}h"] == pytest.approx(expected, rel=1e-12)
    assert row["range_over_prev_close"] == pytest.approx((c["high"][t] - c["low"][t]) / prev)
    assert row["body_over_open"] == pytest.approx((close[t] - c["open"][t]) / c["open"][t])
    assert row["high_over_prev_close"] == pytest.approx((c["high"][t] - prev) / prev)
    assert row["low_over_prev_close"] == pytest.approx((c["low"][t] - prev) / prev)
    returns = np.log(close / close.shift())
    for hours in (5, 14, 21, 168):
        window = returns[t - (hours - 1) * HOUR : t]
        assert len(window) == hours
        assert row[f"volatility_{hours}h"] == pytest.approx(window.std(ddof=1), rel=1e-10)
    last_100 = volume[t - 99 * HOUR : t]
    expected_z = (volume[t] - last_100.mean()) / last_100.std(ddof=1)
    assert row["volume_zscore_100h"] == pytest.approx(expected_z, rel=1e-10)
    expected_rel = np.log(volume[t] / volume[t - 23 * HOUR : t].mean())
    assert row["log_volume_vs_24h_mean"] == pytest.approx(expected_rel, rel=1e-10)
    # 2025-03-01 00:00 was a Saturday (dayofweek 5)
    assert row["hour_sin"] == pytest.approx(0.0) and row["hour_cos"] == pytest.approx(1.0)
    assert row["day_of_week_sin"] == pytest.approx(np.sin(2 * np.pi * 5 / 7))
    assert row["day_of_week_cos"] == pytest.approx(np.cos(2 * np.pi * 5 / 7))


def textbook_recursion(values: np.ndarray, alpha: float) -> np.ndarray:
    """y_0 = x_0; y_t = alpha * x_t + (1 - alpha) * y_(t-1), a plain loop."""
    out = np.empty_like(values)
    out[0] = values[0]
    for i in range(1, len(values)):
        out[i] = alpha * values[i] + (1 - alpha) * out[i - 1]
    return out


def test_ema_and_wilder_equal_the_recursion_seeded_at_the_window_start():
    x = np.random.default_rng(3).normal(100, 5, 500)
    for span in (12, 26):
        got = ema(x, span)
        for t in (RECURSION_HOURS - 1, 350, 499):
            seeded = textbook_recursion(x[t - RECURSION_HOURS + 1 : t + 1], 2 / (span + 1))[-1]
            assert got[t] == pytest.approx(seeded, rel=1e-12)
        # and the whole-history textbook EMA (pandas adjust=False) up to the truncation error
        full = pd.Series(x).ewm(span=span, adjust=False).mean().to_numpy()
        np.testing.assert_allclose(got[RECURSION_HOURS:], full[RECURSION_HOURS:], rtol=1e-6)
        assert np.isnan(got[: RECURSION_HOURS - 1]).all()  # not enough history: NaN
    full_wilder = pd.Series(x).ewm(alpha=1 / 14, adjust=False).mean().to_numpy()
    np.testing.assert_allclose(wilder(x, 14)[300:], full_wilder[300:], rtol=1e-5)


def test_ewma_volatility_is_riskmetrics_over_past_returns_only():
    returns = np.random.default_rng(4).normal(0, 0.01, 600)
    got = ewma_volatility(returns)
    lam = 0.5 ** (1 / 24)  # a half-life of a day
    for t in (RECURSION_HOURS - 1, 400, 599):
        seeded = textbook_recursion(returns[t - RECURSION_HOURS + 1 : t + 1] ** 2, 1 - lam)[-1]
        assert got[t] == pytest.approx(np.sqrt(seeded), rel=1e-12)
        # no future row reaches it: the returns after t changed, the value at t is the same
        changed = returns.copy()
        changed[t + 1 :] *= 50
        assert ewma_volatility(changed)[t] == got[t]
    full = np.sqrt(pd.Series(returns**2).ewm(alpha=1 - lam, adjust=False).mean().to_numpy())
    # the whole-history EWMA up to the seed: one squared return weighing 0.3% of the variance
    np.testing.assert_allclose(got[300:], full[300:], rtol=0.03)
    assert np.isnan(got[: RECURSION_HOURS - 1]).all()


def test_ewma_volatility_reacts_to_a_new_regime_within_hours_not_a_week():
    rng = np.random.default_rng(5)
    returns = np.concatenate([rng.normal(0, 0.005, 400), rng.normal(0, 0.02, 200)])  # x4
    ewma, week = ewma_volatility(returns), window_std(returns, 168)
    # 24 hours into the new regime the EWMA has covered most of the way, the week's std little
    assert ewma[423] > 2.5 * 0.005 and week[423] < 2 * 0.005
    assert ewma[447] > 3 * 0.005


def test_the_ewma_volatility_column_is_the_hourly_returns_ewma():
    frame = candles(24)
    features = build_features(frame, START, START + 24 * HOUR)
    close = frame.set_index("ts")["close"].to_numpy()
    expected = ewma_volatility(np.log(close[1:] / close[:-1]))[-24:]
    np.testing.assert_allclose(features[EWMA_VOLATILITY].to_numpy(), expected, rtol=1e-12)


def test_rsi_macd_atr_match_textbook_definitions():
    frame = candles(300)
    close, high, low = (frame[c].to_numpy() for c in ("close", "high", "low"))
    n = len(close)
    # RSI: Wilder-smoothed average gain over average loss
    change = pd.Series(close).diff()
    gain = change.clip(lower=0).ewm(alpha=1 / 14, adjust=False).mean()
    loss = (-change).clip(lower=0).ewm(alpha=1 / 14, adjust=False).mean()
    textbook_rsi = (100 - 100 / (1 + gain / loss)).to_numpy()
    np.testing.assert_allclose(rsi(close)[400:], textbook_rsi[400:], rtol=1e-5)
    # MACD: EMA12 - EMA26 of close, signal EMA9 of that, histogram the difference
    line = (
        pd.Series(close).ewm(span=12, adjust=False).mean()
        - pd.Series(close).ewm(span=26, adjust=False).mean()
    )
    signal = line.ewm(span=9, adjust=False).mean()
    got_line, got_signal, got_hist = macd(close)
    start = RECURSION_HOURS + SIGNAL_HOURS
    scale = np.abs(line.to_numpy()[start:]).max()
    np.testing.assert_allclose(got_line[start:], line.to_numpy()[start:], atol=1e-6 * scale)
    np.testing.assert_allclose(got_signal[start:], signal.to_numpy()[start:], atol=1e-6 * scale)
    np.testing.assert_allclose(got_hist, got_line - got_signal)
    assert not np.allclose(got_line[start:], got_signal[start:])  # correctly labelled: differ
    # ATR: Wilder-smoothed true range
    previous = np.concatenate([[np.nan], close[:-1]])
    tr = np.fmax(high - low, np.maximum(np.abs(high - previous), np.abs(low - previous)))
    np.testing.assert_array_equal(true_range(high, low, close)[1:], tr[1:])
    textbook_atr = pd.Series(tr[1:]).ewm(alpha=1 / 14, adjust=False).mean().to_numpy()
    row = build_features(frame, START, START + 300 * HOUR).set_index("ts")
    atr_norm = row["atr_14_norm"].to_numpy()
    np.testing.assert_allclose(atr_norm, (textbook_atr / close[1:])[-300:], rtol=1e-5)
    assert n == LOOKBACK_HOURS + 300


def test_missing_hour_is_a_gap_not_skipped():
    frame = candles(48)
    gap = pd.Timestamp(START + 10 * HOUR)
    holed = frame[~(frame["ts"] == gap)]
    features = build_features(holed, START, START + 48 * HOUR).set_index("ts")
    assert gap not in features.index  # no candle, no row
    after = features.loc[gap + HOUR]
    assert np.isnan(after["log_return_1h"])  # its previous close is missing
    assert np.isnan(after["volatility_5h"])  # the window of 1h returns holds the gap
    assert not np.isnan(after["log_return_3h"])  # point to point: both ends exist
    # the 1h returns into and out of the gap are both undefined, so the gap leaves the 5h
    # window of returns six hours later
    assert np.isnan(features.loc[gap + 5 * HOUR, "volatility_5h"])
    six_later = features.loc[gap + 6 * HOUR]
    assert not np.isnan(six_later["volatility_5h"])
    assert np.isnan(six_later["volatility_14h"])
    complete = build_features(frame, START, START + 48 * HOUR).set_index("ts")
    assert features.loc[gap - HOUR, "rsi_14"] == complete.loc[gap - HOUR, "rsi_14"]


def test_truncation_features_up_to_t_equal_the_full_computation():
    frame = candles(24 * 10, symbols=("BTC/USDT", "ETH/USDT"))
    full = build_features(frame, START, START + 240 * HOUR)
    cut = pd.Timestamp(START + 100 * HOUR)
    truncated = build_features(frame[frame["ts"] <= cut], START, START + 240 * HOUR)
    expected = full[full["ts"] <= cut].reset_index(drop=True)
    assert len(truncated) == len(expected) == 2 * 101
    assert same(truncated[list(FEATURE_COLUMNS)], expected[list(FEATURE_COLUMNS)])


def test_any_hour_is_bit_identical_however_its_history_was_computed():
    frame = candles(24 * 7, symbols=("BTC/USDT", "ETH/USDT"))
    batch = build_features(frame, START, START + 168 * HOUR)
    for offset in range(0, 168, 5):
        t = START + offset * HOUR
        own_lookback = frame[(frame["ts"] > t - LOOKBACK_HOURS * HOUR) & (frame["ts"] <= t)]
        alone = build_features(own_lookback, t, t + HOUR)
        expected = batch[batch["ts"] == t].reset_index(drop=True)
        assert same(alone[list(FEATURE_COLUMNS)], expected[list(FEATURE_COLUMNS)]), t
    assert not batch[list(FEATURE_COLUMNS)].isna().any().any()  # full lookback: no NaN


def test_history_shorter_than_a_lag_gives_nan_not_an_error():
    # the first hours of a pipeline: six candles, lags of 12 h and more reach before them
    short = SampleMarket().fetch(["BTC/USDT"], START, START + 6 * HOUR)
    features = build_features(short, START, START + 6 * HOUR)
    assert len(features) == 6
    assert features["log_return_1h"].iloc[1:].notna().all()
    assert features["log_return_12h"].isna().all()
    assert features["volatility_168h"].isna().all()
