"""Asset checks on ``candles``: completeness, freshness and price-jump sanity.

Each looks at the hours of the run it ran in (a partition or a single-run range) and at the
last ``MarketData.gap_repair_days`` days, so both a backfill and the hourly schedule are covered.
"""

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    AssetKey,
    MetadataValue,
    asset_check,
)

from cryptify_pipeline.hours import HOUR, last_closed_hour
from cryptify_pipeline.market.candles import describe_missing, missing_candles
from cryptify_pipeline.partitions import Partitions
from cryptify_pipeline.resources import MarketData, PostgresDatabase
from cryptify_pipeline.run_tags import run_partition_range

CANDLES = AssetKey("candles")
FRESHNESS_GRACE = timedelta(minutes=15)


def recent_window(now: datetime, days: int, first_hour: datetime) -> tuple[datetime, datetime]:
    """The last ``days`` days of closed hours, not before ``first_hour``."""
    end = last_closed_hour(now) + HOUR
    return max(end - timedelta(days=days), first_hour), end


def candle_checks(partitions: Partitions) -> Sequence[AssetChecksDefinition]:
    """The checks on ``candles``; their windows start no earlier than the first partition."""

    def windows(
        context: AssetCheckExecutionContext, days: int
    ) -> list[tuple[str, datetime, datetime]]:
        found = [("last_days", *recent_window(datetime.now(UTC), days, partitions.first_hour))]
        if (covered := run_partition_range(context.run.tags)) is not None:
            found.insert(0, ("this_run", *partitions.hour_window(*covered)))
        return found

    @asset_check(asset=CANDLES, description="Every configured symbol has a candle for every hour.")
    def candles_complete(
        context: AssetCheckExecutionContext, database: PostgresDatabase, market: MarketData
    ) -> AssetCheckResult:
        metadata: dict[str, object] = {}
        total = 0
        for label, start, end in windows(context, market.gap_repair_days):
            stored = database.read_time_range("candles", start, end, ["symbol", "ts"])
            missing = missing_candles(stored, market.symbols, start, end)
            total += len(missing)
            metadata[f"{label}_window"] = f"{start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC"
            metadata[f"{label}_missing_count"] = len(missing)
            metadata[f"{label}_missing"] = MetadataValue.md(describe_missing(missing))
        return AssetCheckResult(
            passed=total == 0, severity=AssetCheckSeverity.WARN, metadata=metadata
        )

    @asset_check(asset=CANDLES, description="The latest closed hour is stored by HH:15 UTC.")
    def candles_fresh(database: PostgresDatabase) -> AssetCheckResult:
        due = last_closed_hour(datetime.now(UTC) - FRESHNESS_GRACE)
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
        asset=CANDLES,
        description="No hourly close-to-close move beyond CRYPTIFY_PRICE_JUMP_BOUND (log return).",
    )
    def candles_price_jumps(
        context: AssetCheckExecutionContext, database: PostgresDatabase, market: MarketData
    ) -> AssetCheckResult:
        bound = market.price_jump_bound
        jumps = []
        for _, start, end in windows(context, market.gap_repair_days):
            # one hour before the window, so its first candle has a previous close
            stored = database.read_time_range(
                "candles", start - HOUR, end, ["symbol", "ts", "close"]
            )
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

    return [candles_complete, candles_fresh, candles_price_jumps]


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
