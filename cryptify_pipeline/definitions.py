"""The code location: every asset, job and resource of the pipeline."""

from dagster import Definitions, load_assets_from_modules

from cryptify_pipeline.assets import heartbeat
from cryptify_pipeline.jobs import heartbeat_job
from cryptify_pipeline.resources import build_resources

defs = Definitions(
    assets=load_assets_from_modules([heartbeat]),
    jobs=[heartbeat_job],
    resources=build_resources(),
)
