"""The data API under load: 2 symbols x 1 year of candles, features and forecasts of all models.

The tables: candles and features are the pipeline's own assets, backfilled as Dagster runs from
the sample market. A year of daily training is ~20 minutes of fitting that measures nothing
about the API, so one set of the zoo's models (every model, every horizon, per symbol) is
trained with ``ml/training.py`` at the start of the year and serves every day: the year's
forecasts come from ``ml/forecasting.py``, the scores and leaderboard from ``ml/scoring.py``,
and all are written through the IO manager as the assets would write them.

Then ``cryptify api`` serves them (one process, as ``make dev`` and the compose service run it)
and ``wrk`` (Debian's package: ``apt-get install -y wrk``) measures, from this machine:
``/history?time_range=1m&predictions=all`` latency (p50/p99, one connection; the whole series
of every model, and of one model as the dashboard asks; the same window again, served from the
kept body after checking its rows' fingerprint, and a new window each request, built by
Postgres) and ``/predictions/latest`` throughput (32 connections). Results go to
benchmarks/results/api.json.

    python -m benchmarks.api [--days 365] [--seconds 15]
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import tempfile
import time
import urllib.request
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
from dagster import (
    AssetKey,
    DailyPartitionsDefinition,
    HourlyPartitionsDefinition,
    PartitionKeyRange,
    build_output_context,
    materialize,
)

from benchmarks._common import bench_definitions, postgres_instance, report, sql
from cryptify_pipeline.hours import HOUR, hour_key, last_closed_hour
from cryptify_pipeline.ml.artifacts import sign_models
from cryptify_pipeline.ml.features import LOOKBACK_HOURS
from cryptify_pipeline.ml.forecasting import forecast
from cryptify_pipeline.ml.models import MODEL_ZOO
from cryptify_pipeline.ml.scoring import rank_models, score_day
from cryptify_pipeline.ml.signing import SigningKey
from cryptify_pipeline.ml.targets import HORIZONS, with_targets
from cryptify_pipeline.ml.training import train_all
from cryptify_pipeline.settings import DEFAULT_INTERVAL_LEVEL
from cryptify_pipeline.storage import pg_tables
from cryptify_pipeline_tests.support.database import suite_database_url
from cryptify_pipeline_tests.support.live_api import live_api
from cryptify_pipeline_tests.support.pipeline import io_manager_on

warnings.filterwarnings("ignore")
SCHEMA = "bench_api"
SYMBOLS = ["BTC/USDT", "ETH/USDT"]
TRAINING_DAYS = 30


def key(moment: datetime, daily: bool = False) -> str:
    return moment.strftime("%Y-%m-%d") if daily else hour_key(moment)


def write(asset: str, frame: pd.DataFrame, partitions=None, first=None, last=None) -> None:
    """``frame`` into ``asset``'s table through the IO manager, as its step would write it."""
    metadata = {
        "candles": None,
        "models": {"partition_expr": "day", "primary_key": ["day", "symbol", "model", "horizon_h"]},
        "predictions": {
            "partition_expr": "ts", "primary_key": ["symbol", "ts", "model", "horizon_h"],
        },
        "forecast_metrics": {
            "partition_expr": "day", "primary_key": ["day", "symbol", "model", "horizon_h"],
        },
        "leaderboard": {},
    }[asset]  # fmt: skip
    ranged = {}
    if partitions is not None:
        ranged = {
            "asset_partitions_def": partitions,
            "asset_partition_key_range": PartitionKeyRange(first, last),
        }
    context = build_output_context(
        asset_key=AssetKey(asset), definition_metadata=metadata, **ranged
    )
    io_manager_on(SCHEMA).create_io_manager(None).handle_output(context, frame)


