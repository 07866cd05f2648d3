"""Features of hourly candles, each a pure function of a fixed trailing window.

Every feature at hour t depends only on the candles of [t - LOOKBACK_HOURS + 1h, t], laid on
the hourly grid, where a missing hour is NaN and makes every window that holds it NaN.
Recursive indicators (EMA, Wilder's smoothing) are the usual ``adjust=False`` recursion seeded
at the start of a fixed window, written as fixed weights over that window. So an hour's
features are bit-identical however much history was computed with it (one backfill or hour by
hour), and nothing after t can reach them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

RETURN_HOURS = (3, 6, 12, 24, 48, 168)
VOLATILITY_HOURS = (5, 14, 21, 168)
# RiskMetrics-style EWMA volatility: a half-life of a day reacts to a new regime within hours
# (a 168 h window takes a week); the interval's scale (training.interval_scale), not a model input
EWMA_HALF_LIFE_HOURS = 24
EWMA_VOLATILITY = f"volatility_ewma_{EWMA_HALF_LIFE_HOURS}h"
RECURSION_HOURS = 200  # EMA / Wilder windows: the seed's weight is below 4e-7 for span 26
SIGNAL_HOURS = 120  # MACD signal window over the MACD line
# closes a row needs: the MACD signal over 120 MACD values, each over 200 closes
LOOKBACK_HOURS = RECURSION_HOURS + SIGNAL_HOURS

FEATURE_COLUMNS = (
    "log_return_1h",
    *(f"log_return_{hours}h" for hours in RETURN_HOURS),
    "range_over_prev_close",
    "body_over_open",
    "high_over_prev_close",
    "low_over_prev_close",
    *(f"volatility_{hours}h" for hours in VOLATILITY_HOURS),
    EWMA_VOLATILITY,
    "volume_zscore_100h",
    "log_volume_vs_24h_mean",
    "rsi_14",
    "macd",
    "macd_signal",
    "macd_hist",
    "macd_norm",
    "macd_signal_norm",
    "macd_hist_norm",
    "atr_14_norm",
    "hour_sin",
    "hour_cos",
    "day_of_week_sin",
    "day_of_week_cos",
)
# MACD in price units is the textbook indicator, kept for people; models see it over the close.
# The EWMA volatility scales the intervals; the models keep the inputs they were validated on.
NOT_MODEL_INPUTS = {"macd", "macd_signal", "macd_hist", EWMA_VOLATILITY}
MODEL_FEATURES = tuple(c for c in FEATURE_COLUMNS if c not in NOT_MODEL_INPUTS)


def trailing_windows(values: np.ndarray, width: int) -> np.ndarray:
    """Row i holds values[i - width + 1 .. i], NaN before the first value; one contiguous copy,
    so each row is reduced the same way whatever rows surround it."""
    padded = np.concatenate([np.full(width - 1, np.nan), np.asarray(values, dtype="float64")])
    return np.ascontiguousarray(sliding_window_view(padded, width))


def window_mean(values: np.ndarray, width: int) -> np.ndarray:
    return trailing_windows(values, width).mean(axis=1)


def window_std(values: np.ndarray, width: int) -> np.ndarray:
    """Sample standard deviation (ddof=1) of each trailing window."""
    return trailing_windows(values, width).std(axis=1, ddof=1)


def lag(values: np.ndarray, hours: int) -> np.ndarray:
    """``values`` shifted ``hours`` later, NaN where there is no earlier value (all of it when
    the history is shorter than ``hours``)."""
    shifted = np.full(len(values), np.nan)
    if hours < len(values):
        shifted[hours:] = values[: len(values) - hours]
    return shifted


def recursion_weights(alpha: float, width: int) -> np.ndarray:
    """Weights, oldest first, of ``y = alpha * x + (1 - alpha) * y_prev`` seeded with the
    window's first value: they sum to one."""
    weights = alpha * (1 - alpha) ** np.arange(width - 1, -1, -1, dtype="float64")
    weights[0] = (1 - alpha) ** (width - 1)
    return weights


def ema(values: np.ndarray, span: int, width: int = RECURSION_HOURS) -> np.ndarray:
    """Exponential moving average, ``alpha = 2 / (span + 1)``, ``adjust=False``."""
    return (trailing_windows(values, width) * recursion_weights(2 / (span + 1), width)).sum(axis=1)


def wilder(values: np.ndarray, period: int, width: int = RECURSION_HOURS) -> np.ndarray:
    """Wilder's smoothing: the same recursion with ``alpha = 1 / period``."""
    return (trailing_windows(values, width) * recursion_weights(1 / period, width)).sum(axis=1)


def ewma_volatility(
    returns: np.ndarray, half_life: int = EWMA_HALF_LIFE_HOURS, width: int = RECURSION_HOURS
) -> np.ndarray:
    """sqrt of the EWMA of squared returns (zero mean, as RiskMetrics), ``lambda = 0.5 **
    (1 / half_life)``, the recursion seeded at the start of a fixed ``width``-hour window (the
    seed weighs 0.5 ** (199 / 24) = 0.3% at a day's half-life): the returns up to t only."""
    weights = recursion_weights(1 - 0.5 ** (1 / half_life), width)
    return np.sqrt((trailing_windows(np.square(returns), width) * weights).sum(axis=1))


