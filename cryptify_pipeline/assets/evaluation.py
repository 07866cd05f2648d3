"""``forecast_metrics`` (daily) and the ``leaderboard``: every forecast scored against reality."""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pandas as pd
from dagster import (
    AssetExecutionContext,
    AssetIn,
    AssetKey,
    AssetsDefinition,
    AutomationCondition,
    Config,
    DagsterEventType,
    Failure,
    MetadataValue,
    Output,
    asset,
)
from pydantic import Field, field_validator

from cryptify_pipeline.assets import columns
from cryptify_pipeline.assets.columns import described
from cryptify_pipeline.hours import describe_runs, hour_key
from cryptify_pipeline.ml.features import EWMA_VOLATILITY
from cryptify_pipeline.ml.models import ZERO_RETURN
from cryptify_pipeline.ml.plots import as_markdown_image, forecast_plot_png
from cryptify_pipeline.ml.scoring import TERCILE_HISTORY_DAYS, rank_models, score_day
from cryptify_pipeline.ml.significance import MIN_WINDOWS, SIGNIFICANCE, significantly_better
from cryptify_pipeline.ml.targets import HORIZONS
from cryptify_pipeline.partitions import Partitions, realised_next_day
from cryptify_pipeline.resources import PostgresDatabase
from cryptify_pipeline.run_config import config_of, constrained_config
from cryptify_pipeline.storage.pg_tables import TableError


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


