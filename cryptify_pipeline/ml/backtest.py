"""Forecasts in money terms: the positions a simple rule takes from them, and what they earn.

A forecast made at hour ``ts`` (with the close of the candle of ts) for ``h`` hours ahead
opens its position at that close and holds it through the close of the candle of ``ts + h``:
the hours ``ts + 1 .. ts + h``. Forecasts of the same model and horizon are made every hour, so
``h`` of them are open at once; each holds ``1/h`` of the capital (the strategy is the average
of ``h`` staggered books), so the result does not depend on the hour one starts. The position
of hour ``t`` is therefore ``w_t = (1/h) * sum_{k=1..h} signal(forecast made at t - k)``:
only forecasts made before the hour it trades. A missing forecast keeps its share in cash.

Hour ``t`` earns ``w_t * R_t - |w_t - w_{t-1}| * (fee + slippage)``, with ``R_t`` the simple
return of the candle of t (close of t-1 to close of t): every change of position, the books
netted, pays fee and slippage per side. Weights are of the capital at the start of each hour
(rebalanced hourly; the cost of that rebalancing is not charged). Buy-and-hold earns ``R_t``
(no costs) and flat (cash) earns nothing, side by side.

The risk statistics are numpy formulas, stated in each docstring: ``quantstats`` imports
seaborn, matplotlib and yfinance to compute them (seconds per process), ``empyrical-reloaded``
pulls peewee and bottleneck for a handful of one-line formulas, ``vectorbt`` numba and llvmlite
(hundreds of MB); none has the block bootstrap the Sharpe tests need, and each would have
needed a test pinning its conventions (ddof, annualisation) anyway.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, NamedTuple, get_args

import numpy as np
import pandas as pd

from cryptify_pipeline.ml.significance import MIN_WINDOWS, significantly_better

Rule = Literal["sign", "edge", "interval"]
RULES: tuple[str, ...] = get_args(Rule)
Sides = Literal["long_short", "long_only"]
HOURS_PER_DAY = 24
# hourly returns annualise with sqrt(hours in a year): crypto trades around the clock
HOURS_PER_YEAR = 24 * 365
BOOTSTRAP_SAMPLES = 500
BOOTSTRAP_SEED = 24  # fixed: the same data always gets the same p-values
CHUNK = 50  # bootstrap samples handled at once
HOUR = timedelta(hours=1)
# the hourly series a day's row carries, 24 values each (null where the candle is missing)
SERIES = ("position", "turnover", "strategy_return", "buy_and_hold_return", "flat_return")
SUMMARY_COLUMNS = (
    "symbol", "model", "horizon_h", "rule", "sides", "fee_bps", "slippage_bps", "window",
    "first_hour", "last_hour", "hours", "total_return", "sharpe", "sortino", "max_drawdown",
    "turnover_per_day", "hit_rate", "exposure", "bh_total_return", "bh_sharpe", "bh_sortino",
    "bh_max_drawdown", "sharpe_p_vs_zero", "sharpe_p_vs_hold", "beats_zero",
    "beats_buy_and_hold", "test_note",
)  # fmt: skip


@dataclass(frozen=True)
class Costs:
    """Fee and slippage in basis points, each paid on every side of a trade."""

    fee_bps: float
    slippage_bps: float

    @property
    def per_side(self) -> float:
        """The fraction of the traded capital one side costs."""
        return (self.fee_bps + self.slippage_bps) / 10_000

    @property
    def round_trip(self) -> float:
        """In and out: what a forecast must beat for the ``edge`` rule to trade on it."""
        return 2 * self.per_side


def signals(forecasts: pd.DataFrame, rule: str, costs: Costs, long_only: bool) -> np.ndarray:
    """Per forecast: +1 (long), -1 (short) or 0 (cash).

    ``sign``: long when the forecast log return is above zero, short when below. ``edge``: the
    same, only when ``|forecast|`` exceeds the round-trip cost. ``interval``: long when the
    interval's lower price is above the close (the interval excludes a fall), short when its
    upper price is below it; a forecast without an interval never trades. ``long_only``: a
    short is cash instead.
    """
    forecast = forecasts["pred_log_return"].to_numpy(float)
    if rule == "sign":
        up, down = forecast > 0, forecast < 0
    elif rule == "edge":
        up, down = forecast > costs.round_trip, forecast < -costs.round_trip
    elif rule == "interval":
        close = forecasts["close"].to_numpy(float)
        # NaN bounds (no interval) compare False: no trade
        up = forecasts["lower"].to_numpy(float) > close
        down = forecasts["upper"].to_numpy(float) < close
    else:
        raise ValueError(f"unknown rule {rule!r}: one of {', '.join(RULES)}")
    signal = up.astype(float) - down.astype(float)
    return np.maximum(signal, 0.0) if long_only else signal


def positions(
    made_at: np.ndarray, signal: np.ndarray, horizon: int, first: int, count: int, size: int
) -> np.ndarray:
    """The position ``w_t`` of the hours ``first - 1 .. first + count - 1`` of an hourly grid of
    ``size`` hours: the mean of the signals of the ``horizon`` forecasts made (at grid hours
    ``made_at``) at t - horizon .. t - 1, 0 for a missing one."""
    by_hour = np.zeros(size)
    by_hour[made_at] = signal
    running = np.concatenate([[0.0], np.cumsum(by_hour)])  # running[j]: hours 0 .. j - 1
    hours = np.arange(first - 1, first + count)
    return (running[hours] - running[np.maximum(hours - horizon, 0)]) / horizon


def candle_returns(candles: pd.DataFrame, start: datetime, end: datetime) -> pd.DataFrame:
    """Per symbol (columns), the simple return of every candle of [start, end) (rows): from
    the previous close to its close; NaN where either candle is missing."""
    grid = pd.date_range(start - HOUR, end - HOUR, freq="h")
    candles = candles[(candles["ts"] >= start - HOUR) & (candles["ts"] < end)]
    closes = candles.pivot(index="ts", columns="symbol", values="close").reindex(grid)
    return (closes / closes.shift(1) - 1).iloc[1:]


@dataclass(frozen=True)
class Book:
    """One symbol, model, horizon and rule traded over the hours of a backtest."""

    symbol: str
    model: str
    horizon: int
    rule: str
    position: np.ndarray
    turnover: np.ndarray
    cost: np.ndarray
    strategy_return: np.ndarray
    buy_and_hold_return: np.ndarray


def books(
    predictions: pd.DataFrame,
    candles: pd.DataFrame,
    start: datetime,
    end: datetime,
    rules: Sequence[str],
    costs: Costs,
    long_only: bool,
) -> list[Book]:
    """Every symbol, model, horizon and rule traded over the hours of [start, end). Reads
    only the forecasts made in the hours before each hour traded."""
    returns = candle_returns(candles, start, end)
    count = (end - start) // HOUR
    if predictions.empty:
        return []
    # only forecasts that can be open in [start - 1 h, end): made in the h + 1 hours before
    reach = int(predictions["horizon_h"].max()) + 1
    origin = start - reach * HOUR
    made = predictions[(predictions["ts"] >= origin) & (predictions["ts"] < end)]
    made_at = ((made["ts"] - pd.Timestamp(origin)) // HOUR).to_numpy(int)
    size = reach + count
    by_rule = {rule: signals(made, rule, costs, long_only) for rule in rules}
    found = []
    groups = made.groupby(["symbol", "model", "horizon_h"], sort=True).indices
    for (symbol, model, horizon), rows in groups.items():
        horizon = int(horizon)
        if symbol in returns:
            market = returns[symbol].to_numpy(float)
        else:
            market = np.full(count, np.nan)
        for rule in rules:
            held = positions(made_at[rows], by_rule[rule][rows], horizon, reach, count, size)
            position, turnover = held[1:], np.abs(np.diff(held))
            cost = turnover * costs.per_side
            found.append(
                Book(symbol, model, horizon, rule, position, turnover, cost,
                     position * market - cost, market)
            )  # fmt: skip
    return found


def backtest_hours(
    predictions: pd.DataFrame,
    candles: pd.DataFrame,
    start: datetime,
    end: datetime,
    rules: Sequence[str],
    costs: Costs,
    long_only: bool,
) -> pd.DataFrame:
    """Every hour of [start, end), per symbol, model, horizon and rule: ``position``,
    ``turnover`` (|change of position|), ``cost``, ``strategy_return``, ``buy_and_hold_return``
    and ``flat_return``, one row each."""
    hours = pd.date_range(start, end - HOUR, freq="h")
    found = books(predictions, candles, start, end, rules, costs, long_only)
    if not found:
        return pd.DataFrame(columns=["ts", "symbol", "model", "horizon_h", "rule", *SERIES])
    repeat = len(hours)
    return pd.DataFrame(
        {
            "ts": np.tile(hours, len(found)),
            "symbol": np.repeat([b.symbol for b in found], repeat),
            "model": np.repeat([b.model for b in found], repeat),
            "horizon_h": np.repeat([b.horizon for b in found], repeat),
            "rule": np.repeat([b.rule for b in found], repeat),
            **{
                name: np.concatenate([getattr(b, name) for b in found])
                for name in (
                    "position",
                    "turnover",
                    "cost",
                    "strategy_return",
                    "buy_and_hold_return",
                )
            },  # fmt: skip
            "flat_return": np.zeros(repeat * len(found)),
        }
    )


def backtest_day(
    predictions: pd.DataFrame,
    candles: pd.DataFrame,
    day: datetime,
    rules: Sequence[str],
    costs: Costs,
    long_only: bool,
) -> pd.DataFrame:
    """One row per symbol, model, horizon and rule of the hours of ``day``: the costs and
    sides, each hourly series of ``SERIES`` as 24 values (None where the candle is missing),
    and the day's sums."""
    end = day + timedelta(days=1)
    sides = "long_only" if long_only else "long_short"
    rows = []
    flat = [0.0] * HOURS_PER_DAY
    for book in books(predictions, candles, day, end, rules, costs, long_only):
        rows.append(
            {
                "day": day, "symbol": book.symbol, "model": book.model,
                "horizon_h": book.horizon, "rule": book.rule, "sides": sides,
                "fee_bps": costs.fee_bps, "slippage_bps": costs.slippage_bps,
                "gross_return": _compound(book.strategy_return + book.cost),
                "costs": float(book.cost.sum()),
                "strategy_return_day": _compound(book.strategy_return),
                "buy_and_hold_return_day": _compound(book.buy_and_hold_return),
                "position": _nullable(book.position),
                "turnover": _nullable(book.turnover),
                "strategy_return": _nullable(book.strategy_return),
                "buy_and_hold_return": _nullable(book.buy_and_hold_return),
                "flat_return": flat,
            }
        )  # fmt: skip
    return pd.DataFrame(rows)


