"""A placeholder hourly asset that exercises the IO manager end to end.

It exists until the market-data issue's ``candles`` asset replaces it.
"""

from datetime import UTC, datetime

import pandas as pd
from dagster import AssetExecutionContext, BackfillPolicy, asset

from cryptify_pipeline.partitions import hourly_partitions
from cryptify_pipeline.settings import get_settings


@asset(
    partitions_def=hourly_partitions,
    backfill_policy=BackfillPolicy.single_run(),
    metadata={"partition_expr": "ts", "primary_key": ["symbol", "ts"]},
    group_name="foundation",
    description="One row per configured symbol and closed hour: proof that the chain writes.",
)
def pipeline_heartbeat(context: AssetExecutionContext) -> pd.DataFrame:
    window = context.partition_time_window
    hours = pd.date_range(window.start, window.end, freq="h", inclusive="left", tz="UTC")
    symbols = get_settings().symbols
    frame = pd.DataFrame(
        {
            "ts": hours.repeat(len(symbols)),
            "symbol": pd.Series(list(symbols) * len(hours), dtype="str"),
        }
    )
    frame["written_at"] = pd.Timestamp(datetime.now(UTC)).as_unit("us")
    context.log.info(f"{len(frame)} heartbeat rows for {len(hours)} hour(s)")
    return frame
