"""What every column of every asset table means, shown beside its type in the UI.

Each asset puts its mapping in its metadata under ``column_descriptions`` (``described``);
the IO manager merges it into the ``dagster/column_schema`` it records with each write. A test
checks that every column written has a description and every description a column.
"""

from __future__ import annotations

from collections.abc import Mapping

from cryptify_pipeline.ml.backtest import BOOTSTRAP_SAMPLES
from cryptify_pipeline.ml.context_features import (
    FUNDING_HOURS,
    FUNDING_PERIODS,
    INDEX_CARRY_HOURS,
    OI_MEAN_HOURS,
)
from cryptify_pipeline.ml.features import (
    EWMA_HALF_LIFE_HOURS,
    EWMA_VOLATILITY,
    RETURN_HOURS,
    VOLATILITY_HOURS,
)
from cryptify_pipeline.ml.significance import MIN_WINDOWS
from cryptify_pipeline.storage.io_manager import COLUMN_DESCRIPTIONS


def described(columns: Mapping[str, str]) -> dict[str, dict[str, str]]:
    """Asset metadata that gives the IO manager the descriptions of ``columns``."""
    return {COLUMN_DESCRIPTIONS: dict(columns)}


_SYMBOL = "Trading pair, BASE/QUOTE (e.g. BTC/USDT)."
_HORIZON = "Forecast horizon in hours: the target is the log return from ts to ts + h."
_MODEL = (
    "Model of the zoo (zero_return and drift are the baselines; a +context entry sees the "
    "market context too)."
)

_INTERVAL_METHOD = (
    "How the interval was made: conformal-hourly/ewma-24h = every held-out hour's residual "
    "over the EWMA volatility (half-life a day) * sqrt(h), bounds at the order statistic "
    "corrected for the overlap of h-hour residuals; conformal-windows/vol-168h = one residual "
    "per h-hour window over the 168 h volatility (the method before)."
)

CANDLES = {
    "ts": "Open time of the hourly candle (UTC); the candle closed at ts + 1 h.",
    "symbol": _SYMBOL,
    "open": "First trade price of the hour, in the quote currency.",
    "high": "Highest trade price of the hour.",
    "low": "Lowest trade price of the hour.",
    "close": "Last trade price of the hour.",
    "volume": "Traded volume in the base currency.",
    "quote_volume": "Traded volume in the quote currency (null where the source does not say).",
    "trades": "Number of trades (null where the source does not say).",
    "source": "Where the candle came from: an exchange id, file, or sample (synthetic prices).",
    "ingested_at": "When the pipeline wrote the candle (UTC).",
}