def evaluation_assets(partitions: Partitions, interval_level: float) -> list[AssetsDefinition]:
    """``forecast_metrics`` on ``partitions``' days, and the ``leaderboard`` over all of them;
    ``interval_level`` labels them."""

    @asset(
        partitions_def=partitions.daily,
        pool="forecast_metrics",
        ins={"predictions": AssetIn(), "candles": AssetIn(partition_mapping=realised_next_day)},
        metadata={
            "partition_expr": "day",
            "primary_key": ["day", "symbol", "model", "horizon_h"],
            **described(columns.FORECAST_METRICS),
        },
        group_name="evaluation",
        kinds={"postgres"},
        description=(
            "Forecasts made on day D scored against the candles they forecast (through D+1), per "
            "symbol, model and horizon, every model of a symbol and horizon on the same rows: "
            f"accuracy, coverage of the {interval_level:.0%} intervals, the zero forecast's and "
            "drift's figures on those rows, the intervals' width, interval (Winkler) score, "
            "pinball losses and coverage per volatility tercile, and the hourly loss "
            "differentials against zero."
        ),
    )
    def forecast_metrics(
        context: AssetExecutionContext,
        database: PostgresDatabase,
        predictions: pd.DataFrame,
        candles: pd.DataFrame,
    ) -> Output[pd.DataFrame]:
        window = context.partition_time_window
        scorable_at = window.end + timedelta(days=1)
        if datetime.now(UTC) < scorable_at:
            raise Failure(
                f"forecasts up to {window.end:%Y-%m-%d %H:%M} can be scored once the next day has "
                f"closed, at {scorable_at:%Y-%m-%d %H:%M} UTC",
                allow_retries=False,
            )
        made = predictions[(predictions["ts"] >= window.start) & (predictions["ts"] < window.end)]
        _fail_on_uncollected_targets(context, made)
        holes = _targets_without_candles(made, candles)
        if holes:
            context.log.warning(
                f"{len(holes)} forecast target(s) have no candle although their hour was "
                f"collected (the source had none), scored without: {', '.join(holes[:10])}"
                + (" ..." if len(holes) > 10 else "")
            )
        days = pd.date_range(window.start, window.end, freq="D", inclusive="left")
        volatility = _volatility_history(database, window.start, window.end)
        if volatility is None:
            context.log.warning(
                "no features table to read the volatility history from: coverage per "
                "volatility tercile is not scored for these days (their tercile counts are 0)"
            )
        frame = pd.concat(
            [
                score_day(
                    predictions, candles, day.to_pydatetime(), warn=context.log.warning,
                    volatility=volatility,
                )
                for day in days
            ],
            ignore_index=True,
        )  # fmt: skip
        if frame.empty:
            raise Failure(
                f"no forecasts to score in {window.start:%Y-%m-%d}..{window.end:%Y-%m-%d}"
            )
        return Output(
            frame,
            metadata={
                "scored_forecasts": int(frame["n"].sum()),
                "targets_without_candles": len(holes),
                "by_model": MetadataValue.md(
                    frame.groupby(["model", "horizon_h"])[
                        ["rmse", "r2_vs_zero", "directional_accuracy", "coverage", "width_share"]
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
        metadata=described(columns.leaderboard(interval_level)),
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
            "time: its figures on its own rows, skill against the zero forecast and drift, a "
            "Diebold-Mariano test against zero, and a rank by RMSE on the rows the current models "
            f"share, and the coverage of the {interval_level:.0%} intervals; and a plot of the "
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
            "better than zero?": MetadataValue.md(significance_text(board, recent)),
            "how to read": MetadataValue.md(HOW_TO_READ),
        }
        plot = _recent_forecast_plot(database, board, config)
        if plot:
            metadata[f"last {config.plot_lookback_hours} hours"] = MetadataValue.md(plot)
        return Output(board, metadata=metadata)

    return [forecast_metrics, leaderboard]


def _volatility_history(
    database: PostgresDatabase, start: datetime, end: datetime
) -> pd.DataFrame | None:
    """The EWMA volatility (the intervals' scale) of every symbol from ``TERCILE_HISTORY_DAYS``
    before ``start`` to ``end``: the hours scored and the history that sets their terciles;
    None without a features table. Read from the table, not an input: the features of those
    hours are upstream of the predictions scored already, and a dependency on a month of
    hourly partitions per day would only slow the asset graph."""
    try:
        history = database.read_time_range(
            "features", start - timedelta(days=TERCILE_HISTORY_DAYS), end,
            columns=["symbol", "ts", EWMA_VOLATILITY],
        )  # fmt: skip
    except TableError:
        return None
    return history.rename(columns={EWMA_VOLATILITY: "volatility"})


def _fail_on_uncollected_targets(context: AssetExecutionContext, made: pd.DataFrame) -> None:
    """Fails naming the target candle hours that have not been collected yet: the day is scored
    once they are (gap repair collects them, the missing_scores sensor then scores it)."""
    targets = sorted(pd.Timestamp(ts).to_pydatetime() for ts in made["target_ts"].unique())
    collected = context.instance.get_latest_storage_id_by_partition(
        AssetKey("candles"),
        DagsterEventType.ASSET_MATERIALIZATION,
        {hour_key(ts) for ts in targets},
    )
    uncollected = [ts for ts in targets if hour_key(ts) not in collected]
    if uncollected:
        raise Failure(
            f"{len(uncollected)} candle hour(s) these forecasts are scored against have not been "
            f"collected yet: {describe_runs(uncollected)}; gap repair collects them, and the "
            "missing_scores sensor scores the day once they are in",
            allow_retries=False,
        )


def _targets_without_candles(made: pd.DataFrame, candles: pd.DataFrame) -> list[str]:
    """'SYMBOL HOUR' of the forecast targets whose candle does not exist."""
    wanted = made[["symbol", "target_ts"]].drop_duplicates()
    have = pd.MultiIndex.from_frame(candles[["symbol", "ts"]])
    absent = wanted[~pd.MultiIndex.from_frame(wanted).isin(have)]
    return [f"{symbol} {ts:%Y-%m-%d %H:%M}" for symbol, ts in absent.itertuples(index=False)]


HOW_TO_READ = (
    "RMSE of log-return forecasts, each model's figures on its own rows. `skill_vs_zero` > 0 "
    "means better than saying the price stays where it is, `skill_vs_drift` > 0 better than "
    "repeating the training mean. `dm_stat` > 0 means lower squared errors than the zero "
    "forecast; `dm_p_value` is the one-sided Diebold-Mariano p-value (h-1 lags of overlap, "
    "Harvey-Leybourne-Newbold correction, Student t): a model is called better than zero below "
    f"{SIGNIFICANCE:.0%} divided by the number of models tested for that symbol and horizon "
    f"(Bonferroni). Below {MIN_WINDOWS} independent h-hour windows ({MIN_WINDOWS} x h scored "
    "hours) nothing is tested: `dm_stat` and `dm_p_value` are null and `dm_note` says why. "
    "`rank` compares the models scored on the window's last day on the `rank_rows` rows they "
    "all share. At these horizons a realistic model has R2 near zero and 50-55% directional "
    "accuracy: far above that is a bug until proven otherwise. Intervals: `coverage` should be "
    "near the level, in each volatility tercile too (`coverage_low_vol` .. `coverage_high_vol`: "
    "a band right on average but wrong in storms shows there); `width_share` is the mean width "
    "as a share of the price, `interval_score` (Winkler) and `pinball_lower`/`pinball_upper` "
    "weigh width against misses, also shares of the price: lower is better."
)


@dataclass(frozen=True)
class Verdict:
    """The models of a symbol and horizon significantly better than zero, those not tested
    (model -> why), and whether any was tested."""

    better: list[str]
    untested: dict[str, str]
    tested_any: bool

    def text(self) -> str:
        """The verdict in a line: the models better, or that none is, or why none was tested."""
        if not self.tested_any:
            return "; ".join(sorted(set(self.untested.values())))
        said = ", ".join(self.better) or "no model is significantly better than zero"
        for note in sorted(set(self.untested.values())):
            models = sorted(m for m, n in self.untested.items() if n == note)
            said += f"; {', '.join(models)}: {note}"
        return said


def verdicts(board: pd.DataFrame, window: str) -> dict[tuple[str, int], Verdict]:
    """Per (symbol, horizon), the models of ``window`` significantly better than zero, and the
    models without a p-value with their ``dm_note``."""
    compared = board[(board["window"] == window) & (board["model"] != ZERO_RETURN)]
    result = {}
    for (symbol, horizon), group in compared.groupby(["symbol", "horizon_h"], sort=True):
        p_values = dict(zip(group["model"], group["dm_p_value"], strict=True))
        untested = group[group["dm_p_value"].isna()]
        result[symbol, int(horizon)] = Verdict(
            better=significantly_better(p_values),
            untested={
                model: note if isinstance(note, str) else "not tested"
                for model, note in zip(untested["model"], untested["dm_note"], strict=True)
            },
            tested_any=bool(group["dm_p_value"].notna().any()),
        )
    return result


def significance_text(board: pd.DataFrame, window: str) -> str:
    """Per symbol and horizon, the models significantly better than zero in ``window``; says so
    plainly when there are none, and why when none was tested."""
    found = verdicts(board, window)
    if not found:
        return "nothing scored"
    lines = [
        f"- {symbol} {horizon}h: {verdict.text()}" for (symbol, horizon), verdict in found.items()
    ]
    if not any(verdict.tested_any for verdict in found.values()):
        lines.insert(
            0,
            f"**No model could be tested against the zero forecast ({window}): too few "
            "forecasts scored.**",
        )
    elif not any(verdict.better for verdict in found.values()):
        lines.insert(0, f"**No model is significantly better than the zero forecast ({window}).**")
    return "\n".join(lines)


def best_models(board: pd.DataFrame, window: str, horizon: int) -> dict[str, str]:
    """Per symbol, its own best model at ``horizon`` in ``window``: rank 1 on the rows the
    current models share (a calm symbol's best model says nothing about a wild one's)."""
    ranked = board[(board["window"] == window) & (board["horizon_h"] == horizon)]
    ranked = ranked[ranked["rank"].notna()].sort_values(["symbol", "rank", "model"])
    return ranked.groupby("symbol", sort=True)["model"].first().to_dict()


def _recent_forecast_plot(
    database: PostgresDatabase, board: pd.DataFrame, config: LeaderboardConfig
) -> str | None:
    recent, horizon = f"{config.recent_days}d", config.plot_horizon_h
    best = best_models(board, recent, horizon)
    end = database.latest_ts("candles")
    if not best or end is None:
        return None
    start = end - timedelta(hours=config.plot_lookback_hours)
    forecasts = database.read_time_range("predictions", start, end)
    chosen = pd.MultiIndex.from_tuples(list(best.items()))
    forecasts = forecasts[
        (forecasts["horizon_h"] == horizon)
        & pd.MultiIndex.from_frame(forecasts[["symbol", "model"]]).isin(chosen)
    ]
    if forecasts.empty:
        return None
    candles = database.read_time_range("candles", start, end + timedelta(hours=1))
    found = verdicts(board, recent)
    panels = {
        symbol: f"{symbol}: {model}, best {recent} RMSE; "
        + _panel_verdict(found.get((symbol, horizon)))
        for symbol, model in best.items()
    }
    title = (
        f"{horizon}h forecasts of the last {config.plot_lookback_hours} hours, each symbol's "
        "best model"
    )
    return as_markdown_image(forecast_plot_png(forecasts, candles, title, panels), title)


def _panel_verdict(verdict: Verdict | None) -> str:
    if verdict and verdict.better:
        return f"significantly better than zero: {', '.join(verdict.better)}"
    if verdict and verdict.tested_any:
        return "no model significantly better than zero"
    return "too few forecasts to test against zero"
