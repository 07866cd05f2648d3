"""``predictions``: each model's 6h / 12h / 24h forecast at every hour, with its interval."""

from datetime import datetime, timedelta

import pandas as pd
from dagster import (
    AssetExecutionContext,
    AssetIn,
    AssetsDefinition,
    BackfillPolicy,
    Failure,
    MetadataValue,
    Output,
    asset,
)

from cryptify_pipeline.assets import columns
from cryptify_pipeline.assets.columns import described
from cryptify_pipeline.assets.run_metadata import output_once_per_run
from cryptify_pipeline.ml.artifacts import ModelIntegrityError
from cryptify_pipeline.ml.forecasting import MissingInputs, forecast
from cryptify_pipeline.ml.lstm import MAX_WINDOW_HOURS
from cryptify_pipeline.ml.signing import SigningKeyError
from cryptify_pipeline.partitions import Partitions, previous_day_model
from cryptify_pipeline.resources import MarketData, ModelSigning, PostgresDatabase
from cryptify_pipeline.storage.pg_tables import TableError


def predictions_asset(partitions: Partitions, interval_level: float) -> AssetsDefinition:
    """The ``predictions`` asset on ``partitions``' hours; ``interval_level`` labels it."""

    @asset(
        partitions_def=partitions.hourly,
        backfill_policy=BackfillPolicy.single_run(),
        pool="predictions",
        ins={
            # the hours' own features; the week before them, which an LSTM's window reaches
            # back into, is read from the table (see _window_history)
            "features": AssetIn(),
            "models": AssetIn(partition_mapping=previous_day_model),
        },
        metadata={
            "partition_expr": "ts",
            "primary_key": ["symbol", "ts", "model", "horizon_h"],
            **described(columns.predictions(interval_level)),
        },
        group_name="forecasting",
        kinds={"postgres"},
        description=(
            "Every model's forecast of the log return to ts + h, made at hour ts with the models "
            "trained through the end of the previous day, each loaded only if the model signing "
            "key signed it for its row: price = close * exp(return), with the model's "
            f"split-conformal {interval_level:.0%} interval (none where uncalibrated). Kept "
            "forever, realised or not."
        ),
    )
    def predictions(
        context: AssetExecutionContext,
        market: MarketData,
        model_signing: ModelSigning,
        database: PostgresDatabase,
        features: pd.DataFrame,
        models: pd.DataFrame,
    ) -> Output[pd.DataFrame]:
        window = context.partition_time_window
        try:
            key = model_signing.signing_key()
            history = _window_history(database, window.start)
            frame = forecast(
                pd.concat([history, features], ignore_index=True) if len(history) else features,
                models, market.symbols, window.start, window.end, key,
            )  # fmt: skip
        except (MissingInputs, ModelIntegrityError, SigningKeyError) as error:
            raise Failure(str(error), allow_retries=False) from error
        latest = frame[frame["ts"] == frame["ts"].max()]
        shown = ["ts", "symbol", "model", "horizon_h", "close", "pred_price", "lower", "upper"]
        return output_once_per_run(
            context,
            frame,
            summary={"forecasts": len(frame), "models_used": frame["model_sha256"].nunique()},
            details={
                "latest": MetadataValue.md(latest[shown].to_markdown(index=False, floatfmt=".6g"))
            },
        )

    return predictions


def _window_history(database: PostgresDatabase, start: datetime) -> pd.DataFrame:
    """The features of the ``MAX_WINDOW_HOURS - 1`` hours before ``start`` (empty without a
    features table). Read from the table, not through a week-long partition mapping: with one,
    every forecast hour would depend on 168 hours of features, and the ``forecast_repair``
    condition would hold back a week of repairs behind any one hour without features."""
    try:
        return database.read_time_range(
            "features", start - timedelta(hours=MAX_WINDOW_HOURS - 1), start
        )
    except TableError:
        return pd.DataFrame()
