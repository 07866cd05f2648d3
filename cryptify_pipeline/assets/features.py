"""``features``: the model inputs of every candle, from a fixed trailing window of candles."""

import pandas as pd
from dagster import (
    AssetExecutionContext,
    AssetIn,
    AssetsDefinition,
    BackfillPolicy,
    MetadataValue,
    Output,
    asset,
)

from cryptify_pipeline.assets.columns import FEATURES, described
from cryptify_pipeline.assets.run_metadata import output_once_per_run
from cryptify_pipeline.ml.features import FEATURE_COLUMNS, LOOKBACK_HOURS, build_features
from cryptify_pipeline.partitions import Partitions, features_lookback


def features_asset(partitions: Partitions) -> AssetsDefinition:
    """The ``features`` asset on ``partitions``' hours."""

    @asset(
        partitions_def=partitions.hourly,
        backfill_policy=BackfillPolicy.single_run(),
        pool="features",
        ins={"candles": AssetIn(partition_mapping=features_lookback)},
        metadata={"partition_expr": "ts", "primary_key": ["symbol", "ts"], **described(FEATURES)},
        group_name="forecasting",
        kinds={"postgres"},
        description=(
            f"One row per candle: returns, candle shape, volatility, volume, RSI, MACD, ATR and "
            f"calendar features, each from the {LOOKBACK_HOURS} hours of candles ending at ts."
        ),
    )
    def features(context: AssetExecutionContext, candles: pd.DataFrame) -> Output[pd.DataFrame]:
        window = context.partition_time_window
        frame = build_features(candles, window.start, window.end)
        incomplete = int(frame[list(FEATURE_COLUMNS)].isna().any(axis=1).sum())
        if incomplete:
            context.log.info(
                f"{incomplete} row(s) have NaN features: history shorter than the lookback, or a "
                "missing candle inside it"
            )
        summary = {
            "rows": len(frame),
            "rows_with_nan_features": incomplete,
            "first_ts": str(frame["ts"].min()) if len(frame) else "none",
            "last_ts": str(frame["ts"].max()) if len(frame) else "none",
        }
        preview = frame[["ts", "symbol", "close", "log_return_1h", "volatility_21h", "rsi_14"]]
        details = {
            "preview": MetadataValue.md(preview.tail(6).to_markdown(index=False, floatfmt=".5g"))
        }
        return output_once_per_run(context, frame, summary, details)

    return features
