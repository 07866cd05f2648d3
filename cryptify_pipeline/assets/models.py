"""``models``: every model of the zoo per symbol and horizon, trained through the end of a day."""

from datetime import UTC, datetime, timedelta
from typing import Literal

import pandas as pd
from dagster import (
    AssetExecutionContext,
    AssetIn,
    AssetsDefinition,
    Config,
    Failure,
    MetadataValue,
    Output,
    asset,
)
from pydantic import Field, field_validator, model_validator

from cryptify_pipeline.assets import columns
from cryptify_pipeline.assets.columns import described
from cryptify_pipeline.ml.artifacts import sign_models
from cryptify_pipeline.ml.lstm import MAX_WINDOW_HOURS, WINDOW_HOURS
from cryptify_pipeline.ml.models import ZOO, models_of
from cryptify_pipeline.ml.signing import SigningKeyError
from cryptify_pipeline.ml.targets import HORIZONS, with_targets
from cryptify_pipeline.ml.training import (
    VALIDATION_FRACTION,
    NotEnoughData,
    min_calibration_residuals,
    rows_needed,
    train_all,
)
from cryptify_pipeline.partitions import MAX_TRAINING_DAYS, Partitions, training_window
from cryptify_pipeline.resources import Forecasting, ModelSigning
from cryptify_pipeline.run_config import config_of, constrained_config
from cryptify_pipeline.storage.slice_reader import SliceReader


class TrainConfig(Config):
    """Knobs of train_job: the rolling window, the horizons, the models to fit and their
    feature set."""

    training_days: int = Field(
        default=180,
        ge=7,
        le=MAX_TRAINING_DAYS,
        description="Rolling training window in days, ending at the day's cut-off.",
    )
    horizons: list[int] = Field(
        default=list(HORIZONS), min_length=1, description="Forecast horizons in hours: 6, 12, 24."
    )
    models: list[str] = Field(
        default=list(ZOO), min_length=1, description=f"Models of the zoo: {list(ZOO)}."
    )
    feature_set: Literal["price", "context", "both"] = Field(
        default="price",
        description="Which of `models` train: those on the price features (`price`), their "
        "`+context` twins that also see open interest, funding and the equity index "
        "(`context`), or both, ranked side by side; the baselines train in every set.",
    )

    lstm_window_hours: int = Field(
        default=WINDOW_HOURS,
        ge=2,
        le=MAX_WINDOW_HOURS,
        description="Hours of feature rows the lstm models see per sample (its window), "
        f"at most {MAX_WINDOW_HOURS}: forecasts read that many hours before their hour.",
    )

    @field_validator("horizons")
    @classmethod
    def _known_horizons(cls, horizons: list[int]) -> list[int]:
        if not set(horizons) <= set(HORIZONS):
            raise ValueError(f"horizons must be among {list(HORIZONS)}, not {horizons}")
        return horizons

    @field_validator("models")
    @classmethod
    def _known_models(cls, models: list[str]) -> list[str]:
        unknown = sorted(set(models) - set(ZOO))
        if unknown:
            raise ValueError(f"unknown model(s) {unknown}; the zoo has {sorted(ZOO)}")
        return models

    @model_validator(mode="after")
    def _some_model_in_the_set(self) -> "TrainConfig":
        if not models_of(self.feature_set, self.models):
            raise ValueError(
                f"none of the models {self.models} trains with feature set "
                f"{self.feature_set!r}: name their +context entries, or choose another set"
            )
        return self

    @property
    def trained_models(self) -> list[str]:
        """The entries of ``models`` in the chosen feature set."""
        return models_of(self.feature_set, self.models)


