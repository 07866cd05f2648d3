"""One hour of ``predictions`` at the scale benchmark's size, without its four-year backfill.

``benchmarks.scale`` times the predict stage after four years of candles and a 180-day training
run (~5 minutes before predict starts). What the stage costs depends on the models stored (50
symbols x 7 models x 3 horizons = 1,050), not on the years behind them, so here:

- ``setup``: candles and features for the last ``--days`` days of 50 sample symbols (one
  single-run backfill), then one ``models`` partition with a ``--training-days`` window: every
  model of the zoo, every horizon (a hist_gbm keeps its 100 trees and an mlp its layers, so a
  stored model costs about what it costs at full scale);
- ``predict``: the last hour of the next day, with those models, as a Dagster run in a process
  of its own, ``--repeats`` times (each re-materialises the hour); with ``--profile``, one more
  run under cProfile whose top functions are printed and saved beside the results.

Each predict run also reports a digest of the forecasts it stored (every value of every row,
in key order), so two versions of the code can be checked for bit-identical output.

    python -m benchmarks.predict              # setup, 3 timed runs, a profile
    python -m benchmarks.predict --keep       # keep the tables for another --skip-setup run
    python -m benchmarks.predict --skip-setup --repeats 5
"""

import argparse
import cProfile
import hashlib
import io
import json
import os
import pstats
import resource
import statistics
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
    sql,
    write_instance_config,
)
from benchmarks.scale import DAILY, HOURLY, symbols_setting
from cryptify_pipeline.run_tags import range_tags

warnings.filterwarnings("ignore")
NAME = "predict"
SCHEMA, DAGSTER_SCHEMA = f"bench_{NAME}", f"bench_{NAME}_dagster"
RESULTS = Path(__file__).parent / "results"


def plan(symbols: int, days: int, now: datetime) -> dict[str, object]:
    """The partitions: features from ``days`` days back, models through the day before
    yesterday, and the last hour of yesterday (the newest closed day) to forecast."""
    yesterday = now.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=1)
    start = yesterday - timedelta(days=days)
    return {
        "start": f"{start:{DAILY}}",
        "symbols": symbols_setting(symbols),
        "first_hour": f"{start:{HOURLY}}",
        "last_hour": f"{yesterday + timedelta(hours=23):{HOURLY}}",
        "model_day": f"{yesterday - timedelta(days=1):{DAILY}}",
        "predict_hour": f"{yesterday + timedelta(hours=23):{HOURLY}}",
    }


