"""Freshness policies: how old the newest materialisation of an asset the forecasts depend on
may be before the asset is stale.

Dagster's freshness daemon evaluates them on its own clock (every 30 s), outside any run, and
records each change of state as an event; the UI shows the state on the asset's page, and the
``freshness_alerts`` sensor posts the changes to the webhook. So a collection that stopped
(schedule off, every run hanging or failing) turns the assets stale without any run noticing.
"""

from collections.abc import Sequence
from datetime import timedelta

from dagster import AssetsDefinition, FreshnessPolicy

from cryptify_pipeline.hours import DAY

HOURLY = ("candles", "features", "predictions")
DAILY = ("forecast_metrics",)  # scored once a day, for the day before yesterday


def freshness_windows(hourly_minutes: int) -> dict[str, timedelta]:
    """Asset name -> its fail window: ``hourly_minutes`` for the hourly assets, a day more for
    the daily scores."""
    hourly = timedelta(minutes=hourly_minutes)
    return {**dict.fromkeys(HOURLY, hourly), **dict.fromkeys(DAILY, DAY + hourly)}


def with_freshness(
    assets: Sequence[AssetsDefinition], hourly_minutes: int
) -> list[AssetsDefinition]:
    """``assets`` with the freshness policies of ``freshness_windows`` set on theirs."""
    windows = freshness_windows(hourly_minutes)

    def apply(asset: AssetsDefinition) -> AssetsDefinition:
        if not any(key.to_user_string() in windows for key in asset.keys):
            return asset
        return asset.map_asset_specs(
            lambda spec: (
                spec.replace_attributes(
                    freshness_policy=FreshnessPolicy.time_window(
                        fail_window=windows[spec.key.to_user_string()]
                    )
                )
                if spec.key.to_user_string() in windows
                else spec
            )
        )

    return [apply(asset) for asset in assets]
