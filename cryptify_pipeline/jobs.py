"""Jobs: named selections of assets that schedules, sensors and operators launch."""

from dagster import AssetSelection, define_asset_job

from cryptify_pipeline.partitions import hourly_partitions

heartbeat_job = define_asset_job(
    "heartbeat_job",
    selection=AssetSelection.assets("pipeline_heartbeat"),
    partitions_def=hourly_partitions,
    tags={"cryptify/job": "heartbeat_job"},
)
