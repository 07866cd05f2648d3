"""Asset checks on ``candles``: completeness, freshness and price-jump sanity.

Each looks at the hours of the run it ran in (a partition or a single-run range) and at the
last ``CRYPTIFY_GAP_REPAIR_DAYS`` days, so both a backfill and the hourly schedule are covered.
"""

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    MetadataValue,
    asset_check,
)

from cryptify_pipeline.assets.market import candles
from cryptify_pipeline.io.candles import HOUR, describe_missing, missing_candles
from cryptify_pipeline.partitions import hourly_partitions
from cryptify_pipeline.resources import MarketData, PostgresDatabase
from cryptify_pipeline.run_tags import run_partition_range
from cryptify_pipeline.settings import get_settings

FRESHNESS_GRACE = timedelta(minutes=15)


def last_closed_hour(now: datetime) -> datetime:
    """Open time of the newest candle that has closed by ``now``."""
    return now.replace(minute=0, second=0, microsecond=0) - HOUR


def recent_window(now: datetime, days: int) -> tuple[datetime, datetime]:
    end = last_closed_hour(now) + HOUR
    start = max(end - timedelta(days=days), get_settings().start)
    return start, end


def run_window(context: AssetCheckExecutionContext) -> tuple[datetime, datetime] | None:
    """The hours the current run materialised, from its partition tags."""
    covered = run_partition_range(context.run.tags)
    if covered is None:
        return None
    first, last = covered
    return (
        hourly_partitions.time_window_for_partition_key(first).start,
        hourly_partitions.time_window_for_partition_key(last).end,
    )


def _windows(context: AssetCheckExecutionContext) -> list[tuple[str, datetime, datetime]]:
    windows = [("last_days", *recent_window(datetime.now(UTC), get_settings().gap_repair_days))]
    if (run := run_window(context)) is not None:
        windows.insert(0, ("this_run", *run))
    return windows


@asset_check(asset=candles, description="Every configured symbol has a candle for every hour.")
def candles_complete(
    context: AssetCheckExecutionContext, database: PostgresDatabase, market: MarketData
) -> AssetCheckResult:
    metadata: dict[str, object] = {}
    total = 0
    for label, start, end in _windows(context):
        stored = database.read_time_range("candles", start, end, ["symbol", "ts"])
        missing = missing_candles(stored, market.symbols, start, end)
        total += len(missing)
        metadata[f"{label}_window"] = f"{start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC"
        metadata[f"{label}_missing_count"] = len(missing)
        metadata[f"{label}_missing"] = MetadataValue.md(describe_missing(missing))
    return AssetCheckResult(passed=total == 0, severity=AssetCheckSeverity.WARN, metadata=metadata)


@asset_check(asset=candles, description="The latest closed hour is stored by HH:15 UTC.")
def candles_fresh(database: PostgresDatabase) -> AssetCheckResult:
    now = datetime.now(UTC)
    due = last_closed_hour(now - FRESHNESS_GRACE)
    latest = database.latest_ts("candles")
    lag_hours = None if latest is None else (due - latest) / HOUR
    return AssetCheckResult(
        passed=latest is not None and latest >= due,
        severity=AssetCheckSeverity.ERROR,
        metadata={
            "latest_candle": str(latest),
            "due_candle": f"{due:%Y-%m-%d %H:%M} UTC",
            "hours_behind": max(lag_hours, 0.0) if lag_hours is not None else -1.0,
        },
    )


@asset_check(
    asset=candles,
    description="No hourly close-to-close move beyond CRYPTIFY_PRICE_JUMP_BOUND (log return).",
)
def candles_price_jumps(
    context: AssetCheckExecutionContext, database: PostgresDatabase
) -> AssetCheckResult:
    bound = get_settings().price_jump_bound
    jumps = []
    for _, start, end in _windows(context):
        # one hour before the window, so its first candle has a previous close
        stored = database.read_time_range("candles", start - HOUR, end, ["symbol", "ts", "close"])
        jumps.append(price_jumps(stored, bound, start))
    found = pd.concat(jumps).drop_duplicates(["symbol", "ts"])
    return AssetCheckResult(
        passed=found.empty,
        severity=AssetCheckSeverity.WARN,
        metadata={
            "bound": bound,
            "jumps": len(found),
            "rows": MetadataValue.md(
                found.head(50).to_markdown(index=False) if len(found) else "None."
            ),
        },
    )


def price_jumps(frame: pd.DataFrame, bound: float, since: datetime) -> pd.DataFrame:
    """Candles at or after ``since`` whose close moved more than ``bound`` in log terms from
    the previous hour's close (only consecutive hours are compared)."""
    ordered = frame.sort_values(["symbol", "ts"])
    previous = ordered.groupby("symbol")["close"].shift()
    consecutive = ordered["ts"] - ordered.groupby("symbol")["ts"].shift() == HOUR
    log_return = np.log(ordered["close"] / previous)
    found = ordered.assign(log_return=log_return)[
        consecutive & (log_return.abs() > bound) & (ordered["ts"] >= since)
    ]
    return found[["symbol", "ts", "close", "log_return"]].reset_index(drop=True)