FEATURES = {
    "ts": "Hour of the candle the features describe (UTC); each uses candles up to ts only, "
    "and market context known at the candle's close (ts + 1 h).",
    "symbol": _SYMBOL,
    "close": "Close of the candle at ts.",
    "log_return_1h": "log(close[t] / close[t - 1 h]).",
    **{f"log_return_{h}h": f"log(close[t] / close[t - {h} h])." for h in RETURN_HOURS},
    "range_over_prev_close": "(high - low) / previous close.",
    "body_over_open": "(close - open) / open.",
    "high_over_prev_close": "(high - previous close) / previous close.",
    "low_over_prev_close": "(low - previous close) / previous close.",
    **{
        f"volatility_{h}h": f"Standard deviation of the hourly log returns of the last {h} hours."
        for h in VOLATILITY_HOURS
    },
    EWMA_VOLATILITY: "sqrt of the exponentially weighted mean of squared hourly log returns up "
    f"to ts, half-life {EWMA_HALF_LIFE_HOURS} h (RiskMetrics-style): the scale of the forecast "
    "intervals (not a model input).",
    "volume_zscore_100h": "Volume against the mean and standard deviation of the last 100 hours.",
    "log_volume_vs_24h_mean": "log(volume / mean volume of the last 24 hours).",
    "rsi_14": "Relative strength index over 14 hours (Wilder's smoothing), 0-100.",
    "macd": "MACD line: EMA(12) - EMA(26) of the close, in price units (not a model input).",
    "macd_signal": "EMA(9) of the MACD line, in price units (not a model input).",
    "macd_hist": "MACD line - signal, in price units (not a model input).",
    "macd_norm": "MACD line / close.",
    "macd_signal_norm": "MACD signal / close.",
    "macd_hist_norm": "MACD histogram / close.",
    "atr_14_norm": "Average true range over 14 hours (Wilder's smoothing) / close.",
    "hour_sin": "sin(2 pi hour / 24): the hour of day on a circle.",
    "hour_cos": "cos(2 pi hour / 24).",
    "day_of_week_sin": "sin(2 pi weekday / 7): the day of week on a circle.",
    "day_of_week_cos": "cos(2 pi weekday / 7).",
    # market context, as of the candle's close: only partitions up to ts (ml/context_features.py)
    "oi_log_change_1h": "log(OI[t] / OI[t - 1 h]): open interest of the symbol's perpetual "
    "measured at the candle's open (whole hours; null if either is missing).",
    "oi_log_change_24h": "log(OI[t] / OI[t - 24 h]).",
    "oi_vs_7d_mean": f"log(OI[t] / mean OI of the last {OI_MEAN_HOURS} hours); null if any "
    "hour of them is missing.",
    "funding_rate": "Last funding rate settled before the candle's close (within "
    f"{FUNDING_HOURS} h; a fraction per period, 0.0001 = 1 bp).",
    "funding_rate_mean_3": f"Mean of the last {FUNDING_PERIODS} funding rates settled before "
    f"the candle's close (within {FUNDING_HOURS} h; null with fewer).",
    "hours_since_funding": "Hours from the last funding settlement to the candle's close.",
    "index_log_return_1h": "Hourly log return of the equity index (e.g. ES=F) over the bar of "
    "ts, which closes with the candle: log(last close known at t + 1 h / at t). 0 while the "
    f"market is shut (its close carried, at most {INDEX_CARRY_HOURS} h); the first bar after "
    "a closure carries the whole closure's move. Null when the index hour is missing.",
    "index_log_return_24h": "log(last index close known at t + 1 h / known at t - 23 h).",
    "index_market_open": "1 if the index traded in the hour of ts, 0 if its market was shut, "
    "null if the hour is missing.",
    "crypto_minus_index_1h": "log_return_1h - index_log_return_1h.",
    "crypto_minus_index_24h": "log_return_24h - index_log_return_24h.",
}


def models(level: float) -> dict[str, str]:
    return {
        "day": "The day D whose end is the cut-off: trained on targets known by then, used for "
        "the forecasts of D + 1.",
        "symbol": _SYMBOL,
        "model": _MODEL,
        "horizon_h": _HORIZON,
        "cutoff": "End of day D (UTC): no fitted or held-out target reaches past it.",
        "fit_start": "First hour of the rows fitted.",
        "fit_end": "Last hour of the rows fitted (its target ends before the held-out period).",
        "validation_start": "First hour of the held-out rows (the last 20% before the cut-off).",
        "validation_end": "Last hour of the held-out rows.",
        "fit_rows": "Rows fitted, after the hold-out and its purge (at least 100); for lstm, "
        "the windows fitted: rows whose whole window of hours has complete features.",
        "validation_rows": "Rows held out (at least 24).",
        "boosting_rounds": "Boosting rounds (hist_gbm, xgboost), or training epochs (lstm), "
        "chosen on the last fitted rows (time-ordered, purged); null for the other models.",
        "features": "The model's input columns, in order: its feature set's (the price "
        "features; for a +context entry also the market context). Forecasts feed exactly these.",
        "val_mae": "Mean absolute error on the held-out rows (log return).",
        "val_rmse": "Root mean squared error on the held-out rows (log return).",
        "val_r2_vs_zero": "1 - SSE / sum(y^2) on the held-out rows: > 0 beats the zero forecast.",
        "val_directional_accuracy": "Share of held-out rows whose sign was called right (ties "
        "excluded).",
        "interval_level": f"Coverage the interval is calibrated for (here {level:.0%}).",
        "interval_method": _INTERVAL_METHOD,
        "interval_residuals": "Held-out residuals the interval was calibrated on (n).",
        "interval_windows": "Independent h-hour windows those residuals span (n / h).",
        "interval_calibrated": "Whether n sufficed for the level (no bound may be the single "
        "most extreme residual); if not, forecasts carry no interval.",
        "interval_low": f"Lower bound of the {level:.0%} interval in units of the volatility at "
        "the forecast's hour times sqrt(h) (null if uncalibrated).",
        "interval_high": f"Upper bound of the {level:.0%} interval in units of the volatility "
        "at the forecast's hour times sqrt(h) (null if uncalibrated).",
        "interval_scale_median": "Median held-out volatility * sqrt(h): stands in for a "
        "forecast hour whose volatility is unknown.",
        "artifact_format": "How the model is stored, hence which loader reads it: skops, "
        "xgboost-json (XGBoost's own JSON), or keras (a .keras archive, its config checked and "
        "its weights read without Keras).",
        "pipeline": "The fitted model in its artifact format (bytes).",
        "sha256": "sha256 of the stored bytes: loading refuses other bytes.",
        "library_versions": "Versions of the libraries that wrote it: loading refuses others.",
        "sklearn_version": "scikit-learn version that trained it.",
        "python_version": "Python version that trained it.",
        "signature": "HMAC-SHA256 under the model signing key of the bytes and the fields a "
        "forecast takes from this row: loading refuses a row it does not verify.",
        "signing_key_id": "Id of the key that signed it (tells keys apart; not trusted).",
        "trained_at": "When the model was trained (UTC).",
    }


