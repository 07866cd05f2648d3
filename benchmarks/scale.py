"""The pipeline at a desk's scale: 50 symbols of the sample market from a start four years back.

Stages, each a real Dagster run in a process of its own (so its peak RSS is its own) on one
Postgres-backed instance that they share:
- ``backfill``: candles and features over every hour since the start, as ONE single-run
  backfill (both assets have ``BackfillPolicy.single_run()``), with the checks on candles;
- ``train``: one ``models`` partition with the default config (every model, every horizon,
  the 180-day window), for the day D - 1;
- ``predict``: one hour of ``predictions`` (the last hour of day D, with D - 1's models);
- ``score``: one day of ``forecast_metrics``, day D (D + 1 is the last closed day). Scoring
  needs the forecasts of every hour of D: the other 23 are made beforehand, not timed.

Wall time (of the run, imports and definitions excluded) and peak RSS per stage go to
benchmarks/results/scale.json; the load average beside them, as the machine may be shared.

    python -m benchmarks.scale                        # 50 symbols, 4 years
    python -m benchmarks.scale --symbols 3 --years 0.2  # a quick run while developing
    CRYPTIFY_TRAINING_JOBS=2 python -m benchmarks.scale  # training on both cores
"""

import argparse
import json
import os
import resource
import tempfile
import time
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

from dagster import DagsterInstance, materialize

from benchmarks._common import (
    bench_definitions,
    drop_schema,
    report,
    run_stage,
    write_instance_config,
)
from cryptify_pipeline.run_tags import range_tags
from cryptify_pipeline_tests.support.database import suite_database_url

warnings.filterwarnings("ignore")
DEFAULT_SYMBOLS, DEFAULT_YEARS = 50, 4.0
# the ten with known profiles first, then forty more (each gets a level from its name)
BASES = (
    "BTC ETH SOL BNB XRP DOGE ADA AVAX LINK LTC DOT TRX MATIC SHIB UNI ATOM XLM ETC FIL APT "
    "ARB OP NEAR ICP HBAR VET INJ SUI SEI TIA AAVE MKR GRT ALGO SAND MANA AXS EGLD FTM THETA "
    "RUNE KAVA CRV LDO SNX COMP ZEC DASH NEO EOS"
).split()
HOURLY, DAILY = "%Y-%m-%d-%H:%M", "%Y-%m-%d"


def symbols_setting(count: int) -> str:
    """CRYPTIFY_SYMBOLS for the first ``count`` sample bases against USDT."""
    if not 1 <= count <= len(BASES):
        raise SystemExit(f"--symbols must be 1-{len(BASES)}")
    return ",".join(f"{base}/USDT" for base in BASES[:count])


def plan(symbols: int, years: float, now: datetime) -> dict[str, object]:
    """What each stage runs: the settings and the partition keys, fixed once for all stages."""
    last_closed = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    # D + 1 is the last whole day that has closed, so day D can be scored now
    score_day = now.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=2)
    start = (last_closed - timedelta(days=round(years * 365.25))).replace(hour=0)
    if start > score_day - timedelta(days=30):
        raise SystemExit("--years leaves less than the 30 days of history training needs")
    return {
        "start": f"{start:{DAILY}}",
        "symbols": symbols_setting(symbols),
        "first_hour": f"{start:{HOURLY}}",
        "last_hour": f"{last_closed:{HOURLY}}",
        "model_day": f"{score_day - timedelta(days=1):{DAILY}}",
        "score_day": f"{score_day:{DAILY}}",
        "first_score_hour": f"{score_day:{HOURLY}}",
        "predict_hour": f"{score_day + timedelta(hours=23):{HOURLY}}",
        "hours": int((last_closed - start) / timedelta(hours=1)) + 1,
    }


def run_name(symbols: int, years: float) -> str:
    """``scale`` at the full size; a smaller run has its own results file and schemas, so that
    it can run beside the full one."""
    if (symbols, years) == (DEFAULT_SYMBOLS, DEFAULT_YEARS):
        return "scale"
    return f"scale_{symbols}x{years:g}y".replace(".", "_")


