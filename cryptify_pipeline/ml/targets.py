"""Targets and the purge: what a model may learn from at a cut-off."""

from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from cryptify_pipeline.hours import HOUR

HORIZONS = (6, 12, 24)


def with_targets(features: pd.DataFrame, horizons=HORIZONS) -> pd.DataFrame:
    """Adds ``target_<h>h = log(close[t + h] / close[t])``: NaN where either candle is missing."""
    closes = features.set_index(["symbol", "ts"])["close"]
    result = features.copy()
    for horizon in horizons:
        later = pd.MultiIndex.from_arrays(
            [features["symbol"], features["ts"] + timedelta(hours=horizon)]
        )
        future_close = closes.reindex(later).to_numpy()
        result[f"target_{horizon}h"] = np.log(future_close / features["close"].to_numpy())
    return result


def scored_against(day: datetime, horizons=HORIZONS) -> tuple[datetime, datetime]:
    """The first and last candle hour that forecasts made on ``day`` are scored against: the
    target candle of a forecast at t is the one opening at t + h."""
    return day + timedelta(hours=min(horizons)), day + timedelta(hours=23 + max(horizons))


def last_known_target_ts(cutoff: datetime, horizon: int) -> datetime:
    """The newest row whose target is known at ``cutoff``: its candle t + h closed by then."""
    return cutoff - timedelta(hours=horizon) - HOUR


def purge(rows: pd.DataFrame, horizon: int, cutoff: datetime) -> pd.DataFrame:
    """Rows whose target is fully known at ``cutoff``, with a target."""
    known = rows["ts"] <= last_known_target_ts(cutoff, horizon)
    return rows[known & rows[f"target_{horizon}h"].notna()]