def predictions(level: float) -> dict[str, str]:
    return {
        "ts": "Hour the forecast was made at: with the close of the candle of ts (UTC).",
        "symbol": _SYMBOL,
        "model": _MODEL,
        "horizon_h": _HORIZON,
        "target_ts": "ts + h: the candle whose close the forecast is scored against.",
        "close": "Close at ts, the price forecast from.",
        "pred_log_return": "Forecast log return from ts to ts + h.",
        "pred_price": "close * exp(pred_log_return).",
        "lower": f"Lower bound of the {level:.0%} interval of the price at ts + h (null if "
        "the model is uncalibrated).",
        "upper": f"Upper bound of the {level:.0%} interval of the price at ts + h (null if "
        "the model is uncalibrated).",
        "interval_level": "Coverage the model's interval is calibrated for.",
        "interval_calibrated": "Whether the forecast has an interval.",
        "interval_method": _INTERVAL_METHOD,
        "interval_residuals": "Held-out residuals the model's interval was calibrated on.",
        "model_day": "Day of the model used: the day before ts's.",
        "model_sha256": "sha256 of the model used.",
    }


_SCORE = {
    "symbol": _SYMBOL,
    "model": _MODEL,
    "horizon_h": _HORIZON,
    "n": "Forecasts scored: per symbol and horizon every model on the same rows.",
    "mae": "Mean absolute error of the log-return forecasts.",
    "rmse": "Root mean squared error of the log-return forecasts.",
    "r2_vs_zero": "1 - SSE / sum(y^2) on the model's rows: > 0 beats the zero forecast.",
    "directional_accuracy": "Share of forecasts whose sign was right (ties excluded).",
}

_TERCILE_NAMES = {"low_vol": "lowest", "mid_vol": "middle", "high_vol": "highest"}
_TERCILE_RULE = (
    f"terciles of the symbol's EWMA volatility ({EWMA_VOLATILITY}, the intervals' scale) at "
    "forecast time, cut at its 1/3 and 2/3 quantiles over the 30 days before the day scored"
)
# interval figures as shares of the price at forecast time: 0.05 reads "5% of the price"
_INTERVAL_FIGURES = {
    "width_share": "Mean interval width (upper - lower) / close, over the forecasts with an "
    "interval: a share of the price at forecast time.",
    "interval_score": "Mean interval (Winkler) score as a share of the price at forecast time: "
    "width + (2 / a) x the distance the realised price fell outside, a = 1 - level; lower is "
    "better (rewards narrow bands, punishes misses).",
    "pinball_lower": "Mean pinball (quantile) loss of the lower bound as the a/2 quantile of "
    "the realised price, as a share of the price at forecast time; lower is better.",
    "pinball_upper": "Mean pinball loss of the upper bound as the 1 - a/2 quantile, likewise. "
    "interval_score = (2 / a) x (pinball_lower + pinball_upper).",
    **{
        f"coverage_{tercile}": f"Coverage of the forecasts made in the {name} volatility "
        f"tercile ({_TERCILE_RULE}); null where none was."
        for tercile, name in _TERCILE_NAMES.items()
    },
}

