"""The code location: every asset, check, job, schedule, sensor and resource of the pipeline."""

from dagster import Definitions, load_asset_checks_from_modules, load_assets_from_modules

from cryptify_pipeline import checks
from cryptify_pipeline.assets import evaluation, features, market, models, predictions
from cryptify_pipeline.jobs import ALL_JOBS
from cryptify_pipeline.resources import build_resources
from cryptify_pipeline.schedules import ALL_SCHEDULES
from cryptify_pipeline.sensors import (
    automation_conditions,
    candle_gap_repair,
    forecast_after_collect,
    record_run_failures,
)

defs = Definitions(
    assets=load_assets_from_modules([market, features, models, predictions, evaluation]),
    asset_checks=load_asset_checks_from_modules([checks]),
    jobs=ALL_JOBS,
    schedules=ALL_SCHEDULES,
    sensors=[forecast_after_collect, candle_gap_repair, record_run_failures, automation_conditions],
    resources=build_resources(),
)
