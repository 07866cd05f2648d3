"""Equity curves from the backtest's hourly returns: what one unit of capital became, hour by
hour, for the strategy, buy-and-hold and flat (cash), for the dashboard's plot."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import numpy as np

HOUR = timedelta(hours=1)
HOURS_PER_DAY = 24
CURVES = ("strategy", "buy_and_hold", "flat")


def equity_curves(days: Sequence[tuple[datetime, list, list, list]]) -> dict[str, list]:
    """From each backtested day's 24 hourly (strategy, buy-and-hold, flat) returns, oldest day
    first: ``time`` (the start of the first hour, then each hour's close) and each curve's
    equity there, starting at 1. A missing candle's hour (None) earns nothing, as in the
    summary's figures, so a curve ends at 1 + its total return."""
    if not days:
        return {"time": [], **{name: [] for name in CURVES}}
    time = [days[0][0]] + [
        day + (hour + 1) * HOUR for day, *_ in days for hour in range(HOURS_PER_DAY)
    ]
    curves: dict[str, list] = {"time": time}
    for index, name in enumerate(CURVES, start=1):
        returns = np.array([day[index] for day in days], dtype=float).ravel()
        equity = np.cumprod(1 + np.nan_to_num(returns, nan=0.0))
        curves[name] = [1.0, *equity.tolist()]
    return curves
