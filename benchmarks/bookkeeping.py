"""What a wide single-run backfill costs in Dagster's bookkeeping, and how much of it is ours.

One year of hourly partitions (8,760) for 3 symbols of the sample market. Each stage is one
single-run backfill in a process of its own on a fresh Postgres-backed instance:
- ``features``: the pipeline's ``features`` asset (candles written beforehand, not timed);
- ``noop``: an hourly asset that computes and stores nothing, over the same hours: Dagster's own
  floor (a planned and a recorded materialisation per partition, with no metadata of ours).
For each: wall time, the run process's CPU time, and what the run stored in the event log
(rows and bytes per event type). Prints the numbers, writes benchmarks/results/bookkeeping.json.

    python -m benchmarks.bookkeeping
"""

import argparse
import json
import resource
import subprocess
import sys
import time
import warnings
from datetime import UTC, datetime, timedelta

from dagster import BackfillPolicy, MaterializeResult, asset, materialize

from benchmarks._common import SCHEMA as INSTANCE_SCHEMA
from benchmarks._common import bench_definitions, postgres_instance, report, sql
from cryptify_pipeline.run_tags import range_tags
from cryptify_pipeline_tests.support.database import suite_database_url

warnings.filterwarnings("ignore")
SCHEMA = "bench_bookkeeping"
SYMBOLS = "BTC/USDT,ETH/USDT,SOL/USDT"
HOURS = 8_760
KEY = "%Y-%m-%d-%H:%M"


def hours() -> tuple[datetime, datetime]:
    last = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
    return last - timedelta(hours=HOURS - 1), last


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_stage(stage: str) -> dict[str, float]:
    first, last = hours()
    pipeline = bench_definitions(
        SCHEMA, CRYPTIFY_START=f"{first:%Y-%m-%d}", CRYPTIFY_SYMBOLS=SYMBOLS,
        CRYPTIFY_SOURCE="sample",
    )  # fmt: skip
    partitions = pipeline.get_assets_def("candles").partitions_def

    @asset(partitions_def=partitions, backfill_policy=BackfillPolicy.single_run())
    def noop() -> MaterializeResult:
        return MaterializeResult()

    assets = [*(pipeline.assets or []), noop]
    tags = range_tags(f"{first:{KEY}}", f"{last:{KEY}}")
    with postgres_instance() as instance:
        if stage == "features":  # its input, not timed
            materialize(assets, selection=["candles"], instance=instance,
                        resources=pipeline.resources, tags=tags)  # fmt: skip
        started, cpu = time.perf_counter(), cpu_seconds()
        result = materialize(
            assets, selection=[stage], instance=instance, resources=pipeline.resources, tags=tags
        )
        numbers = {"seconds": time.perf_counter() - started, "cpu_seconds": cpu_seconds() - cpu}
        assert result.success, stage
        for event_type, rows, size in sql(
            f"SELECT dagster_event_type, count(*), sum(octet_length(event))"
            f" FROM {INSTANCE_SCHEMA}.event_logs WHERE run_id = %s GROUP BY 1",
            (result.run_id,),
        ):
            if event_type in ("ASSET_MATERIALIZATION", "ASSET_MATERIALIZATION_PLANNED"):
                name = event_type.lower().removeprefix("asset_")
                numbers[f"{name}_events"] = rows
                numbers[f"{name}_mb"] = round(int(size) / 1e6, 1)
    return numbers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", help="internal: run one stage and print its numbers")
    args = parser.parse_args()
    if args.stage:
        print(json.dumps(run_stage(args.stage)))
        return
    print(f"{HOURS:,} hourly partitions, {SYMBOLS}, against {suite_database_url()}")
    results: dict[str, float] = {"partitions": HOURS}
    for stage in ("features", "noop"):
        output = subprocess.run(
            [sys.executable, "-m", "benchmarks.bookkeeping", "--stage", stage],
            check=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        ).stdout  # fmt: skip
        for key, value in json.loads(output.strip().splitlines()[-1]).items():
            results[f"{stage}_{key}"] = round(value, 2) if isinstance(value, float) else value
    for stage in ("features", "noop"):
        per = results[f"{stage}_seconds"] / HOURS * 1000
        results[f"{stage}_ms_per_partition"] = round(per, 2)
    sql(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
    report("bookkeeping", results)


if __name__ == "__main__":
    main()
