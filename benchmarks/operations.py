"""Operations through a live webserver and daemon, the way production runs.

1. Hourly tick latency: from launching ``collect_job`` for one hour (3 symbols) to that hour's
   forecasts being in Postgres. The ``forecast_after_collect`` sensor starts ``predict_job``;
   both runs go through the run queue, each in its own process, as scheduled runs do.
2. A 90-day backfill (2,160 hourly partitions, 3 symbols) of what ``collect_job`` writes
   (candles, the market context, features) + predictions
   as one asset backfill with the single-run policies, against one run per partition: a sample
   of hours run the production way (a ``collect_job`` run per hour, each followed by its
   ``predict_job`` run), extrapolated linearly to 2,160 hours.

Models are trained beforehand in this process (not timed) with four cheap models, so that the
backfill has a model for every day; the sample and the backfill use the same models.

    python -m benchmarks.operations
"""

import tempfile
import time
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg2
from dagster import DagsterInstance, materialize

from benchmarks._common import bench_definitions, report, sql
from cryptify_pipeline.market.context import COLLECTED_TABLES
from cryptify_pipeline.run_tags import range_tags
from cryptify_pipeline_tests.support.live_deployment import live_deployment
from cryptify_pipeline_tests.support.pipeline import MODEL_SIGNING_KEY

NOW = datetime.now(UTC)
LAST_HOUR = NOW.replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
START = (LAST_HOUR - timedelta(days=130)).replace(hour=0)
SCHEMA = "bench_operations"
# the deployment's settings, for the webserver and daemon and for the preparation here
SETTINGS = {
    "CRYPTIFY_START": START.strftime("%Y-%m-%dT%H:00Z"),
    "CRYPTIFY_SCHEMA": SCHEMA,
    "CRYPTIFY_SYMBOLS": "BTC/USDT,ETH/USDT,SOL/USDT",
    "CRYPTIFY_SOURCE": "sample",
    "CRYPTIFY_AUTOMATION": "off",  # only the forecast sensor is started, below
    # the key the models are signed with here (the tests' key): the deployment must share it
    "CRYPTIFY_MODEL_SIGNING_KEY": MODEL_SIGNING_KEY.hex(),
}
PIPELINE = bench_definitions(SCHEMA, **SETTINGS)

warnings.filterwarnings("ignore")
HOUR = timedelta(hours=1)
KEY = "%Y-%m-%d-%H:%M"
TICKS = 3
SAMPLE_HOURS = 6
BACKFILL_DAYS = 90
# features begin 320 hours after the start; the first models then need 14 days of them
BACKFILL_FIRST = START + timedelta(days=30)
BACKFILL_LAST = BACKFILL_FIRST + timedelta(days=BACKFILL_DAYS) - HOUR
CHEAP_MODELS = {"models": ["zero_return", "drift", "linear", "ridge"], "training_days": 14}
# what collect_job writes: features read the market context beside the candles
COLLECTED = [*COLLECTED_TABLES, "features"]


def prepare(instance: DagsterInstance) -> None:
    """Candles, context and features up to the tick hours, models for every day that needs
    them."""
    resources = PIPELINE.resources
    assets = [PIPELINE.get_assets_def(name) for name in (*COLLECTED, "models")]
    first_tick = LAST_HOUR - (TICKS - 1) * HOUR

    def tags(first: datetime, last: datetime, fmt: str = KEY) -> dict[str, str]:
        return range_tags(first.strftime(fmt), last.strftime(fmt))

    began = time.perf_counter()
    assert materialize(
        assets, instance=instance, resources=resources, selection=COLLECTED,
        tags=tags(START, first_tick - HOUR),
    ).success  # fmt: skip
    config = {"ops": {"models": {"config": CHEAP_MODELS}}}
    today = LAST_HOUR.replace(hour=0)
    for first, last in [
        (BACKFILL_FIRST - timedelta(days=1), BACKFILL_LAST),
        (today - timedelta(days=2), today - timedelta(days=1)),
    ]:
        assert materialize(
            assets, instance=instance, resources=resources, run_config=config,
            selection=["models"],
            tags=tags(first, last, "%Y-%m-%d"),
        ).success  # fmt: skip
    print(f"prepared in {time.perf_counter() - began:.0f} s", flush=True)


