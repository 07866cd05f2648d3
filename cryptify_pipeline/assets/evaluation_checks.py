"""The asset check on ``forecast_metrics``: a model significantly worse than the zero forecast.

A model that has gone bad (a broken feature, a market it no longer fits) shows as a failed
check on the asset in the UI, after each scoring, before anyone reads the leaderboard. Over the
recent scored days, per symbol and horizon, each model's hourly loss differentials against the
zero forecast get the corrected Diebold-Mariano test (``ml/significance.py``, as the leaderboard
computes it); a model is worse when the one-sided p-value of "worse" is below 5% divided by the
models tested (Bonferroni).
"""

from collections.abc import Sequence
from datetime import timedelta

import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    AssetKey,
    MetadataValue,
    asset_check,
)

from cryptify_pipeline.ml.models import ZERO_RETURN
from cryptify_pipeline.ml.scoring import rank_models
from cryptify_pipeline.ml.significance import significantly_worse
from cryptify_pipeline.resources import PostgresDatabase

FORECAST_METRICS = AssetKey("forecast_metrics")
RECENT_DAYS = 30  # as the leaderboard's recent window


def worse_than_zero(metrics: pd.DataFrame, recent_days: int = RECENT_DAYS) -> pd.DataFrame:
    """The models significantly worse than zero over the last ``recent_days`` scored days, per
    symbol and horizon, with their test: symbol, horizon_h, model, n, skill_vs_zero, dm_stat,
    p_worse."""
    board = rank_models(metrics, last_days=recent_days)
    board = board[(board["window"] == f"{recent_days}d") & (board["model"] != ZERO_RETURN)]
    found = []
    for _, group in board.groupby(["symbol", "horizon_h"], sort=True):
        worse = significantly_worse(dict(zip(group["model"], group["dm_p_value"], strict=True)))
        found.append(group[group["model"].isin(worse)])
    columns = ["symbol", "horizon_h", "model", "n", "skill_vs_zero", "dm_stat", "dm_p_value"]
    if not found:
        return pd.DataFrame(columns=[*columns[:-1], "p_worse"])
    rows = pd.concat(found, ignore_index=True)[columns]
    return rows.assign(p_worse=1 - rows.pop("dm_p_value"))


def evaluation_checks() -> Sequence[AssetChecksDefinition]:
    @asset_check(
        asset=FORECAST_METRICS,
        description=(
            f"No model is significantly worse than the zero forecast over the last {RECENT_DAYS} "
            "scored days (Diebold-Mariano on squared errors, one-sided, Bonferroni over the "
            "models of a symbol and horizon)."
        ),
    )
    def models_not_worse_than_zero(database: PostgresDatabase) -> AssetCheckResult:
        newest = database.latest_ts("forecast_metrics", time_column="day")
        if newest is None:
            return AssetCheckResult(passed=True, metadata={"scored_days": 0})
        start = pd.Timestamp(newest) - timedelta(days=RECENT_DAYS - 1)
        metrics = database.read_time_range(
            "forecast_metrics", start.to_pydatetime(),
            (pd.Timestamp(newest) + timedelta(days=1)).to_pydatetime(), time_column="day",
        )  # fmt: skip
        worse = worse_than_zero(metrics)
        return AssetCheckResult(
            passed=worse.empty,
            severity=AssetCheckSeverity.WARN,
            metadata={
                "window": f"{start:%Y-%m-%d} to {pd.Timestamp(newest):%Y-%m-%d}",
                "scored_days": int(metrics["day"].nunique()),
                "worse_models": len(worse),
                "worse": MetadataValue.md(
                    worse.to_markdown(index=False, floatfmt=".4g") if len(worse) else "None."
                ),
            },
        )

    return [models_not_worse_than_zero]
