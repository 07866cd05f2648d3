"""``backtest`` (daily) and ``backtest_summary``: the forecasts traded by simple rules, in money
terms (the arithmetic is in ``ml/backtest.py``)."""

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
from cryptify_pipeline.ml.backtest import RULES, Costs, backtest_day, equity_curves, summarise
from cryptify_pipeline.ml.plots import as_markdown_image, equity_plot_png
from cryptify_pipeline.ml.significance import MIN_WINDOWS, SIGNIFICANCE
from cryptify_pipeline.ml.targets import HORIZONS
from cryptify_pipeline.partitions import Partitions, backtest_candles, backtest_forecasts
from cryptify_pipeline.run_config import config_of, constrained_config


class BacktestConfig(Config):
    """The rules traded and what trading costs."""

    rules: list[str] = Field(
        default=list(RULES), description=f"Rules to trade, of {', '.join(RULES)}."
    )
    long_only: bool = Field(default=False, description="Hold cash instead of going short.")
    fee_bps: float = Field(
        default=10.0, ge=0, le=1000, description="Fee per side in basis points (10: a taker fee)."
    )
    slippage_bps: float = Field(
        default=5.0, ge=0, le=1000, description="Slippage per side in basis points."
    )

    @field_validator("rules")
    @classmethod
    def _known_rules(cls, rules: list[str]) -> list[str]:
        unknown = sorted(set(rules) - set(RULES))
        if unknown:
            raise ValueError(f"unknown rule(s) {unknown}: the rules are {list(RULES)}")
        if not rules or len(set(rules)) != len(rules):
            raise ValueError(f"rules must name at least one rule, each once, of {list(RULES)}")
        return rules


class BacktestSummaryConfig(Config):
    """The recent window beside all days, and what the equity plot draws."""

    recent_days: int = Field(
        default=30, ge=1, le=3650, description="The recent window summarised beside all days."
    )
    plot_horizon_h: int = Field(default=24, description="Horizon drawn: 6, 12 or 24.")
    plot_rule: str = Field(default="sign", description=f"Rule drawn: {', '.join(RULES)}.")

    @field_validator("plot_horizon_h")
    @classmethod
    def _known_horizon(cls, horizon: int) -> int:
        if horizon not in HORIZONS:
            raise ValueError(f"plot_horizon_h must be one of {list(HORIZONS)}")
        return horizon

    @field_validator("plot_rule")
    @classmethod
    def _known_rule(cls, rule: str) -> str:
        if rule not in RULES:
            raise ValueError(f"plot_rule must be one of {list(RULES)}")
        return rule