def predictions_at(hour: datetime, schema: str = SCHEMA) -> int:
    return sql(f"SELECT count(*) FROM {schema}.predictions WHERE ts = %s", (hour,))[0][0]


def wait_for_predictions(
    hours: list[datetime], timeout: float = 600, schema: str = SCHEMA
) -> float:
    """When every one of ``hours`` has forecasts in ``schema`` (a perf_counter reading)."""
    began = time.perf_counter()
    pending = list(hours)
    while pending:
        if time.perf_counter() - began > timeout:
            raise RuntimeError(f"no predictions for {pending[0]} after {timeout} s")
        pending = [hour for hour in pending if _no_predictions(hour, schema)]
        time.sleep(0.1)
    return time.perf_counter()


def _no_predictions(hour: datetime, schema: str) -> bool:
    try:
        return predictions_at(hour, schema) == 0
    except psycopg2.errors.UndefinedTable:  # no forecast has been written yet
        return True


def drop_schemas() -> None:
    sql(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE; DROP SCHEMA IF EXISTS {SCHEMA}_dagster CASCADE")


def main() -> None:
    drop_schemas()
    with tempfile.TemporaryDirectory() as directory:
        home = Path(directory)
        with live_deployment(home, f"{SCHEMA}_dagster", SETTINGS) as live:
            with live.instance() as instance:
                prepare(instance)
            live.client.start_sensor("forecast_after_collect")
            results: dict[str, float] = {}

            latencies = []
            for hour in [LAST_HOUR - (TICKS - 1 - i) * HOUR for i in range(TICKS)]:
                launched = time.perf_counter()
                live.client.launch_run("collect_job", partition=hour.strftime(KEY))
                latencies.append(wait_for_predictions([hour]) - launched)
                print(f"tick {hour:%H:%M}: {latencies[-1]:.1f} s", flush=True)
            results["tick_latency_s_median"] = round(sorted(latencies)[len(latencies) // 2], 1)
            results["tick_latency_s_max"] = round(max(latencies), 1)

            sample = [BACKFILL_FIRST + timedelta(days=45) + i * HOUR for i in range(SAMPLE_HOURS)]
            launched = time.perf_counter()
            for hour in sample:
                live.client.launch_run("collect_job", partition=hour.strftime(KEY))
            # each hour two runs one after the other; on a loaded machine minutes each
            per_hour = (wait_for_predictions(sample, 300 * SAMPLE_HOURS) - launched) / SAMPLE_HOURS
            hours = BACKFILL_DAYS * 24
            results["per_partition_runs_s_per_hour"] = round(per_hour, 2)
            results["per_partition_runs_90_days_s_extrapolated"] = round(per_hour * hours)
            print(f"one run per partition: {per_hour:.1f} s per hour", flush=True)

            launched = time.perf_counter()
            backfill_id = live.client.launch_backfill(
                # the jobs, not their six assets: the backfill's title (names and range) must stay
                # within Dagster's 100 characters
                ["collect_job", "predict_job"],
                BACKFILL_FIRST.strftime(KEY),
                BACKFILL_LAST.strftime(KEY),
            )
            while (status := live.client.backfill_status(backfill_id)) == "REQUESTED":
                time.sleep(0.5)
            wall = time.perf_counter() - launched
            if status != "COMPLETED_SUCCESS":
                raise RuntimeError(f"backfill ended {status}")
            runs = [r for r in live.client.runs(limit=100) if r.tags.get("dagster/backfill")
                    == backfill_id]  # fmt: skip
            forecasts = sql(
                f"SELECT count(*), count(DISTINCT ts) FROM {SCHEMA}.predictions"
                " WHERE ts BETWEEN %s AND %s",
                (BACKFILL_FIRST, BACKFILL_LAST),
            )[0]
            results["backfill_90_days_s"] = round(wall, 1)
            results["backfill_runs"] = len(runs)
            results["backfill_forecast_rows"] = forecasts[0]
            results["backfill_hours_forecast"] = forecasts[1]
            results["backfill_speedup_vs_per_partition"] = round(per_hour * hours / wall, 1)
    drop_schemas()
    report("operations", results)


if __name__ == "__main__":
    main()