def stage_run(stage: str, home: str, settings: dict, profile: Path | None) -> dict[str, object]:
    """Runs one stage in this process; its wall time, peak RSS and what it wrote."""
    pipeline = bench_definitions(
        SCHEMA, CRYPTIFY_START=settings["start"], CRYPTIFY_SYMBOLS=settings["symbols"],
        CRYPTIFY_SOURCE="sample",
    )  # fmt: skip
    runs = {
        "backfill": (["candles", "features"], range_tags(settings["first_hour"], settings["last_hour"]), None, None),  # noqa: E501
        "train": (["models"], {}, settings["model_day"],
                  {"ops": {"models": {"config": {"training_days": settings["training_days"]}}}}),
        "predict": (["predictions"], {}, settings["predict_hour"], None),
    }  # fmt: skip
    numbers: dict[str, object] = {}
    for name in ["backfill", "train"] if stage == "setup" else [stage]:
        selection, tags, partition, run_config = runs[name]
        with DagsterInstance.from_config(home) as instance:
            profiler = cProfile.Profile() if profile else None
            cpu = time.process_time()
            started = time.perf_counter()
            if profiler:
                profiler.enable()
            result = materialize(
                list(pipeline.assets or []), selection=selection, instance=instance,
                resources=pipeline.resources, tags=tags, partition_key=partition,
                run_config=run_config,
            )  # fmt: skip
            if profiler:
                profiler.disable()
            seconds = time.perf_counter() - started
            cpu = time.process_time() - cpu
        if not result.success:
            raise SystemExit(f"stage {name} failed")
        if profiler and profile:
            profiler.dump_stats(profile)
        numbers[f"{name}_seconds"] = round(seconds, 2)
        # on a shared machine the wall time moves with the load; the CPU time less so
        numbers[f"{name}_cpu_seconds"] = round(cpu, 2)
    numbers["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    numbers["load_average"] = round(os.getloadavg()[0], 2)
    if stage == "predict":
        numbers.update(forecasts_digest(settings["predict_hour"]))
    return numbers


def forecasts_digest(hour_key: str) -> dict[str, object]:
    """How many forecasts the hour has and a sha256 over every stored value, rows in key
    order, floats as their exact hex form: equal digests are bit-identical forecasts."""
    hour = datetime.strptime(hour_key, HOURLY).replace(tzinfo=UTC)
    rows = sql(
        f'SELECT * FROM "{SCHEMA}"."predictions" WHERE ts = %s '
        "ORDER BY symbol, ts, model, horizon_h",
        (hour,),
    )
    digest = hashlib.sha256()
    for row in rows:
        digest.update(repr(tuple(v.hex() if isinstance(v, float) else v for v in row)).encode())
    return {"forecasts": len(rows), "forecasts_sha256": digest.hexdigest()}


def child(stage: str, home: str, settings: dict, profile: Path | None = None) -> dict:
    """Runs ``stage`` in a new process; Dagster's log goes to the instance's directory."""
    extra = ["--profile-to", str(profile)] if profile else []
    log = Path(home) / "dagster.log"
    return run_stage("benchmarks.predict", stage, home, settings, log, *extra)


def top_functions(profile: Path, limit: int = 40) -> str:
    """The profile's ``limit`` functions with the most cumulative time, as pstats prints them."""
    out = io.StringIO()
    pstats.Stats(str(profile), stream=out).sort_stats("cumulative").print_stats(limit)
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=50, help="1-50")
    parser.add_argument("--days", type=int, default=40, help="of candles and features")
    parser.add_argument("--training-days", type=int, default=21, help="the models' window")
    parser.add_argument("--repeats", type=int, default=3, help="timed predict runs")
    parser.add_argument("--no-profile", action="store_true", help="skip the profiled run")
    parser.add_argument("--skip-setup", action="store_true", help="reuse the kept tables")
    parser.add_argument("--keep", action="store_true", help="keep the tables afterwards")
    parser.add_argument("--stage", help="internal: run one stage and print its numbers")
    parser.add_argument("--home", help="internal: the shared instance's DAGSTER_HOME")
    parser.add_argument("--plan", help="internal: the stages' settings and keys, as JSON")
    parser.add_argument("--profile-to", help="internal: where the stage writes its profile")
    args = parser.parse_args()
    if args.stage:
        profile = Path(args.profile_to) if args.profile_to else None
        print(json.dumps(stage_run(args.stage, args.home, json.loads(args.plan), profile)))
        return
    settings = {
        **plan(args.symbols, args.days, datetime.now(UTC)),
        "training_days": args.training_days,
    }
    results: dict[str, object] = {
        "symbols": args.symbols,
        "days": args.days,
        "training_days": args.training_days,
        "cores": os.cpu_count() or 1,
        "load_average_at_start": round(os.getloadavg()[0], 2),
    }
    if not args.skip_setup:
        drop_schema(SCHEMA)
    drop_schema(DAGSTER_SCHEMA)
    with tempfile.TemporaryDirectory() as home:
        write_instance_config(Path(home), DAGSTER_SCHEMA)
        if not args.skip_setup:
            setup = child("setup", home, settings)
            results["setup_backfill_seconds"] = setup["backfill_seconds"]
            results["setup_train_seconds"] = setup["train_seconds"]
        runs = [child("predict", home, settings) for _ in range(args.repeats)]
        if not args.no_profile:
            profile = RESULTS / f"{NAME}.prof"
            profiled = child("predict", home, settings, profile)
            text = top_functions(profile)
            profile.unlink()
            (RESULTS / f"{NAME}_profile.txt").write_text(text)
            print(text)
            results["profiled_seconds"] = profiled["predict_seconds"]
    drop_schema(DAGSTER_SCHEMA)
    if not args.keep:
        drop_schema(SCHEMA)
    seconds = [run["predict_seconds"] for run in runs]
    digests = {run["forecasts_sha256"] for run in runs}
    if len(digests) != 1:
        raise SystemExit(f"the runs stored different forecasts: {digests}")
    results.update(
        predict_seconds_each=seconds,
        predict_seconds_median=statistics.median(seconds),
        predict_cpu_seconds_each=[run["predict_cpu_seconds"] for run in runs],
        predict_cpu_seconds_median=statistics.median(run["predict_cpu_seconds"] for run in runs),
        predict_peak_rss_mb=max(run["peak_rss_mb"] for run in runs),
        predict_load_average_each=[run["load_average"] for run in runs],
        forecasts=runs[0]["forecasts"],
        forecasts_sha256=digests.pop(),
    )
    report(NAME, results)


if __name__ == "__main__":
    main()