def models_asset(partitions: Partitions, interval_level: float) -> AssetsDefinition:
    """The ``models`` asset on ``partitions``' days; ``interval_level`` (the deployment's
    setting, which its ``forecasting`` resource also carries) labels it."""

    @asset(
        partitions_def=partitions.daily,
        config_schema=constrained_config(TrainConfig),
        pool="models",
        ins={"features": AssetIn(partition_mapping=training_window)},
        metadata={
            "partition_expr": "day",
            "primary_key": ["day", "symbol", "model", "horizon_h"],
            **described(columns.models(interval_level)),
        },
        group_name="forecasting",
        kinds={"scikitlearn", "xgboost", "keras", "postgres"},
        description=(
            "Per day D, symbol, horizon and model: a scikit-learn pipeline (or an XGBoost model, "
            "or a Keras LSTM over the last hours of features) "
            "fitted on rows whose target was known by the end of D (of the features, only the "
            "run's training window is read), stored in skops's format (or "
            "XGBoost's JSON, or a .keras archive) and signed for its row "
            "with the model signing key, with its sha256, versions, training window, "
            f"validation figures and its split-conformal {interval_level:.0%} interval (in units "
            "of the EWMA volatility at the forecast's hour, calibrated on every held-out hour, "
            "its method and residual count recorded), or none where too few held-out residuals."
        ),
    )
    def models(
        context: AssetExecutionContext,
        model_signing: ModelSigning,
        forecasting: Forecasting,
        features: SliceReader,
    ) -> Output[pd.DataFrame]:
        config = config_of(context, TrainConfig)
        try:
            key = model_signing.signing_key()
        except SigningKeyError as error:
            raise Failure(str(error), allow_retries=False) from None
        window = context.partition_time_window
        days = [window.start + timedelta(days=n) for n in range((window.end - window.start).days)]
        cutoffs = [day + timedelta(days=1) for day in days]
        # the input maps to the longest allowed window; only this run's window is read
        start, end = rows_needed(cutoffs, config.training_days)
        rows = with_targets(features.read_between(start, end))
        context.log.info(f"read {len(rows)} feature rows in [{start}, {end})")
        jobs = forecasting.jobs()
        trained = []
        for day, cutoff in zip(days, cutoffs, strict=True):
            try:
                records = train_all(
                    rows, cutoff, config.horizons, config.trained_models, config.training_days,
                    interval_level=forecasting.interval_level, n_jobs=jobs,
                    lstm_window_hours=config.lstm_window_hours,
                )  # fmt: skip
            except NotEnoughData as error:
                raise Failure(
                    f"models for {day:%Y-%m-%d}: {error}; read {len(rows)} feature rows in "
                    f"[{start:%Y-%m-%d %H:%M}, {end:%Y-%m-%d %H:%M}) UTC",
                    allow_retries=False,
                ) from error
            records.insert(0, "day", day)
            trained.append(sign_models(records, key))
            context.log.info(f"trained {len(records)} models through {cutoff:%Y-%m-%d %H:%M} UTC")
        frame = pd.concat(trained, ignore_index=True)
        frame["trained_at"] = datetime.now(UTC)
        summary = (
            frame.groupby(["model", "horizon_h"])
            .agg(
                val_rmse=("val_rmse", "mean"),
                val_r2_vs_zero=("val_r2_vs_zero", "mean"),
                interval_residuals=("interval_residuals", "min"),
                uncalibrated=("interval_calibrated", lambda calibrated: int((~calibrated).sum())),
            )
            .reset_index()
        )
        if not frame["interval_calibrated"].all():
            uncalibrated = frame[~frame["interval_calibrated"]]
            level = forecasting.interval_level
            needed = ", ".join(
                f"{min_calibration_residuals(level, horizon)} at {horizon} h"
                for horizon in sorted(uncalibrated["horizon_h"].unique().tolist())
            )
            context.log.warning(
                f"{len(uncalibrated)} model(s) have no {level:.0%} interval: too few held-out "
                f"residuals (need {needed}, the last {VALIDATION_FRACTION:.0%} of the rows); "
                "train on more days"
            )
        return Output(
            frame,
            metadata={
                "models": len(frame),
                "rows_loaded": len(rows),
                "first_row_loaded": str(rows["ts"].min()) if len(rows) else "none",
                "last_row_loaded": str(rows["ts"].max()) if len(rows) else "none",
                "training_jobs": jobs,
                "validation (mean over symbols and days)": MetadataValue.md(
                    summary.to_markdown(index=False, floatfmt=".4g")
                ),
            },
        )

    return models
