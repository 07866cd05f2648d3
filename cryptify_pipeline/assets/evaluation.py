"""``forecast_metrics`` (daily) and the ``leaderboard``: every forecast scored against reality."""

from datetime import UTC, datetime, timedelta

import pandas as pd
from dagster import (
    AssetExecutionContext,
    AssetIn,
    AssetsDefinition,
    AutomationCondition,
    Config,
    Failure,
    MetadataValue,
    Output,
    asset,
)
from pydantic import Field, field_validator

from cryptify_pipeline.automation.run_config import config_of, constrained_config
from cryptify_pipeline.ml.plots import as_markdown_image, forecast_plot_png
from cryptify_pipeline.ml.scoring import rank_models, score_day
from cryptify_pipeline.ml.targets import HORIZONS
from cryptify_pipeline.partitions import Partitions, realised_next_day
from cryptify_pipeline.resources import PostgresDatabase


class LeaderboardConfig(Config):
    """Knobs of the leaderboard in evaluate_job: the recent window and the plot."""

    recent_days: int = Field(
        default=30, ge=1, le=3650, description="The recent window ranked beside all time, days."
    )
    plot_lookback_hours: int = Field(
        default=168, ge=1, le=10_000, description="Hours of forecasts drawn in the plot."
    )
    plot_horizon_h: int = Field(default=6, description="Horizon drawn in the plot: 6, 12 or 24.")

    @field_validator("plot_horizon_h")
    @classmethod
    def _known_horizon(cls, horizon: int) -> int:
        if horizon not in HORIZONS:
            raise ValueError(f"plot_horizon_h must be one of {list(HORIZONS)}")
        return horizon


def evaluation_assets(partitions: Partitions) -> list[AssetsDefinition]:
    """``forecast_metrics`` on ``partitions``' days, and the ``leaderboard`` over all of them."""

    @asset(
        partitions_def=partitions.daily,
        pool="forecast_metrics",
        ins={"predictions": AssetIn(), "candles": AssetIn(partition_mapping=realised_next_day)},
        metadata={"partition_expr": "day", "primary_key": ["day", "symbol", "model", "horizon_h"]},
        group_name="evaluation",
        kinds={"postgres"},
        description=(
            "Forecasts made on day D scored against the candles they forecast (through D+1), per "
            "symbol, model and horizon, every model on the same rows, with the baselines' figures."
        ),
    )
    def forecast_metrics(
        context: AssetExecutionContext, predictions: pd.DataFrame, candles: pd.DataFrame
    ) -> Output[pd.DataFrame]:
        window = context.partition_time_window
        scorable_at = window.end + timedelta(days=1)
        if datetime.now(UTC) < scorable_at:
            raise Failure(
                f"forecasts up to {window.end:%Y-%m-%d %H:%M} can be scored once the next day has "
                f"closed, at {scorable_at:%Y-%m-%d %H:%M} UTC",
                allow_retries=False,
            )
        days = pd.date_range(window.start, window.end, freq="D", inclusive="left")
        frame = pd.concat(
            [score_day(predictions, candles, day.to_pydatetime()) for day in days],
            ignore_index=True,
        )
        if frame.empty:
            raise Failure(
                f"no forecasts to score in {window.start:%Y-%m-%d}..{window.end:%Y-%m-%d}"
            )
        return Output(
            frame,
            metadata={
                "scored_forecasts": int(frame["n"].sum()),
                "by_model": MetadataValue.md(
                    frame.groupby(["model", "horizon_h"])[
                        ["rmse", "r2_vs_zero", "directional_accuracy", "coverage"]
                    ]
                    .mean()
                    .reset_index()
                    .to_markdown(index=False, floatfmt=".4g")
                ),  # fmt: skip
            },
        )

    @asset(
        ins={"forecast_metrics": AssetIn()},
        config_schema=constrained_config(LeaderboardConfig),
        pool="leaderboard",
        # not eager(): that waits until no upstream partition is missing, and old unscored days
        # always are; the leaderboard is a summary, so any new score is reason to refresh it,
        # unless evaluate_job already refreshed it with those scores
        automation_condition=(
            AutomationCondition.any_deps_updated()
            & ~AutomationCondition.newly_updated()
            & ~AutomationCondition.in_progress()
        ).with_label("refresh after new scores"),
        group_name="evaluation",
        kinds={"postgres"},
        description=(
            "Per symbol and horizon, every model over the recent days (30 by default) and all "
            "time, ranked by RMSE, with skill against the zero-return forecast; and a plot of the "
            "last week's forecasts of the best model."
        ),
    )
    def leaderboard(
        context: AssetExecutionContext, database: PostgresDatabase, forecast_metrics: pd.DataFrame
    ) -> Output[pd.DataFrame]:
        config = config_of(context, LeaderboardConfig)
        board = rank_models(forecast_metrics, last_days=config.recent_days)
        recent = f"{config.recent_days}d"
        metadata: dict[str, object] = {
            f"leaderboard ({recent})": MetadataValue.md(
                board[board["window"] == recent].to_markdown(index=False, floatfmt=".4g")
            ),
            "how to read": MetadataValue.md(
                "RMSE of log-return forecasts; `skill_vs_zero` > 0 means better than saying the "
                "price stays where it is. At these horizons a realistic model has R2 near zero and "
                "50-55% directional accuracy: far above that is a bug until proven otherwise."
            ),
        }
        plot = _recent_forecast_plot(database, board, config)
        if plot:
            metadata[f"last {config.plot_lookback_hours} hours"] = MetadataValue.md(plot)
        return Output(board, metadata=metadata)

    return [forecast_metrics, leaderboard]


def _recent_forecast_plot(
    database: PostgresDatabase, board: pd.DataFrame, config: LeaderboardConfig
) -> str | None:
    recent, horizon = f"{config.recent_days}d", config.plot_horizon_h
    best = board[(board["window"] == recent) & (board["horizon_h"] == horizon)]
    if best.empty:
        return None
    model = best.sort_values("rmse")["model"].iloc[0]
    end = database.latest_ts("candles")
    if end is None:
        return None
    start = end - timedelta(hours=config.plot_lookback_hours)
    forecasts = database.read_time_range("predictions", start, end)
    forecasts = forecasts[(forecasts["model"] == model) & (forecasts["horizon_h"] == horizon)]
    candles = database.read_time_range("candles", start, end + timedelta(hours=1))
    if forecasts.empty:
        return None
    title = (
        f"{model}, {horizon}h forecasts of the last {config.plot_lookback_hours} hours "
        f"(best {recent} RMSE)"
    )
    return as_markdown_image(forecast_plot_png(forecasts, candles, title), title)