FORECAST_METRICS = {
    "day": "Day the forecasts were made (UTC); scored against candles through the next day.",
    **_SCORE,
    "sum_abs_error": "Sum of |error|: with n, pools MAE over days exactly.",
    "sse": "Sum of squared errors.",
    "sum_y2": "Sum of squared realised log returns: the zero forecast's SSE on these rows.",
    "direction_n": "Forecasts with a decided direction (neither realised nor forecast zero).",
    "direction_hits": "Of those, the ones whose sign was right.",
    "covered": "Realised prices inside the forecast's interval.",
    "interval_n": "Forecasts that had an interval (calibrated models).",
    "coverage": "covered / interval_n.",
    "sum_width_share": "Sum of (upper - lower) / close over the forecasts with an interval: "
    "with interval_n, pools width_share over days exactly.",
    "sum_interval_score": "Sum of the interval scores (shares of the price): pools interval_score.",
    "sum_pinball_lower": "Sum of the lower bounds' pinball losses: pools pinball_lower.",
    "sum_pinball_upper": "Sum of the upper bounds' pinball losses: pools pinball_upper.",
    **_INTERVAL_FIGURES,
    **{
        f"covered_{tercile}": f"Realised prices inside the interval, of the forecasts made in "
        f"the {name} volatility tercile."
        for tercile, name in _TERCILE_NAMES.items()
    },
    **{
        f"interval_n_{tercile}": f"Forecasts with an interval made in the {name} volatility "
        "tercile (0 where the symbol had under a week of volatility history)."
        for tercile, name in _TERCILE_NAMES.items()
    },
    "mae_zero_return": "The zero forecast's MAE on the same rows: mean |realised return|.",
    "rmse_zero_return": "The zero forecast's RMSE on the same rows.",
    "mae_drift": "Drift's MAE on the same rows (null where drift was not forecast).",
    "rmse_drift": "Drift's RMSE on the same rows (null where drift was not forecast).",
    "sse_drift": "Drift's SSE on the same rows: pools skill against drift exactly.",
    "loss_diff": "By hour of the day (0-23): the zero forecast's squared error minus the "
    "model's; null where not scored. The Diebold-Mariano test's series.",
}


def leaderboard(level: float) -> dict[str, str]:
    return {
        **_SCORE,
        "window": "The days pooled: the recent days (e.g. 30d) or all.",
        "n": "Forecasts scored in the window, over the model's own rows.",
        "coverage": f"Share of realised prices inside the {level:.0%} intervals.",
        **_INTERVAL_FIGURES,
        "skill_vs_zero": "1 - RMSE / RMSE of the zero forecast on the same rows: > 0 beats "
        "saying the price stays.",
        "skill_vs_drift": "1 - RMSE / RMSE of drift on the rows where drift was scored too.",
        "dm_stat": "Diebold-Mariano statistic against the zero forecast on squared errors "
        "(h - 1 lags, Harvey-Leybourne-Newbold corrected): > 0 means lower errors. Null when "
        "not tested (see dm_note).",
        "dm_p_value": "One-sided p-value of dm_stat from Student t(T - 1), T the scored hours: "
        "how likely a statistic this large is if the model were no better than zero. Null "
        f"below {MIN_WINDOWS} independent h-hour windows ({MIN_WINDOWS} x h scored hours), and "
        "for the zero forecast.",
        "dm_note": "Why dm_p_value is null (too few forecasts, or no difference from the zero "
        "forecast); null when the model was tested.",
        "rank": "Rank by RMSE among the models scored on the window's last day, on the rows "
        "they all share (null for a model no longer scored).",
        "rank_rows": "Rows the rank compares the models on.",
    }


_PERPETUAL_SYMBOL = "Spot pair, BASE/QUOTE (e.g. BTC/USDT); the values are its perpetual swap's."
_CONTEXT_SOURCE = "Where the row came from: an exchange id, yfinance, file, or sample (synthetic)."

OPEN_INTEREST = {
    "symbol": _PERPETUAL_SYMBOL,
    "ts": "Instant the open interest was measured, a whole hour (UTC); known at ts.",
    "open_interest": "Open interest in base-currency units (contracts x contract size).",
    "open_interest_usd": "The same in the quote currency, where the source gives it.",
    "source": _CONTEXT_SOURCE,
}

FUNDING_RATES = {
    "symbol": _PERPETUAL_SYMBOL,
    "ts": "Funding time as the exchange gives it (usually 00:00, 08:00, 16:00 UTC); known at ts.",
    "funding_rate": "Rate settled at ts, a fraction per funding interval (0.0001 = 1 bp).",
    "source": _CONTEXT_SOURCE,
}

EQUITY_INDEX = {
    "index_symbol": "Equity index future, as Yahoo spells it (ES=F: the S&P 500 E-mini).",
    "ts": "Open time of the hourly bar (UTC); the bar closes, and is known, at ts + 1 h.",
    "open": "First price of the hour (null when the market was shut).",
    "high": "Highest price of the hour (null when shut).",
    "low": "Lowest price of the hour (null when shut).",
    "close": "Last price of the hour (null when shut).",
    "volume": "Contracts traded in the hour (null when shut).",
    "market_open": "Whether the market traded in the hour; false: shut, no price is invented.",
    "source": _CONTEXT_SOURCE,
}