def log_returns(close: np.ndarray, hours: int = 1) -> np.ndarray:
    return np.log(close / lag(close, hours))


def rsi(close: np.ndarray, period: int = 14) -> np.ndarray:
    change = close - lag(close, 1)
    gain = wilder(np.where(np.isnan(change), np.nan, np.maximum(change, 0.0)), period)
    loss = wilder(np.where(np.isnan(change), np.nan, np.maximum(-change, 0.0)), period)
    with np.errstate(divide="ignore", invalid="ignore"):
        value = 100.0 - 100.0 / (1.0 + gain / loss)
    return np.where(loss == 0.0, 100.0, value)  # no losses in the window: RSI is 100


def macd(close: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MACD(12, 26, 9): the line, its signal and the histogram, in price units."""
    line = ema(close, 12) - ema(close, 26)
    signal = ema(line, 9, width=SIGNAL_HOURS)
    return line, signal, line - signal


def true_range(high: np.ndarray, low: np.ndarray, close: np.ndarray) -> np.ndarray:
    previous = lag(close, 1)
    return np.fmax(high - low, np.maximum(np.abs(high - previous), np.abs(low - previous)))


def atr(high: np.ndarray, low: np.ndarray, close: np.ndarray, period: int = 14) -> np.ndarray:
    return wilder(true_range(high, low, close), period)


def on_hourly_grid(candles: pd.DataFrame) -> pd.DataFrame:
    """One symbol's candles reindexed to every hour from its first to its last; gaps are NaN."""
    indexed = candles.set_index("ts").sort_index()
    hours = pd.date_range(indexed.index[0], indexed.index[-1], freq="h")
    return indexed.reindex(hours).rename_axis("ts")


def symbol_features(candles: pd.DataFrame) -> pd.DataFrame:
    """Features of one symbol's candles, one row per candle (not per grid hour)."""
    grid = on_hourly_grid(candles)
    close, high, low = (grid[c].to_numpy("float64") for c in ("close", "high", "low"))
    open_, volume = grid["open"].to_numpy("float64"), grid["volume"].to_numpy("float64")
    previous_close = lag(close, 1)
    one_hour = log_returns(close)
    line, signal, histogram = macd(close)
    hour, weekday = grid.index.hour.to_numpy(), grid.index.day_of_week.to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        columns = {
            "log_return_1h": one_hour,
            **{f"log_return_{h}h": log_returns(close, h) for h in RETURN_HOURS},
            "range_over_prev_close": (high - low) / previous_close,
            "body_over_open": (close - open_) / open_,
            "high_over_prev_close": (high - previous_close) / previous_close,
            "low_over_prev_close": (low - previous_close) / previous_close,
            **{f"volatility_{h}h": window_std(one_hour, h) for h in VOLATILITY_HOURS},
            EWMA_VOLATILITY: ewma_volatility(one_hour),
            "volume_zscore_100h": (volume - window_mean(volume, 100)) / window_std(volume, 100),
            "log_volume_vs_24h_mean": np.log(volume / window_mean(volume, 24)),
            "rsi_14": rsi(close),
            "macd": line,
            "macd_signal": signal,
            "macd_hist": histogram,
            "macd_norm": line / close,
            "macd_signal_norm": signal / close,
            "macd_hist_norm": histogram / close,
            "atr_14_norm": atr(high, low, close) / close,
            "hour_sin": np.sin(2 * np.pi * hour / 24),
            "hour_cos": np.cos(2 * np.pi * hour / 24),
            "day_of_week_sin": np.sin(2 * np.pi * weekday / 7),
            "day_of_week_cos": np.cos(2 * np.pi * weekday / 7),
        }
    features = pd.DataFrame(columns, index=grid.index)
    features = features.replace([np.inf, -np.inf], np.nan)
    features.insert(0, "close", close)
    return features[grid["close"].notna()]  # rows only where there is a candle


def build_features(candles: pd.DataFrame, start, end) -> pd.DataFrame:
    """Features for candles with ``ts`` in [start, end), from candles that include the
    ``LOOKBACK_HOURS`` before ``start`` (fewer make the long windows NaN, never wrong)."""
    frames = []
    for symbol, group in candles.groupby("symbol", sort=True):
        features = symbol_features(group).reset_index()
        features.insert(1, "symbol", symbol)
        frames.append(features[(features["ts"] >= start) & (features["ts"] < end)])
    if not frames:
        return empty_features()
    result = pd.concat(frames, ignore_index=True)
    result["symbol"] = result["symbol"].astype("str")
    return result


def empty_features() -> pd.DataFrame:
    frame = pd.DataFrame({c: pd.Series(dtype="float64") for c in ("close", *FEATURE_COLUMNS)})
    frame.insert(0, "symbol", pd.Series(dtype="str"))
    frame.insert(0, "ts", pd.Series(dtype="datetime64[us, UTC]"))
    return frame
