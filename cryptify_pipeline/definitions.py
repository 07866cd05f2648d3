"""The code location: every asset, check, job, schedule, sensor and resource of the pipeline."""

from dagster import Definitions, load_asset_checks_from_modules, load_assets_from_modules

from cryptify_pipeline import checks
from cryptify_pipeline.assets import evaluation, features, market, models, predictions
from cryptify_pipeline.jobs import collect_job
from cryptify_pipeline.resources import build_resources
from cryptify_pipeline.schedules import collect_schedule
from cryptify_pipeline.sensors import automation_conditions, candle_gap_repair

defs = Definitions(
    assets=load_assets_from_modules([market, features, models, predictions, evaluation]),
    asset_checks=load_asset_checks_from_modules([checks]),
    jobs=[collect_job],
    schedules=[collect_schedule],
    sensors=[candle_gap_repair, automation_conditions],
    resources=build_resources(),
)