def _compound(returns: np.ndarray) -> float:
    finite = returns[np.isfinite(returns)]
    return float(np.prod(1 + finite) - 1)


def _nullable(values: np.ndarray) -> list[float | None]:
    return np.where(np.isfinite(values), values, None).tolist()


# -- the statistics ------------------------------------------------------------------------


def total_return(returns: np.ndarray) -> float:
    """``prod(1 + r) - 1``."""
    return float(np.prod(1 + returns) - 1)


def sharpe(returns: np.ndarray) -> float:
    """``mean / std (ddof 1) * sqrt(24 * 365)``; NaN without variation (never traded)."""
    if len(returns) < 2:
        return math.nan
    spread = float(np.std(returns, ddof=1))
    return float(np.mean(returns)) / spread * math.sqrt(HOURS_PER_YEAR) if spread > 0 else math.nan


def sortino(returns: np.ndarray) -> float:
    """``mean / sqrt(mean(min(r, 0)^2)) * sqrt(24 * 365)``; NaN without a losing hour."""
    if not len(returns):
        return math.nan
    downside = math.sqrt(float(np.mean(np.minimum(returns, 0.0) ** 2)))
    return float(np.mean(returns)) / downside * math.sqrt(HOURS_PER_YEAR) if downside else math.nan


def max_drawdown(returns: np.ndarray) -> float:
    """The worst fall of the equity curve from its running peak (starting at 1), <= 0."""
    equity = np.concatenate([[1.0], np.cumprod(1 + returns)])
    return float(np.min(equity / np.maximum.accumulate(equity) - 1))