_RULE = (
    "sign: long when the forecast is up, short when down; edge: only when |forecast| exceeds "
    "the round-trip cost; interval: only when the forecast's interval excludes no change (a "
    "forecast without an interval never trades)."
)
_SIDES = "long_short, or long_only (a short signal holds cash)."
_FEE = "Fee in basis points paid on every side of every trade (10 = a taker fee)."
_SLIPPAGE = "Slippage in basis points paid on every side of every trade."
_HOURLY = "By hour of the day (0-23), hour t being the candle of t (close of t-1 to close of t): "

BACKTEST = {
    "day": "Day whose hours were traded (UTC): the candles opening on it.",
    "symbol": _SYMBOL,
    "model": _MODEL,
    "horizon_h": "Forecast horizon in hours: each forecast holds 1/h of the capital for h hours.",
    "rule": _RULE,
    "sides": _SIDES,
    "fee_bps": _FEE,
    "slippage_bps": _SLIPPAGE,
    "gross_return": "The day's compounded strategy return before costs.",
    "costs": "The day's costs, a fraction of capital: sum of |change of position| x (fee + "
    "slippage).",
    "strategy_return_day": "The day's compounded strategy return after costs.",
    "buy_and_hold_return_day": "The day's compounded return of holding the symbol.",
    "position": _HOURLY + "the position, -1..1 of the capital: the mean of the signals of the "
    "h forecasts made in the h hours before it (a missing forecast counts as cash).",
    "turnover": _HOURLY + "|position - previous hour's position|, the capital traded.",
    "strategy_return": _HOURLY + "position x the candle's simple return - turnover x (fee + "
    "slippage); null where a candle is missing.",
    "buy_and_hold_return": _HOURLY + "the candle's simple return; null where a candle is missing.",
    "flat_return": _HOURLY + "cash earns nothing: 0.",
}


BACKTEST_SUMMARY = {
    "symbol": _SYMBOL,
    "model": _MODEL,
    "horizon_h": "Forecast horizon in hours: each forecast holds 1/h of the capital for h hours.",
    "rule": _RULE,
    "sides": _SIDES,
    "fee_bps": _FEE,
    "slippage_bps": _SLIPPAGE,
    "window": "The days pooled: the recent days (e.g. 30d) or all.",
    "first_hour": "First hour traded in the window.",
    "last_hour": "Last hour traded in the window.",
    "hours": "Hours with both candles, the ones every figure is computed on.",
    "total_return": "Compounded strategy return after costs: prod(1 + r) - 1.",
    "sharpe": "mean / standard deviation of the hourly returns x sqrt(24 x 365); null "
    "when the return never varies (never traded).",
    "sortino": "mean / sqrt(mean(min(r, 0)^2)) of the hourly returns x sqrt(24 x 365); "
    "null without a losing hour.",
    "max_drawdown": "Worst fall of the equity curve from its running peak (<= 0).",
    "turnover_per_day": "Capital traded per day: sum of |change of position| / days.",
    "hit_rate": "Of the hours in the market whose price moved, the share on the right side.",
    "exposure": "Mean |position|: the share of capital in the market.",
    "bh_total_return": "Buy-and-hold's compounded return over the same hours.",
    "bh_sharpe": "Buy-and-hold's annualised Sharpe ratio.",
    "bh_sortino": "Buy-and-hold's annualised Sortino ratio.",
    "bh_max_drawdown": "Buy-and-hold's maximum drawdown.",
    "sharpe_p_vs_zero": "One-sided p-value of Sharpe > 0 by the stationary block bootstrap "
    f"(mean block h hours, {BOOTSTRAP_SAMPLES} samples, fixed seed). Null below "
    f"{MIN_WINDOWS} independent h-hour windows (see test_note).",
    "sharpe_p_vs_hold": "One-sided p-value of Sharpe > buy-and-hold's Sharpe, same "
    "bootstrap, both series resampled together.",
    "beats_zero": "sharpe_p_vs_zero below 5% / models tested beside it (Bonferroni).",
    "beats_buy_and_hold": "sharpe_p_vs_hold below 5% / models tested beside it.",
    "test_note": "Why the p-values are null (too few hours, never traded); null if tested.",
}
