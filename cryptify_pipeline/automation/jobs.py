"""Jobs: named selections of assets that schedules, sensors and operators launch.

Each job tags its runs with ``cryptify/job``, the tag ``dagster.yaml``'s run queue limits to
one run in progress per job (the job name itself is not a run tag), and with
``dagster/max_runtime``, the limit run monitoring enforces. A run's own tags override both, so
``cryptify run train_job --timeout 7200`` gives one run two hours.

Where the steps run is CRYPTIFY_EXECUTOR's choice (``executors.py``): by default in the run's
own process.
"""

from __future__ import annotations

from dataclasses import dataclass

from dagster import AssetSelection, ExecutorDefinition, define_asset_job
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

from cryptify_pipeline.market.context import COLLECTED_TABLES
from cryptify_pipeline.run_tags import JOB_TAG, MAX_RUNTIME_SECONDS_TAG

# The old system's per-script timeouts, in seconds.
MAX_RUNTIME_SECONDS = {
    "collect_job": 1800,
    "train_job": 3600,
    "predict_job": 300,
    "evaluate_job": 600,
}


@dataclass(frozen=True)
class Jobs:
    collect: UnresolvedAssetJobDefinition
    train: UnresolvedAssetJobDefinition
    predict: UnresolvedAssetJobDefinition
    evaluate: UnresolvedAssetJobDefinition

    @property
    def all(self) -> list[UnresolvedAssetJobDefinition]:
        return [self.collect, self.train, self.predict, self.evaluate]


def build_jobs(executor: ExecutorDefinition) -> Jobs:
    def job(name: str, assets: list[str], description: str) -> UnresolvedAssetJobDefinition:
        return define_asset_job(
            name,
            selection=AssetSelection.assets(*assets),
            executor_def=executor,
            tags={JOB_TAG: name, MAX_RUNTIME_SECONDS_TAG: str(MAX_RUNTIME_SECONDS[name])},
            description=description,
        )

    return Jobs(
        collect=job(
            "collect_job",
            [*COLLECTED_TABLES, "features"],
            "Collect the closed hourly candles of every configured symbol and the market context "
            "(open interest, funding, equity indexes; a context source failing is a warning), "
            "and compute their features.",
        ),
        train=job(
            "train_job",
            ["models"],
            "Train every model of the zoo per symbol and horizon through the end of a day.",
        ),
        predict=job(
            "predict_job",
            ["predictions"],
            "Forecast 6h, 12h and 24h log returns with intervals at each hour, with the "
            "previous day's models.",
        ),
        evaluate=job(
            "evaluate_job",
            ["forecast_metrics", "leaderboard", "backtest", "backtest_summary"],
            "Score a day's forecasts once the day after has closed, and refresh the leaderboard; "
            "backtest the day's hours on the forecasts and refresh the backtest summary.",
        ),
    )