def hit_rate(position: np.ndarray, market: np.ndarray) -> float:
    """Of the hours in the market whose price moved, the share the position's side was right."""
    decided = (position != 0) & (market != 0)
    if not decided.any():
        return math.nan
    return float((np.sign(position[decided]) == np.sign(market[decided])).mean())


class SharpeTests(NamedTuple):
    """One-sided bootstrap p-values of ``Sharpe > 0`` and ``Sharpe > buy-and-hold's``; NaN
    when not tested, and ``note`` says why (None when tested)."""

    p_vs_zero: float
    p_vs_hold: float
    note: str | None


def stationary_bootstrap(
    length: int, mean_block: int, samples: int, rng: np.random.Generator
) -> np.ndarray:
    """``samples`` x ``length`` indices (int32) of the stationary bootstrap (Politis and Romano
    1994): blocks of geometric length with mean ``mean_block``, wrapping around the end. Made
    ``CHUNK`` samples at a time: a year of hours is 35 MB per array per 500 samples."""
    steps = np.arange(length)
    indices = np.empty((samples, length), dtype=np.int32)
    for first_sample in range(0, samples, CHUNK):
        count = min(CHUNK, samples - first_sample)
        new_block = rng.random((count, length)) < 1 / mean_block
        new_block[:, 0] = True
        block_start = np.maximum.accumulate(np.where(new_block, steps, 0), axis=1)
        first = rng.integers(0, length, (count, length))
        indices[first_sample : first_sample + count] = (
            np.take_along_axis(first, block_start, axis=1) + steps - block_start
        ) % length
    return indices


