"""Thin Dagster glue, one module per stage: what depends on what. Each module builds its assets
on the deployment's partitions (``build_assets``)."""

import warnings

from dagster import AssetChecksDefinition, AssetsDefinition, BetaWarning

from cryptify_pipeline.assets.backtest import backtest_assets
from cryptify_pipeline.assets.candle_checks import candle_checks
from cryptify_pipeline.assets.candles import candles_asset
from cryptify_pipeline.assets.context import context_assets
from cryptify_pipeline.assets.context_checks import context_checks
from cryptify_pipeline.assets.evaluation import evaluation_assets
from cryptify_pipeline.assets.evaluation_checks import evaluation_checks
from cryptify_pipeline.assets.features import features_asset
from cryptify_pipeline.assets.freshness import with_freshness
from cryptify_pipeline.assets.models import models_asset
from cryptify_pipeline.assets.predictions import predictions_asset
from cryptify_pipeline.partitions import Partitions
from cryptify_pipeline.settings import DEFAULT_FRESHNESS_MINUTES, DEFAULT_INTERVAL_LEVEL

# The hourly and daily assets' BackfillPolicy.single_run() is what makes a backfill one run per
# range (the bootstrap's, the gap repair's); Dagster marks the parameter beta and warns once per
# asset in every process that loads the definitions. Dagster is pinned exactly (pyproject.toml),
# so a change to the parameter arrives with an upgrade we test, not silently.
warnings.filterwarnings(
    "ignore", message="Parameter `backfill_policy` of function `asset`", category=BetaWarning
)


def build_assets(
    partitions: Partitions,
    interval_level: float = DEFAULT_INTERVAL_LEVEL,
    freshness_minutes: int = DEFAULT_FRESHNESS_MINUTES,
) -> list[AssetsDefinition]:
    """Every asset, candles through leaderboard and backtest; ``interval_level`` labels the
    forecasts, ``freshness_minutes`` is the hourly assets' freshness window."""
    assets = [
        candles_asset(partitions),
        *context_assets(partitions),
        features_asset(partitions),
        models_asset(partitions, interval_level),
        predictions_asset(partitions, interval_level),
        *evaluation_assets(partitions, interval_level),
        *backtest_assets(partitions),
    ]
    return with_freshness(assets, freshness_minutes)


def build_asset_checks(partitions: Partitions) -> list[AssetChecksDefinition]:
    return [*candle_checks(partitions), *context_checks(partitions), *evaluation_checks()]
