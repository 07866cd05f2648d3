"""Training one day for 10 symbols: what it reads, and serial against parallel fits.

Two years of hourly features for 10 symbols from the sample market are stored in Postgres.
One day is trained with the default config (180 days, 3 horizons, every model of the zoo):

- reading: the whole history (what the ``models`` input loaded before it read only its window)
  against the configured window, both through ``SliceReader`` (the IO manager's input);
- fitting: ``train_all`` with ``n_jobs=1`` against ``n_jobs=2`` (joblib's process workers,
  started cold as in every training run, one thread each), and whether every stored model is
  the same, byte for byte.

The machine's load average is recorded beside the times: they move with it. So is the CPU time
each process spent (the serial run's, and the parallel run's main process and each worker's):
on a shared machine the wall time says how much of the cores the run got, the CPU times what
the work costs and how evenly it spreads. Results go to benchmarks/results/training.json.

    python -m benchmarks.training
"""

import os
import resource
import time
import warnings
from datetime import UTC, datetime, timedelta

import psutil

from benchmarks._common import report, sql
from cryptify_pipeline.market.sample import SampleMarket
from cryptify_pipeline.ml.features import LOOKBACK_HOURS, build_features
from cryptify_pipeline.ml.models import MODEL_ZOO
from cryptify_pipeline.ml.targets import HORIZONS, with_targets
from cryptify_pipeline.ml.training import rows_needed, train_all
from cryptify_pipeline.storage import pg_tables
from cryptify_pipeline.storage.slice_reader import SliceReader
from cryptify_pipeline_tests.support.database import suite_database_url

warnings.filterwarnings("ignore")
SCHEMA = "bench_training"
SYMBOLS = [f"{base}/USDT" for base in ("BTC", "ETH", "SOL", "BNB", "XRP", "ADA", "DOGE", "AVAX",
                                       "DOT", "LINK")]  # fmt: skip
HISTORY_DAYS = 730
TRAINING_DAYS = 180  # TrainConfig's default
CUTOFF = datetime(2026, 1, 1, tzinfo=UTC)


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def load() -> float:
    return round(os.getloadavg()[0], 2)


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def timed(results: dict[str, float], name: str, work):
    started = time.perf_counter()
    value = work()
    results[f"{name}_seconds"] = round(time.perf_counter() - started, 2)
    print(f"{name:>28}: {results[f'{name}_seconds']:8.2f} s (load {load()})")
    return value


def main() -> None:
    url = suite_database_url()
    first = CUTOFF - timedelta(days=HISTORY_DAYS)
    results: dict[str, float] = {
        "symbols": len(SYMBOLS), "history_days": HISTORY_DAYS, "training_days": TRAINING_DAYS,
        "cores": os.cpu_count() or 1, "load_average_before": load(),
    }  # fmt: skip
    print(f"{len(SYMBOLS)} symbols, {HISTORY_DAYS} days of features to {CUTOFF:%Y-%m-%d}")

    candles = SampleMarket().fetch(SYMBOLS, first - timedelta(hours=LOOKBACK_HOURS), CUTOFF)
    features = build_features(candles, first, CUTOFF)
    sql(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
    history = pg_tables.TimeRange("ts", first, CUTOFF)
    with pg_tables.transaction(url) as connection:
        pg_tables.ensure_schema(connection, SCHEMA)
        spec = pg_tables.TableSpec(SCHEMA, "features", ("symbol", "ts"))
        pg_tables.write_frame(connection, spec, features, [history])
    results["rows_stored"] = len(features)
    del candles, features

    # the slice the input maps to covers the whole history; the window is the part a day reads
    reader = SliceReader(url, SCHEMA, "features", None, (history,))
    everything = timed(results, "read_history", lambda: reader.read_between(first, CUTOFF))
    results["rows_read_history"] = len(everything)
    del everything
    start, end = rows_needed([CUTOFF], TRAINING_DAYS)
    window = timed(results, "read_window", lambda: reader.read_between(start, end))
    results["rows_read_window"] = len(window)
    rows = with_targets(window)

    def train(jobs: int):
        return train_all(
            rows, CUTOFF, HORIZONS, MODEL_ZOO, TRAINING_DAYS, interval_level=0.9, n_jobs=jobs
        )

    me = psutil.Process()
    before = cpu_seconds(me)
    serial = timed(results, "train_serial", lambda: train(1))
    results["train_serial_cpu_seconds"] = round(cpu_seconds(me) - before, 2)
    before = cpu_seconds(me)
    parallel = timed(results, "train_parallel_2_jobs", lambda: train(2))
    results["train_parallel_main_cpu_seconds"] = round(cpu_seconds(me) - before, 2)
    # the workers started with this call and are still alive (loky keeps them for reuse); the
    # two busiest children are they (the other is loky's resource tracker)
    workers = sorted((cpu_seconds(child) for child in me.children(recursive=True)), reverse=True)
    for n, seconds in enumerate(workers[:2], start=1):
        results[f"train_parallel_worker_{n}_cpu_seconds"] = round(seconds, 2)
    results["models_trained"] = len(serial)
    serial_seconds = results["train_serial_seconds"]
    results["speedup"] = round(serial_seconds / results["train_parallel_2_jobs_seconds"], 2)
    key = ["symbol", "horizon_h", "model"]
    results["identical_artifacts"] = int(
        serial.sort_values(key)["sha256"].tolist() == parallel.sort_values(key)["sha256"].tolist()
        and serial.sort_values(key)["pipeline"].tolist()
        == parallel.sort_values(key)["pipeline"].tolist()
    )
    results["peak_rss_mb_main_process"] = peak_rss_mb()
    results["load_average_after"] = load()
    sql(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
    report("training", results)


if __name__ == "__main__":
    main()