def sharpe_tests(
    strategy: np.ndarray,
    hold: np.ndarray,
    horizon: int,
    indices: np.ndarray | None = None,
    min_windows: int = MIN_WINDOWS,
) -> SharpeTests:
    """Is the strategy's Sharpe ratio above zero, and above buy-and-hold's, beyond luck?

    The stationary bootstrap with mean block ``horizon`` (positions overlap for h hours)
    resamples both series jointly; a p-value is the share of resampled differences from the
    estimate at least as large as the estimate itself (the null recentred at zero), with
    ``BOOTSTRAP_SAMPLES`` samples from ``BOOTSTRAP_SEED``. Not tested below ``min_windows``
    independent h-hour windows, nor when the strategy never changes (never traded).
    """
    count, needed = len(strategy), min_windows * horizon
    if count < needed:
        return SharpeTests(
            math.nan, math.nan,
            f"too few hours to test: {count} hour(s), {count / horizon:.1f} independent "
            f"{horizon}-hour windows; the test needs {min_windows} ({needed} hours)",
        )  # fmt: skip
    if not np.std(strategy) > 0:
        return SharpeTests(math.nan, math.nan, "not tested: the strategy's return never varies")
    if indices is None:
        rng = np.random.default_rng(BOOTSTRAP_SEED)
        indices = stationary_bootstrap(count, horizon, BOOTSTRAP_SAMPLES, rng)
    own, hold_sharpe = _sharpes(strategy[None, :]), _sharpes(hold[None, :])
    # resampled CHUNK samples at a time, for memory
    resampled = np.concatenate(
        [_sharpes(strategy[indices[i : i + CHUNK]]) for i in range(0, len(indices), CHUNK)]
    )
    resampled_hold = np.concatenate(
        [_sharpes(hold[indices[i : i + CHUNK]]) for i in range(0, len(indices), CHUNK)]
    )
    difference = own - hold_sharpe
    resampled_difference = resampled - resampled_hold
    samples = len(indices)
    p_zero = (1 + np.sum(resampled - own >= own)) / (samples + 1)
    p_hold = (1 + np.sum(resampled_difference - difference >= difference)) / (samples + 1)
    return SharpeTests(float(p_zero), float(p_hold), None)


def _sharpes(rows: np.ndarray) -> np.ndarray:
    """Per row, mean / std (unannualised: the tests compare like with like); 0 without spread."""
    spread = rows.std(axis=1, ddof=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(spread > 0, rows.mean(axis=1) / spread, 0.0)


# -- over days -------------------------------------------------------------------------------


def windows_of(days: pd.Series, last_days: int) -> dict[str, pd.Series]:
    """The leaderboard's windows: the last ``last_days`` days (``"30d"``) and ``"all"``, as
    masks over ``days``."""
    latest = days.max()
    return {
        f"{last_days}d": days > latest - timedelta(days=last_days),
        "all": pd.Series(True, index=days.index),
    }


def summarise(backtest: pd.DataFrame, last_days: int = 30) -> pd.DataFrame:
    """Per symbol, model, horizon, rule, sides and costs, over the last ``last_days`` days and
    all days: the strategy's and buy-and-hold's figures, and the bootstrap tests of its Sharpe
    ratio against zero and against buy-and-hold, ``beats_*`` after Bonferroni over the models
    tested for the same symbol, horizon, rule, sides, costs and window."""
    group_keys = ["symbol", "model", "horizon_h", "rule", "sides", "fee_bps", "slippage_bps"]
    backtest = backtest.sort_values("day", ignore_index=True)
    # each hourly series as a (days x 24) array once: per-value Python costs minutes a year
    series = {name: hourly_arrays(backtest, name) for name in SERIES if name != "flat_return"}
    days = backtest["day"].to_numpy()
    rows = []
    bootstrap_cache: dict[tuple[int, int], np.ndarray] = {}
    for window, mask in windows_of(backtest["day"], last_days).items():
        groups = backtest[mask].groupby(group_keys, sort=True).indices
        chosen = np.flatnonzero(mask.to_numpy())
        for key, positions_in_window in groups.items():
            rows_of_group = chosen[positions_in_window]  # in day order: the frame is sorted
            row = dict(zip(group_keys, key, strict=True))
            row["window"] = window
            hourly = {name: values[rows_of_group].ravel() for name, values in series.items()}
            row.update(
                _figures(hourly, days[rows_of_group], int(row["horizon_h"]), bootstrap_cache)
            )
            rows.append(row)
    summary = pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))
    summary["hours"] = summary["hours"].astype("int64")
    summary["test_note"] = summary["test_note"].astype("string")
    for column, p_column in (("beats_zero", "sharpe_p_vs_zero"),
                             ("beats_buy_and_hold", "sharpe_p_vs_hold")):  # fmt: skip
        summary[column] = _bonferroni(summary, p_column, group_keys)
    return summary.sort_values(
        ["symbol", "horizon_h", "rule", "window", "model"], ignore_index=True
    )