def stage_run(stage: str, home: str, settings: dict) -> dict[str, float]:
    """Runs one stage in this process; its wall time, peak RSS and what it wrote."""
    pipeline = bench_definitions(
        f"bench_{settings['name']}", CRYPTIFY_START=settings["start"],
        CRYPTIFY_SYMBOLS=settings["symbols"], CRYPTIFY_SOURCE="sample",
    )  # fmt: skip
    selection, tags, partition = {
        "backfill": (
            ["candles", "features"],
            range_tags(settings["first_hour"], settings["last_hour"]),
            None,
        ),
        "train": (["models"], {}, settings["model_day"]),
        "predict": (["predictions"], {}, settings["predict_hour"]),
        # the forecasts of day D but its last hour, which ``predict`` makes; not timed
        "predict_rest": (
            ["predictions"],
            range_tags(settings["first_score_hour"], _before(settings["predict_hour"])),
            None,
        ),
        "score": (["forecast_metrics"], {}, settings["score_day"]),
    }[stage]
    with DagsterInstance.from_config(home) as instance:
        started = time.perf_counter()
        result = materialize(
            list(pipeline.assets or []), selection=selection, instance=instance,
            resources=pipeline.resources, tags=tags, partition_key=partition,
        )  # fmt: skip
        seconds = time.perf_counter() - started
    if not result.success:
        raise SystemExit(f"stage {stage} failed")
    numbers = {
        "seconds": round(seconds, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "load_average": round(os.getloadavg()[0], 1),
    }
    for asset in selection:
        # one materialisation per partition, each with the run's metadata
        numbers[f"{asset}_rows"] = _rows(result.asset_materializations_for_node(asset)[0])
    if stage == "train":  # CRYPTIFY_TRAINING_JOBS, or the machine's cores minus one
        metadata = result.asset_materializations_for_node("models")[0].metadata
        numbers["training_jobs"] = int(metadata["training_jobs"].value)
    return numbers


def _before(hour_key: str) -> str:
    return f"{datetime.strptime(hour_key, HOURLY) - timedelta(hours=1):{HOURLY}}"


def _rows(materialization) -> int:
    metadata = materialization.metadata
    entry = metadata.get("dagster/row_count") or metadata.get("rows") or metadata["forecasts"]
    return int(entry.value)


def child(stage: str, home: str, settings: dict, log: Path) -> dict[str, float]:
    """Runs ``stage`` in a new process; Dagster's log goes to ``log``."""
    return run_stage("benchmarks.scale", stage, home, settings, log)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=DEFAULT_SYMBOLS, help="1-50")
    parser.add_argument("--years", type=float, default=DEFAULT_YEARS, help="of history")
    parser.add_argument("--stage", help="internal: run one stage and print its numbers")
    parser.add_argument("--home", help="internal: the shared instance's DAGSTER_HOME")
    parser.add_argument("--plan", help="internal: the stages' settings and keys, as JSON")
    args = parser.parse_args()
    if args.stage:
        print(json.dumps(stage_run(args.stage, args.home, json.loads(args.plan))))
        return

    name = run_name(args.symbols, args.years)
    settings = {**plan(args.symbols, args.years, datetime.now(UTC)), "name": name}
    schemas = [f"bench_{name}", f"bench_{name}_dagster"]
    print(
        f"{args.symbols} symbols x {settings['hours']:,} hours from {settings['start']} "
        f"against {suite_database_url()}",
        flush=True,
    )
    results: dict[str, float] = {
        "symbols": args.symbols,
        "years": args.years,
        "hours": settings["hours"],
        "load_average_at_start": round(os.getloadavg()[0], 1),
    }
    for schema in schemas:
        drop_schema(schema)
    with tempfile.TemporaryDirectory() as home:
        write_instance_config(Path(home), schemas[1])
        log = Path(home) / "dagster.log"
        started = time.perf_counter()
        backfill = child("backfill", home, settings, log)
        results["backfill_process_seconds"] = round(time.perf_counter() - started, 2)
        train = child("train", home, settings, log)
        predict = child("predict", home, settings, log)
        child("predict_rest", home, settings, log)
        score = child("score", home, settings, log)
    for schema in schemas:
        drop_schema(schema)
    for stage, numbers in [
        ("backfill", backfill), ("train", train), ("predict", predict), ("score", score)
    ]:  # fmt: skip
        results[f"{stage}_seconds"] = numbers["seconds"]
        results[f"{stage}_peak_rss_mb"] = numbers["peak_rss_mb"]
        results[f"{stage}_load_average"] = numbers["load_average"]
    results["candles_rows"] = backfill["candles_rows"]
    results["features_rows"] = backfill["features_rows"]
    results["models_rows"] = train["models_rows"]
    results["training_jobs"] = train["training_jobs"]
    results["predictions_rows"] = predict["predictions_rows"]
    results["forecast_metrics_rows"] = score["forecast_metrics_rows"]
    report(name, results)


if __name__ == "__main__":
    main()
