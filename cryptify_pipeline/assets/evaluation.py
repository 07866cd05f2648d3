"""``forecast_metrics`` (daily) and the ``leaderboard``: every forecast scored against reality."""

from datetime import UTC, datetime, timedelta

import pandas as pd
from dagster import (
    AssetExecutionContext,
    AssetIn,
    AutomationCondition,
    Failure,
    MetadataValue,
    Output,
    asset,
)

from cryptify_pipeline.ml.forecasting import leaderboard as rank_models
from cryptify_pipeline.ml.forecasting import score_day
from cryptify_pipeline.ml.plots import as_markdown_image, forecast_plot_png
from cryptify_pipeline.partitions import daily_partitions, realised_next_day
from cryptify_pipeline.resources import PostgresDatabase

PLOT_DAYS = 7
PLOT_HORIZON = 6


@asset(
    partitions_def=daily_partitions,
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
        [score_day(predictions, candles, day.to_pydatetime()) for day in days], ignore_index=True
    )
    if frame.empty:
        raise Failure(f"no forecasts to score in {window.start:%Y-%m-%d}..{window.end:%Y-%m-%d}")
    frame["day"] = pd.to_datetime(frame["day"], utc=True).astype("datetime64[us, UTC]")
    frame[["symbol", "model"]] = frame[["symbol", "model"]].astype("str")
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
    # not eager(): that waits until no upstream partition is missing, and old unscored days
    # always are; the leaderboard is a summary, so any new score is reason to refresh it
    automation_condition=(
        AutomationCondition.any_deps_updated() & ~AutomationCondition.in_progress()
    ).with_label("refresh after new scores"),
    group_name="evaluation",
    kinds={"postgres"},
    description=(
        "Per symbol and horizon, every model over the last 30 days and all time, ranked by "
        "RMSE, with skill against the zero-return forecast; and a plot of the last week."
    ),
)
def leaderboard(
    context: AssetExecutionContext, database: PostgresDatabase, forecast_metrics: pd.DataFrame
) -> Output[pd.DataFrame]:
    board = rank_models(forecast_metrics)
    board[["symbol", "model", "window"]] = board[["symbol", "model", "window"]].astype("str")
    metadata: dict[str, object] = {
        "leaderboard (30d)": MetadataValue.md(
            board[board["window"] == "30d"].to_markdown(index=False, floatfmt=".4g")
        ),
        "how to read": MetadataValue.md(
            "RMSE of log-return forecasts; `skill_vs_zero` > 0 means better than saying the "
            "price stays where it is. At these horizons a realistic model has R2 near zero and "
            "50-55% directional accuracy: far above that is a bug until proven otherwise."
        ),
    }
    plot = _recent_forecast_plot(database, board)
    if plot:
        metadata["last 7 days"] = MetadataValue.md(plot)
    return Output(board, metadata=metadata)


def _recent_forecast_plot(database: PostgresDatabase, board: pd.DataFrame) -> str | None:
    best = board[(board["window"] == "30d") & (board["horizon_h"] == PLOT_HORIZON)]
    if best.empty:
        return None
    model = best.sort_values("rmse")["model"].iloc[0]
    end = database.latest_ts("candles")
    if end is None:
        return None
    start = end - timedelta(days=PLOT_DAYS)
    forecasts = database.read_time_range("predictions", start, end)
    forecasts = forecasts[(forecasts["model"] == model) & (forecasts["horizon_h"] == PLOT_HORIZON)]
    candles = database.read_time_range("candles", start, end + timedelta(hours=1))
    if forecasts.empty:
        return None
    title = f"{model}, {PLOT_HORIZON}h forecasts of the last {PLOT_DAYS} days (best 30d RMSE)"
    return as_markdown_image(forecast_plot_png(forecasts, candles, title), title)