def build_tables(days: int, results: dict[str, float]) -> datetime:
    """Fill the schema; returns the last hour with candles."""
    last = last_closed_hour(datetime.now(UTC))
    first = (last - timedelta(days=days)).replace(hour=0)
    history = first - timedelta(days=TRAINING_DAYS + 2) - LOOKBACK_HOURS * HOUR
    start = history.replace(hour=0)
    pipeline = bench_definitions(
        SCHEMA, CRYPTIFY_START=start.strftime("%Y-%m-%d"), CRYPTIFY_SYMBOLS=",".join(SYMBOLS),
        CRYPTIFY_SOURCE="sample",
    )  # fmt: skip
    sql(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
    with postgres_instance() as instance:
        started = time.perf_counter()
        for selection in (["candles"], ["features"]):
            result = materialize(
                list(pipeline.assets or []), selection=selection, instance=instance,
                resources=pipeline.resources,
                tags={"dagster/asset_partition_range_start": key(start),
                      "dagster/asset_partition_range_end": key(last)},
            )  # fmt: skip
            assert result.success, selection
    results["candles_features_seconds"] = round(time.perf_counter() - started, 1)

    started = time.perf_counter()
    with pg_tables.transaction(suite_database_url()) as connection:
        features = pg_tables.read_frame(connection, SCHEMA, "features", None, [])
    model_day = first - timedelta(days=1)
    models = train_all(
        with_targets(features), first, HORIZONS, list(MODEL_ZOO), window_days=TRAINING_DAYS,
        interval_level=DEFAULT_INTERVAL_LEVEL,
    )  # fmt: skip
    models.insert(0, "day", pd.Timestamp(model_day))
    models["trained_at"] = datetime.now(UTC)
    signing_key = SigningKey.generate()  # a record is signed for its day: each copy below too
    models = sign_models(models, signing_key)
    daily = DailyPartitionsDefinition(start_date=start.strftime("%Y-%m-%d"), timezone="UTC")
    write("models", models, daily, key(model_day, True), key(model_day, True))
    results["training_seconds"] = round(time.perf_counter() - started, 1)

    # the one set of models serves every day of the year (same bytes: predicted once a model)
    started = time.perf_counter()
    unsigned = models.drop(columns=["signature", "signing_key_id"])
    serving = sign_models(
        pd.concat(
            [
                unsigned.assign(day=pd.Timestamp(first + timedelta(days=d - 1)))
                for d in range(days + 1)
            ],
            ignore_index=True,
        ),
        signing_key,
    )
    predictions = forecast(features, serving, SYMBOLS, first, last + HOUR, signing_key)
    hourly = HourlyPartitionsDefinition(start_date=start.strftime("%Y-%m-%d-%H:%M"))
    write("predictions", predictions, hourly, key(first), key(last))
    results["forecast_rows"] = len(predictions)
    results["forecasting_seconds"] = round(time.perf_counter() - started, 1)

    started = time.perf_counter()
    candles = features[["ts", "symbol", "close"]]
    scored_days = [first + timedelta(days=d) for d in range(days - 1)]
    metrics = pd.concat([score_day(predictions, candles, day) for day in scored_days])
    write("forecast_metrics", metrics, daily, key(scored_days[0], True), key(scored_days[-1], True))
    write("leaderboard", rank_models(metrics, last_days=30))
    results["scoring_seconds"] = round(time.perf_counter() - started, 1)
    sql(f"ANALYZE {SCHEMA}.candles, {SCHEMA}.predictions, {SCHEMA}.features")
    return last


# each request a window ending one second earlier than the last: never a kept body
UNCACHED = """
counter = 0
request = function()
  counter = counter + 1
  return wrk.format("GET", wrk.path .. "&to_time=" .. (%d - counter))
end
"""


def wrk(url: str, connections: int, seconds: int, script: str | None = None) -> dict[str, float]:
    """Requests/s, latency percentiles (ms) and non-2xx answers of one wrk run."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as lua:
        lua.write(script or "")
        lua.flush()
        output = subprocess.run(
            ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", lua.name, url],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
    unit = {"us": 0.001, "ms": 1.0, "s": 1000.0}

    def percentile(name: str) -> float:
        value, suffix = re.search(rf"^\s+{name}%\s+([\d.]+)(us|ms|s)\s*$", output, re.M).groups()
        return round(float(value) * unit[suffix], 2)

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return {
        "requests_per_s": round(float(re.search(r"Requests/sec:\s+([\d.]+)", output)[1])),
        "p50_ms": percentile("50"),
        "p99_ms": percentile("99"),
        "non_2xx": int(errors[1]) if errors else 0,
    }


def api_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100  # utime + stime, clock ticks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--seconds", type=int, default=15, help="per wrk run")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is missing: apt-get install -y wrk")
    print(f"{len(SYMBOLS)} symbols x {args.days} days against {suite_database_url()}")
    results: dict[str, float] = {"symbols": len(SYMBOLS), "days": args.days}
    last = build_tables(args.days, results)
    results["candle_rows"] = sql(f"SELECT count(*) FROM {SCHEMA}.candles")[0][0]
    results["prediction_rows"] = sql(f"SELECT count(*) FROM {SCHEMA}.predictions")[0][0]
    print({k: v for k, v in results.items()})

    log = Path(tempfile.mkdtemp()) / "api.log"
    env = {"CRYPTIFY_SYMBOLS": ",".join(SYMBOLS)}
    with live_api(SCHEMA, log, **env) as api:
        base, pid = api.url, api.pid
        # the whole series, as the dashboard asks (the default is one forecast per model)
        history = f"{base}/history?time_range=1m&predictions=all"
        with urllib.request.urlopen(history) as response:
            body = response.read()
        results["history_1m_bytes"] = len(body)
        results["history_1m_predictions"] = int(re.search(rb'"predictions_count":(\d+)', body)[1])
        results["history_1m_bars"] = int(re.search(rb'"bars_count":(\d+)', body)[1])
        # the current hour has not closed: 719 or 720 candles, as the hour's boundary falls
        assert results["history_1m_bars"] in (719, 720), results["history_1m_bars"]
        uncached = UNCACHED % int((last + 2 * HOUR).timestamp())
        runs = {
            "history_1m": (history, 1, None),
            "history_1m_4_connections": (history, 4, None),
            "history_1m_uncached": (history, 1, uncached),
            "history_1m_one_model": (f"{history}&model=ridge", 1, None),
            "history_1m_one_model_uncached": (f"{history}&model=ridge", 1, uncached),
            "predictions_latest": (f"{base}/predictions/latest", 32, None),
            "predictions_latest_filtered": (
                f"{base}/predictions/latest?symbol=ETH-USDT&model=lstm&horizon=24&limit=24", 32,
                None,
            ),
        }  # fmt: skip
        for name, (url, connections, script) in runs.items():
            wrk(url, connections, 2)  # warm-up: connections, plans, the kept body
            cpu = api_cpu_seconds(pid)
            measured = wrk(url, connections, args.seconds, script)
            requests = measured["requests_per_s"] * args.seconds
            measured["api_cpu_ms_per_request"] = round(
                (api_cpu_seconds(pid) - cpu) * 1000 / requests, 3
            )
            print(f"{name:>30}: {measured}")
            results.update({f"{name}_{k}": v for k, v in measured.items()})
    results["last_hour"] = last.timestamp()
    results["history_1m_p99_target_met"] = results["history_1m_p99_ms"] < 50
    results["predictions_latest_target_met"] = results["predictions_latest_requests_per_s"] >= 1000
    report("api", results)
    sql(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")


if __name__ == "__main__":
    main()
