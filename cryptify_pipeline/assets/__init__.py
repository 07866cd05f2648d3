"""Thin Dagster glue, one module per stage: what depends on what. Each module builds its assets
on the deployment's partitions (``build_assets``)."""

from dagster import AssetChecksDefinition, AssetsDefinition

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


def build_assets(
    partitions: Partitions,
    interval_level: float = DEFAULT_INTERVAL_LEVEL,
    freshness_minutes: int = DEFAULT_FRESHNESS_MINUTES,
) -> list[AssetsDefinition]:
    """Every asset, candles through leaderboard; ``interval_level`` labels the forecasts,
    ``freshness_minutes`` is the hourly assets' freshness window."""
    assets = [
        candles_asset(partitions),
        *context_assets(partitions),
        features_asset(partitions),
        models_asset(partitions, interval_level),
        predictions_asset(partitions, interval_level),
        *evaluation_assets(partitions, interval_level),
    ]
    return with_freshness(assets, freshness_minutes)


def build_asset_checks(partitions: Partitions) -> list[AssetChecksDefinition]:
    return [*candle_checks(partitions), *context_checks(partitions), *evaluation_checks()]
