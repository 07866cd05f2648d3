"""Completeness checks on the context assets, over the run's hours and the last
``MarketData.gap_repair_days`` days (like ``candles_complete``).

``open_interest``: a row per symbol and hour. ``funding_rates``: a rate at every 8-hourly
funding time (a symbol funded more often has more, never fewer). ``equity_index``: a row per
index and hour, a bar or ``market_open = false``, so "shut" is told from "missing". Severity is
WARN: context never blocks candles or forecasts. With the source set to ``none`` the check
passes with nothing expected.
"""

from collections.abc import Sequence
from datetime import UTC, datetime

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    AssetKey,
    MetadataValue,
    asset_check,
)

from cryptify_pipeline.assets.candle_checks import recent_window
from cryptify_pipeline.assets.context import (
    CONTEXT_TABLES,
    EQUITY_INDEX_TABLE,
    ContextTable,
    missing_context,
)
from cryptify_pipeline.market.candles import describe_missing
from cryptify_pipeline.market.context_sources import NONE
from cryptify_pipeline.partitions import Partitions
from cryptify_pipeline.resources import MarketData, PostgresDatabase
from cryptify_pipeline.run_tags import run_partition_range


def context_checks(partitions: Partitions) -> Sequence[AssetChecksDefinition]:
    return [_complete(partitions, table) for table in CONTEXT_TABLES]


def _complete(partitions: Partitions, table: ContextTable) -> AssetChecksDefinition:
    @asset_check(
        asset=AssetKey(table.name),
        name=f"{table.name}_complete",
        description=f"Every configured {table.key} has its {table.name} rows for every hour.",
    )
    def _check(
        context: AssetCheckExecutionContext, database: PostgresDatabase, market: MarketData
    ) -> AssetCheckResult:
        setting = (
            market.equity_index_source_setting
            if table is EQUITY_INDEX_TABLE
            else market.context_source
        )
        if setting == NONE:
            return AssetCheckResult(passed=True, metadata={"source": "none: nothing expected"})
        keys = market.equity_indexes if table is EQUITY_INDEX_TABLE else market.symbols
        windows = [("last_days", *recent_window(datetime.now(UTC), market.gap_repair_days,
                                                 partitions.first_hour))]  # fmt: skip
        if (covered := run_partition_range(context.run.tags)) is not None:
            windows.insert(0, ("this_run", *partitions.hour_window(*covered)))
        metadata: dict[str, object] = {}
        total = 0
        for label, start, end in windows:
            latest = database.latest_ts(table.name)
            stored = (
                table.empty()
                if latest is None
                else database.read_time_range(table.name, start, end, [table.key, "ts"])
            )
            missing = missing_context(stored, table, keys, start, end)
            total += len(missing)
            metadata[f"{label}_window"] = f"{start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC"
            metadata[f"{label}_missing_count"] = len(missing)
            metadata[f"{label}_missing"] = MetadataValue.md(
                describe_missing(missing, key=table.key, what="hours")
            )
        return AssetCheckResult(
            passed=total == 0, severity=AssetCheckSeverity.WARN, metadata=metadata
        )

    return _check
