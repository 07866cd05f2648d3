"""Backfill one year of hourly candles for 10 symbols, from the sample market and from files.

Each stage is one single-run backfill of the ``candles`` asset over 8,760 hourly partitions on
a Postgres-backed Dagster instance (87,600 candles), run in its own process so its peak RSS is
its own. The file stage reads zipped Binance monthly dumps written beforehand (not timed). The
context stage backfills ``candles`` with the market context (``open_interest``,
``funding_rates``, ``equity_index`` of ES=F) from the sample market in the same single run, as
collect_job does: its time beside the sample stage's is the context's cost.
Prints the numbers and writes benchmarks/results/candles.json.

    python -m benchmarks.candles
"""

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
import warnings
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
from dagster import materialize

from benchmarks._common import bench_definitions, postgres_instance, report
from cryptify_pipeline.market.context import CONTEXT_TABLE_NAMES
from cryptify_pipeline.market.sample import SampleMarket
from cryptify_pipeline.resources import MarketData
from cryptify_pipeline.run_tags import range_tags
from cryptify_pipeline_tests.support.database import suite_database_url

warnings.filterwarnings("ignore")
SCHEMA = "bench_candles"
SYMBOLS = [
    f"{base}/USDT"
    for base in ("BTC", "ETH", "SOL", "BNB", "XRP", "ADA", "DOGE", "AVAX", "LINK", "DOT")
]
YEAR_START, YEAR_END = datetime(2025, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC)


def write_dumps(folder: Path) -> None:
    """Binance-format monthly dumps, zipped, open_time in ms as Binance's 2025 spot files."""
    frame = SampleMarket().fetch(SYMBOLS, YEAR_START, YEAR_END)
    frame["month"] = frame["ts"].dt.strftime("%Y-%m")
    for (symbol, month), group in frame.groupby(["symbol", "month"]):
        name = f"{symbol.replace('/', '')}-1h-{month}"
        open_ms = group["ts"].astype("int64") // 1000
        dump = pd.DataFrame(
            {
                "open_time": open_ms,
                **{c: group[c] for c in ("open", "high", "low", "close", "volume")},
                "close_time": open_ms + 3_599_999,
                "quote_volume": group["quote_volume"],
                "count": group["trades"],
                "taker_buy_volume": 0,
                "taker_buy_quote_volume": 0,
                "ignore": 0,
            }
        )
        with zipfile.ZipFile(folder / f"{name}.zip", "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(f"{name}.csv", dump.to_csv(index=False, header=False))


CONTEXT = CONTEXT_TABLE_NAMES
WITH_CONTEXT = "+context"


def run_stage(stage: str) -> dict[str, float]:
    """One single-run backfill of the year; runs in a child process."""
    source = stage.removesuffix(WITH_CONTEXT)
    names = ["candles", *(CONTEXT if stage.endswith(WITH_CONTEXT) else ())]
    pipeline = bench_definitions(SCHEMA)
    resources = {**pipeline.resources, "market": MarketData(source=source, symbols=SYMBOLS)}
    with postgres_instance() as instance:
        started = time.perf_counter()
        result = materialize(
            [pipeline.get_assets_def(name) for name in names],
            instance=instance,
            resources=resources,
            tags=range_tags("2025-01-01-00:00", "2025-12-31-23:00"),
        )
        seconds = time.perf_counter() - started
    assert result.success
    rows = result.asset_materializations_for_node("candles")[0].metadata["rows"].value
    return {
        "seconds": seconds,
        "candles": rows,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def child(source: str) -> dict[str, float]:
    output = subprocess.run(
        [sys.executable, "-m", "benchmarks.candles", "--stage", source],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    return json.loads(output.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", help="internal: run one stage and print its numbers")
    args = parser.parse_args()
    if args.stage:
        print(json.dumps(run_stage(args.stage)))
        return

    print(f"one year x {len(SYMBOLS)} symbols against {suite_database_url()}")
    results: dict[str, float] = {"symbols": len(SYMBOLS), "partitions": 8760}
    with tempfile.TemporaryDirectory() as folder:
        write_dumps(Path(folder))
        stages = [("sample", "sample"), ("file", f"file:{folder}"),
                  ("sample_context", f"sample{WITH_CONTEXT}")]  # fmt: skip
        for label, source in stages:
            stage = child(source)
            results[f"{label}_seconds"] = round(stage["seconds"], 2)
            results[f"{label}_candles"] = stage["candles"]
            results[f"{label}_candles_per_s"] = round(stage["candles"] / stage["seconds"])
            results[f"{label}_peak_rss_mb"] = round(stage["peak_rss_mb"])
    results["context_cost_seconds"] = round(
        results["sample_context_seconds"] - results["sample_seconds"], 2
    )
    results["peak_rss_mb"] = max(
        results["sample_peak_rss_mb"], results["file_peak_rss_mb"],
        results["sample_context_peak_rss_mb"],
    )  # fmt: skip
    report("candles", results)


if __name__ == "__main__":
    main()
