"""``features``: the model inputs of every candle, from a fixed trailing window of candles and
of the market context (open interest, funding, an equity index) known when the candle closed."""

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
from cryptify_pipeline.ml.context_features import (
    CONTEXT_COLUMNS,
    FUNDING_FEATURES,
    INDEX_FEATURES,
    OPEN_INTEREST_FEATURES,
    MarketContext,
)
from cryptify_pipeline.ml.feature_table import feature_table, rows_with_nan
from cryptify_pipeline.ml.features import FEATURE_COLUMNS, LOOKBACK_HOURS
from cryptify_pipeline.partitions import Partitions, features_lookback
from cryptify_pipeline.resources import MarketData
from cryptify_pipeline.storage.io_manager import ABSENT_TABLE_IS_EMPTY

PREVIEW_COLUMNS = (
    "ts", "symbol", "close", "log_return_1h", "volatility_21h", "rsi_14",
    "oi_log_change_1h", "funding_rate", "index_log_return_1h",
)  # fmt: skip

# the context is optional: a deployment that never collected it still gets its features
_CONTEXT_INPUT = AssetIn(
    partition_mapping=features_lookback, metadata={ABSENT_TABLE_IS_EMPTY: True}
)
# only what the features are computed from: not the candles' source and ingestion time
_CANDLE_COLUMNS = ["ts", "symbol", "open", "high", "low", "close", "volume"]


def features_asset(partitions: Partitions) -> AssetsDefinition:
    """The ``features`` asset on ``partitions``' hours."""

    @asset(
        partitions_def=partitions.hourly,
        backfill_policy=BackfillPolicy.single_run(),
        pool="features",
        ins={
            "candles": AssetIn(
                partition_mapping=features_lookback, metadata={"columns": _CANDLE_COLUMNS}
            ),
            "open_interest": _CONTEXT_INPUT,
            "funding_rates": _CONTEXT_INPUT,
            "equity_index": _CONTEXT_INPUT,
        },
        metadata={"partition_expr": "ts", "primary_key": ["symbol", "ts"], **described(FEATURES)},
        group_name="forecasting",
        kinds={"postgres"},
        description=(
            f"One row per candle: returns, candle shape, volatility, volume, RSI, MACD, ATR and "
            f"calendar features, each from the {LOOKBACK_HOURS} hours of candles ending at ts; "
            "and the market context known when the candle closed (open interest, funding and "
            "the first configured equity index), NaN where it is missing."
        ),
    )
    def features(
        context: AssetExecutionContext,
        market: MarketData,
        candles: pd.DataFrame,
        open_interest: pd.DataFrame,
        funding_rates: pd.DataFrame,
        equity_index: pd.DataFrame,
    ) -> Output[pd.DataFrame]:
        window = context.partition_time_window
        # the first configured index is the one whose bars become features
        index_symbol = market.equity_indexes[0] if market.equity_indexes else None
        known = MarketContext(open_interest, funding_rates, equity_index, index_symbol)
        frame = feature_table(candles, window.start, window.end, known)
        incomplete = rows_with_nan(frame, FEATURE_COLUMNS)
        if incomplete:
            context.log.info(
                f"{incomplete} row(s) have NaN features: history shorter than the lookback, or a "
                "missing candle inside it"
            )
        without = {
            name: rows_with_nan(frame, columns)
            for name, columns in (
                ("open interest", OPEN_INTEREST_FEATURES),
                ("funding", FUNDING_FEATURES),
                ("equity index", INDEX_FEATURES),
            )
        }
        if any(without.values()):
            context.log.info(
                "rows with NaN market context (missing or not collected; forecasts impute it): "
                + ", ".join(f"{name} {count}" for name, count in without.items())
            )
        summary = {
            "rows": len(frame),
            "rows_with_nan_features": incomplete,
            "rows_with_nan_context": rows_with_nan(frame, CONTEXT_COLUMNS),
            **{f"rows_without_{name.replace(' ', '_')}": n for name, n in without.items()},
            "first_ts": str(frame["ts"].min()) if len(frame) else "none",
            "last_ts": str(frame["ts"].max()) if len(frame) else "none",
        }
        preview = frame.tail(6)[list(PREVIEW_COLUMNS)]  # selected first, it copied every row
        details = {"preview": MetadataValue.md(preview.to_markdown(index=False, floatfmt=".5g"))}
        return output_once_per_run(context, frame, summary, details)

    return features
