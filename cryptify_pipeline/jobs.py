"""Jobs: named selections of assets that schedules, sensors and operators launch.

Each job tags its runs with ``cryptify/job``, the tag ``dagster.yaml``'s run queue limits to
one run in progress per job (the job name itself is not a run tag), and with
``dagster/max_runtime``, the limit run monitoring enforces. A run's own tags override both, so
``cryptify run train_job --timeout 7200`` gives one run two hours.

Where the steps run is CRYPTIFY_EXECUTOR's choice (``executors.py``): by default in the run's
own process.
"""

from dagster import AssetSelection, define_asset_job
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition
from dagster._core.storage.tags import MAX_RUNTIME_SECONDS_TAG

from cryptify_pipeline.executors import job_executor
from cryptify_pipeline.settings import get_settings

JOB_TAG = "cryptify/job"

# The old system's per-script timeouts, in seconds.
MAX_RUNTIME_SECONDS = {
    "collect_job": 1800,
    "train_job": 3600,
    "predict_job": 300,
    "evaluate_job": 600,
}


EXECUTOR = job_executor(get_settings())


def _job(name: str, assets: list[str], description: str) -> UnresolvedAssetJobDefinition:
    return define_asset_job(
        name,
        selection=AssetSelection.assets(*assets),
        executor_def=EXECUTOR,
        tags={JOB_TAG: name, MAX_RUNTIME_SECONDS_TAG: str(MAX_RUNTIME_SECONDS[name])},
        description=description,
    )


collect_job = _job(
    "collect_job",
    ["candles", "features"],
    "Collect the closed hourly candles of every configured symbol and compute their features.",
)
train_job = _job(
    "train_job",
    ["models"],
    "Train every model of the zoo per symbol and horizon through the end of a day.",
)
predict_job = _job(
    "predict_job",
    ["predictions"],
    "Forecast 6h, 12h and 24h log returns with intervals at each hour, with the previous "
    "day's models.",
)
evaluate_job = _job(
    "evaluate_job",
    ["forecast_metrics", "leaderboard"],
    "Score a day's forecasts once the day after has closed, and refresh the leaderboard.",
)

ALL_JOBS = [collect_job, train_job, predict_job, evaluate_job]