def backtest_assets(partitions: Partitions) -> list[AssetsDefinition]:
    """``backtest`` on ``partitions``' days and ``backtest_summary`` over all of them."""

    @asset(
        partitions_def=partitions.daily,
        pool="backtest",
        ins={
            "predictions": AssetIn(partition_mapping=backtest_forecasts),
            "candles": AssetIn(partition_mapping=backtest_candles),
        },
        config_schema=constrained_config(BacktestConfig),
        metadata={
            "partition_expr": "day",
            "primary_key": ["day", "symbol", "model", "horizon_h", "rule"],
            **described(columns.BACKTEST),
        },
        group_name="evaluation",
        kinds={"postgres"},
        description=(
            "The hours of day D traded on the forecasts, per symbol, model, horizon and rule "
            "(sign, edge, interval; long/short or long-only): an h-hour forecast holds 1/h of "
            "the capital for the h hours after it was made, every change of position pays fee "
            "and slippage per side; hourly position, turnover and returns of the strategy, "
            "buy-and-hold and flat (cash) side by side."
        ),
    )
    def backtest(
        context: AssetExecutionContext, predictions: pd.DataFrame, candles: pd.DataFrame
    ) -> Output[pd.DataFrame]:
        config = config_of(context, BacktestConfig)
        window = context.partition_time_window
        if datetime.now(UTC) < window.end:
            raise Failure(
                f"the hours up to {window.end:%Y-%m-%d %H:%M} can be backtested once they have "
                "closed",
                allow_retries=False,
            )
        first = max(window.start - timedelta(hours=1), partitions.first_hour)
        _fail_on_uncollected_candles(context, first, window.end)
        costs = Costs(config.fee_bps, config.slippage_bps)
        days = pd.date_range(window.start, window.end, freq="D", inclusive="left")
        frame = pd.concat(
            [
                backtest_day(
                    predictions,
                    candles,
                    day.to_pydatetime(),
                    config.rules,
                    costs,
                    config.long_only,
                )  # fmt: skip
                for day in days
            ],
            ignore_index=True,
        )
        if frame.empty:
            raise Failure(
                f"no forecasts to trade in {window.start:%Y-%m-%d}..{window.end:%Y-%m-%d}"
            )
        by_model = (
            frame.groupby(["rule", "model", "horizon_h"])[
                ["strategy_return_day", "costs", "buy_and_hold_return_day"]
            ]
            .mean()
            .reset_index()
        )  # fmt: skip
        return Output(
            frame,
            metadata={
                "rows": len(frame),
                "fee_bps": config.fee_bps,
                "slippage_bps": config.slippage_bps,
                "sides": "long_only" if config.long_only else "long_short",
                "day's returns (mean over symbols)": MetadataValue.md(
                    by_model.to_markdown(index=False, floatfmt=".4g")
                ),
            },
        )

    @asset(
        ins={"backtest": AssetIn()},
        config_schema=constrained_config(BacktestSummaryConfig),
        pool="backtest_summary",
        metadata=described(columns.BACKTEST_SUMMARY),
        # as the leaderboard: refresh after any new backtest day, unless evaluate_job did
        automation_condition=(
            AutomationCondition.any_deps_updated()
            & ~AutomationCondition.newly_updated()
            & ~AutomationCondition.in_progress()
        ).with_label("refresh after new backtests"),
        group_name="evaluation",
        kinds={"postgres"},
        description=(
            "Per symbol, model, horizon and rule, over the recent days (30 by default) and all "
            "days: total return, annualised Sharpe and Sortino, maximum drawdown, turnover, hit "
            "rate and exposure, and buy-and-hold's beside them; block-bootstrap tests of the "
            "Sharpe ratio against zero and against buy-and-hold; and a plot of the equity curves."
        ),
    )
    def backtest_summary(
        context: AssetExecutionContext, backtest: pd.DataFrame
    ) -> Output[pd.DataFrame]:
        config = config_of(context, BacktestSummaryConfig)
        if backtest.empty:
            raise Failure("nothing backtested yet: materialise backtest for a day first")
        summary = summarise(backtest, last_days=config.recent_days)
        recent = f"{config.recent_days}d"
        shown = summary[(summary["window"] == recent) & (summary["rule"] == config.plot_rule)]
        metadata: dict[str, object] = {
            f"{config.plot_rule} rule ({recent})": MetadataValue.md(
                shown[list(TABLE_COLUMNS)].to_markdown(index=False, floatfmt=".4g")
            ),
            "how to read": MetadataValue.md(HOW_TO_READ),
        }
        latest = pd.Timestamp(backtest["day"].max())
        in_window = backtest[backtest["day"] > latest - timedelta(days=config.recent_days)]
        curves = equity_curves(in_window, config.plot_horizon_h, config.plot_rule)
        if curves:
            title = (
                f"{config.plot_horizon_h}h forecasts traded by the {config.plot_rule} rule, last "
                f"{config.recent_days} days, after costs"
            )
            metadata[f"equity ({recent})"] = MetadataValue.md(
                as_markdown_image(equity_plot_png(curves, title), title)
            )
        return Output(summary, metadata=metadata)

    return [backtest, backtest_summary]


TABLE_COLUMNS = (
    "symbol", "horizon_h", "model", "total_return", "sharpe", "max_drawdown",
    "turnover_per_day", "hit_rate", "exposure", "bh_total_return", "bh_sharpe",
    "sharpe_p_vs_zero", "sharpe_p_vs_hold",
)  # fmt: skip

HOW_TO_READ = (
    "Each forecast of a model is traded by the rule: an h-hour forecast holds 1/h of the "
    "capital from the close of the hour it was made for h hours, so positions use only "
    "forecasts made before the hour they trade. `total_return` is after fees and slippage, "
    "paid per side on every change of position; compare it with `bh_total_return` (holding "
    "the symbol) and with zero (cash). `sharpe` is annualised with sqrt(24 x 365). "
    "`sharpe_p_vs_zero` and `sharpe_p_vs_hold` are one-sided stationary-bootstrap p-values: a "
    f"strategy beats zero or buy-and-hold below {SIGNIFICANCE:.0%} divided by the models "
    f"tested (`beats_zero`, `beats_buy_and_hold`). Below {MIN_WINDOWS} independent h-hour "
    "windows nothing is tested. A backtest is not a promise: it replays one stretch of the "
    "past, with costs assumed and no market impact."
)


def _fail_on_uncollected_candles(
    context: AssetExecutionContext, start: datetime, end: datetime
) -> None:
    """Fails naming the candle hours in [start, end) not collected yet: a return computed
    without them would be missing for good."""
    hours = list(pd.date_range(start, end, freq="h", inclusive="left").to_pydatetime())
    collected = context.instance.get_latest_storage_id_by_partition(
        AssetKey("candles"), DagsterEventType.ASSET_MATERIALIZATION, {hour_key(h) for h in hours}
    )
    uncollected = [hour for hour in hours if hour_key(hour) not in collected]
    if uncollected:
        raise Failure(
            f"{len(uncollected)} candle hour(s) this backtest earns on have not been collected "
            f"yet: {describe_runs(uncollected)}; collect them first (gap repair does)",
            allow_retries=False,
        )
