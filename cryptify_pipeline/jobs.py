"""Jobs: named selections of assets that schedules, sensors and operators launch.

Each job tags its runs with ``cryptify/job``, the tag ``dagster.yaml``'s run queue limits to
one run in progress per job (the job name itself is not a run tag).
"""

from dagster import AssetSelection, define_asset_job

from cryptify_pipeline.partitions import hourly_partitions

JOB_TAG = "cryptify/job"

collect_job = define_asset_job(
    "collect_job",
    selection=AssetSelection.assets("candles"),
    partitions_def=hourly_partitions,
    tags={JOB_TAG: "collect_job"},
    description="Collect the closed hourly candles of every configured symbol.",
)