def hourly_arrays(backtest: pd.DataFrame, column: str) -> np.ndarray:
    """``column``'s 24-hour lists as a (rows x 24) array, NaN where null."""
    if backtest.empty:
        return np.empty((0, HOURS_PER_DAY))
    return np.array(backtest[column].tolist(), dtype=float)


def _figures(
    hourly: dict[str, np.ndarray],
    days: np.ndarray,
    horizon: int,
    cache: dict[tuple[int, int], np.ndarray],
) -> dict[str, object]:
    strategy, hold = hourly["strategy_return"], hourly["buy_and_hold_return"]
    priced = np.isfinite(strategy) & np.isfinite(hold)
    strategy, hold, position = strategy[priced], hold[priced], hourly["position"][priced]
    count = len(strategy)
    if count and count >= MIN_WINDOWS * horizon:
        if (count, horizon) not in cache:
            rng = np.random.default_rng(BOOTSTRAP_SEED)
            cache[count, horizon] = stationary_bootstrap(count, horizon, BOOTSTRAP_SAMPLES, rng)
        tests = sharpe_tests(strategy, hold, horizon, cache[count, horizon])
    else:
        tests = sharpe_tests(strategy, hold, horizon)
    return {
        "first_hour": pd.Timestamp(days[0]),
        "last_hour": pd.Timestamp(days[-1]) + timedelta(hours=HOURS_PER_DAY - 1),
        "hours": count,
        "total_return": total_return(strategy),
        "sharpe": sharpe(strategy),
        "sortino": sortino(strategy),
        "max_drawdown": max_drawdown(strategy),
        "turnover_per_day": float(np.nansum(hourly["turnover"])) / len(days),
        "hit_rate": hit_rate(position, hold),
        "exposure": float(np.mean(np.abs(position))) if count else math.nan,
        "bh_total_return": total_return(hold),
        "bh_sharpe": sharpe(hold),
        "bh_sortino": sortino(hold),
        "bh_max_drawdown": max_drawdown(hold),
        "sharpe_p_vs_zero": tests.p_vs_zero,
        "sharpe_p_vs_hold": tests.p_vs_hold,
        "test_note": tests.note,
    }


def _bonferroni(summary: pd.DataFrame, p_column: str, group_keys: list[str]) -> pd.Series:
    """Whether each row's p-value is below SIGNIFICANCE / (models tested beside it)."""
    beside = [key for key in group_keys if key != "model"] + ["window"]
    verdict = pd.Series(False, index=summary.index)
    for _, group in summary.groupby(beside, sort=False):
        better = set(significantly_better(dict(zip(group["model"], group[p_column], strict=True))))
        verdict[group.index] = group["model"].isin(better)
    return verdict.astype(bool)


def equity_curves(
    backtest: pd.DataFrame, horizon: int, rule: str, models: Iterable[str] | None = None
) -> dict[str, dict[str, pd.Series]]:
    """Per symbol: each model's equity (start 1) at ``horizon`` under ``rule`` and
    buy-and-hold's, indexed by the hour's end, for the plot."""
    chosen = backtest[(backtest["horizon_h"] == horizon) & (backtest["rule"] == rule)]
    if models is not None:
        chosen = chosen[chosen["model"].isin(list(models))]
    curves: dict[str, dict[str, pd.Series]] = {}
    for (symbol, model), group in chosen.groupby(["symbol", "model"], sort=True):
        group = group.sort_values("day")
        ends = [pd.Timestamp(day) + (hour + 1) * HOUR for day in group["day"]
                for hour in range(HOURS_PER_DAY)]  # fmt: skip
        panel = curves.setdefault(symbol, {})
        for name, column in ((model, "strategy_return"), ("buy and hold", "buy_and_hold_return")):
            returns = np.nan_to_num(hourly_arrays(group, column).ravel())
            panel[name] = pd.Series(np.cumprod(1 + returns), index=pd.DatetimeIndex(ends))
    return curves
