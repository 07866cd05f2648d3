"""Declarative automation: the repairs Dagster's automation conditions express exactly.

``predictions`` carries ``forecast_repair``: an hour of the last ``CRYPTIFY_GAP_REPAIR_DAYS``
days, other than the newest (``forecast_after_collect`` forecasts that one seconds after its
collection), that has no forecasts while its features and the previous day's models exist and
nothing it reads is being written, and whose last attempt did not fail (most failures of
``predictions`` are not transient: a model that does not verify, features that lack a column;
trying again every 10 minutes would only repeat the failure alert) unless its inputs have been
written since. Its own sensor (``sensors.forecast_repair_sensor``) launches
the runs with ``predict_job``'s tags, so they wait in that job's queue and keep its time limit.
The other repairs stay sensors (see their docstrings in ``sensors.py``).
"""

from collections.abc import Sequence
from datetime import timedelta

from dagster import AssetsDefinition, AutomationCondition

REPAIRED_FORECASTS = "predictions"


def forecast_repair(repair_days: int) -> AutomationCondition:
    """True for the hours of the last ``repair_days`` days but the newest that have no
    forecasts, whose inputs are all there and none is in progress, and whose last attempt did
    not fail unless an input was written since."""
    return (
        (
            AutomationCondition.in_latest_time_window(timedelta(days=repair_days))
            & ~AutomationCondition.in_latest_time_window()
        ).with_label(f"closed hour of the last {repair_days} days but the newest")
        & AutomationCondition.missing()
        & ~AutomationCondition.any_deps_missing()
        & ~AutomationCondition.any_deps_in_progress()
        & ~AutomationCondition.in_progress()
        & (
            ~AutomationCondition.execution_failed() | AutomationCondition.any_deps_updated()
        ).with_label("not failed, or an input written since")
    ).with_label("forecast_repair")


def with_repair_conditions(
    assets: Sequence[AssetsDefinition], repair_days: int
) -> list[AssetsDefinition]:
    """``assets`` with ``forecast_repair`` set on ``predictions``."""

    def apply(asset: AssetsDefinition) -> AssetsDefinition:
        if not any(key.to_user_string() == REPAIRED_FORECASTS for key in asset.keys):
            return asset
        return asset.map_asset_specs(
            lambda spec: (
                spec.replace_attributes(automation_condition=forecast_repair(repair_days))
                if spec.key.to_user_string() == REPAIRED_FORECASTS
                else spec
            )
        )

    return [apply(asset) for asset in assets]
