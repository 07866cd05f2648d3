"""The API's responses as pydantic models: what ``/docs`` and ``/openapi.json`` describe.

The large responses are built as JSON by Postgres (``queries.py``) and are not re-validated
on the way out, for speed; the tests check every endpoint's bodies against these models
(``extra="forbid"``) and schemathesis checks them against the OpenAPI spec.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- errors ----------------------------------------------------------------------------------


class ErrorDetail(_Strict):
    code: str = Field(
        description="invalid_parameter, invalid_window, window_too_long, unknown_symbol, "
        "unknown_model, unknown_backtest_window, not_found, method_not_allowed, "
        "database_unavailable or internal_error"
    )
    message: str = Field(description="What was wrong, naming the parameter and value.")
    details: dict[str, Any] = Field(description="Machine-readable specifics (valid values...).")


class ErrorResponse(_Strict):
    status: Literal["error"]
    error: ErrorDetail


# -- rows ------------------------------------------------------------------------------------


class Bar(_Strict):
    """A stored, closed hourly candle; ``timestamp`` is its open time."""

    timestamp: datetime
    symbol: str
    open: float
    high: float
    low: float
    close: float
    volume: float


class Prediction(_Strict):
    """One model's forecast made at ``timestamp`` (the close of that hour's candle) for
    ``predicted_time`` = ``timestamp`` + ``prediction_horizon`` hours. Prices are
    ``close * exp(log return)``; ``ci_low``/``ci_high`` bound the interval at the pipeline's
    level (CRYPTIFY_INTERVAL_LEVEL), and are absent (never null) when the model has no
    calibrated interval."""

    timestamp: datetime
    symbol: str
    prediction_horizon: int = Field(description="Hours ahead: 6, 12 or 24.")
    predicted_time: datetime
    predicted_value: float = Field(description="Forecast price: close * exp(predicted log return).")
    predicted_log_return: float
    # absent rather than null: the old web app reads a null bound as its highest confidence
    ci_low: float = Field(default=None, description="Interval's lower price; absent if none.")
    ci_high: float = Field(default=None, description="Interval's upper price; absent if none.")
    model: str = Field(description="The model name asked for (an alias stays an alias).")
    model_id: str = Field(description="The zoo model whose forecasts these are.")


class FeatureRow(_Strict):
    timestamp: datetime
    symbol: str
    close: float
    features: dict[str, float | None] = Field(
        description="Every feature column at this hour, the market context's too "
        "(open interest, funding, equity index; index_market_open is 1 or 0); null while its "
        "window is incomplete or its context is missing."
    )


# the interval figures: shares of the price at forecast time (0.05 reads 5% of the price),
# null where no forecast had an interval (or was scored before these figures were)
_WIDTH_SHARE = "Mean interval width (upper - lower) / close."
_INTERVAL_SCORE = (
    "Mean interval (Winkler) score, a share of the price: width + (2 / a) x the distance the "
    "realised price fell outside; lower is better."
)
_PINBALL_LOWER = "Mean pinball loss of the lower bound as the a/2 quantile; a share of the price."
_PINBALL_UPPER = "Mean pinball loss of the upper bound as the 1 - a/2 quantile."
_TERCILE_COVERAGE = (
    "Coverage of the forecasts made in the {} third of the symbol's volatility (cut at the "
    "terciles of its last 30 days); null where none was."
)


class _IntervalScores(_Strict):
    """The interval figures a leaderboard row and a day's scores both carry."""

    width_share: float | None = Field(description=_WIDTH_SHARE)
    interval_score: float | None = Field(description=_INTERVAL_SCORE)
    pinball_lower: float | None = Field(description=_PINBALL_LOWER)
    pinball_upper: float | None = Field(description=_PINBALL_UPPER)
    coverage_low_vol: float | None = Field(description=_TERCILE_COVERAGE.format("lowest"))
    coverage_mid_vol: float | None = Field(description=_TERCILE_COVERAGE.format("middle"))
    coverage_high_vol: float | None = Field(description=_TERCILE_COVERAGE.format("highest"))


class LeaderboardRow(_IntervalScores):
    symbol: str
    horizon_h: int
    model: str
    model_id: str
    window: str = Field(description="'all', or the recent window such as '30d'.")
    n: int
    mae: float | None
    rmse: float | None
    r2_vs_zero: float | None
    directional_accuracy: float | None
    coverage: float | None
    skill_vs_zero: float | None
    rank: int


class DayScore(_IntervalScores):
    day: datetime
    symbol: str
    model: str
    model_id: str
    horizon_h: int
    n: int
    mae: float | None
    rmse: float | None
    r2_vs_zero: float | None
    directional_accuracy: float | None
    coverage: float | None


class ModelRecord(_Strict):
    """A trained model's provenance and validation figures (never its bytes)."""

    day: datetime = Field(description="The model serves forecasts made on the day after this.")
    symbol: str
    model: str
    horizon_h: int
    cutoff: datetime
    fit_start: datetime
    fit_end: datetime
    validation_start: datetime
    validation_end: datetime
    fit_rows: int
    validation_rows: int
    features: list[str]
    val_mae: float | None
    val_rmse: float | None
    val_r2_vs_zero: float | None
    val_directional_accuracy: float | None
    interval_low: float | None
    interval_high: float | None
    interval_scale_median: float | None
    artifact_format: str = Field(description="How the model is stored, e.g. skops.")
    sha256: str
    library_versions: dict[str, str] = Field(description="The versions that stored it.")
    sklearn_version: str
    python_version: str
    signing_key_id: str = Field(description="Which key signed it (an id, not the key).")
    trained_at: datetime


class BacktestRow(_Strict):
    """A model's forecasts traded by a rule over a window, after costs, beside buy-and-hold."""

    symbol: str
    model: str = Field(description="The model name asked for (an alias stays an alias).")
    model_id: str = Field(description="The zoo model whose forecasts were traded.")
    horizon_h: int = Field(description="Each forecast holds 1/h of the capital for h hours.")
    rule: Literal["sign", "edge", "interval"]
    sides: Literal["long_short", "long_only"]
    fee_bps: float = Field(description="Fee per side in basis points.")
    slippage_bps: float = Field(description="Slippage per side in basis points.")
    window: str = Field(description="'all', or the recent window such as '30d'.")
    first_hour: datetime
    last_hour: datetime
    hours: int = Field(description="Hours traded with both candles present.")
    total_return: float = Field(description="Compounded return after costs.")
    sharpe: float | None = Field(description="Annualised: x sqrt(24 x 365); null if flat.")
    sortino: float | None = Field(description="Annualised; null without a losing hour.")
    max_drawdown: float = Field(description="Worst fall from a running peak (<= 0).")
    turnover_per_day: float = Field(description="Capital traded per day.")
    hit_rate: float | None = Field(description="Share of hours in the market on the right side.")
    exposure: float | None = Field(description="Mean |position|.")
    bh_total_return: float
    bh_sharpe: float | None
    bh_sortino: float | None
    bh_max_drawdown: float
    sharpe_p_vs_zero: float | None = Field(
        description="One-sided block-bootstrap p-value of Sharpe > 0; null if not tested."
    )
    sharpe_p_vs_hold: float | None = Field(
        description="One-sided block-bootstrap p-value of Sharpe > buy-and-hold's."
    )
    beats_zero: bool = Field(description="p below 5% / models tested (Bonferroni).")
    beats_buy_and_hold: bool
    test_note: str | None = Field(description="Why the p-values are null; null if tested.")


class EquityCurves(_Strict):
    """What one unit of capital became, hour by hour: at ``time[0]`` (the start of the first
    hour traded) every curve is 1, then at the close of each hour. An hour without its candle
    earns nothing."""

    time: list[datetime]
    strategy: list[float] = Field(description="The rule trading the forecasts, after costs.")
    buy_and_hold: list[float] = Field(description="Holding the symbol (no costs).")
    flat: list[float] = Field(description="Cash: 1 throughout.")


class BacktestEquityRow(BacktestRow):
    """A backtest summary row and the equity curves its figures are computed on."""

    equity: EquityCurves


# -- envelopes -------------------------------------------------------------------------------


class HistoryData(_Strict):
    raw_bars: list[Bar]
    predictions: list[Prediction]


class HistoryMetadata(_Strict):
    bars_count: int
    predictions_count: int
    symbol: str
    model: str | None
    predictions: Literal["newest", "all"] = Field(
        description="newest: one forecast per model and horizon; all: the window's series."
    )


class TimeRange(_Strict):
    from_: datetime = Field(alias="from")
    to: datetime


class HistoryResponse(_Strict):
    status: Literal["success"]
    data: HistoryData
    metadata: HistoryMetadata
    time_range: TimeRange


class PredictMetadata(_Strict):
    symbol: str
    model: str
    made_by: Literal["pipeline"]
    note: str


class PredictResponse(_Strict):
    status: Literal["success"]
    data: Prediction
    metadata: PredictMetadata


class ListMetadata(_Strict):
    symbol: str
    count: int


class RangeMetadata(ListMetadata):
    truncated: bool = Field(description="True when more rows matched than the limit allowed.")


class PredictionsResponse(_Strict):
    status: Literal["success"]
    data: list[Prediction]
    metadata: ListMetadata


class FeaturesResponse(_Strict):
    status: Literal["success"]
    data: list[FeatureRow]
    metadata: ListMetadata


class RangeFeaturesResponse(_Strict):
    status: Literal["success"]
    data: list[FeatureRow]
    metadata: RangeMetadata
    time_range: TimeRange


class MetricsData(_Strict):
    leaderboard: list[LeaderboardRow]
    latest_day: datetime | None = Field(description="The newest day scored, if any.")
    latest_scores: list[DayScore]


class MetricsResponse(_Strict):
    status: Literal["success"]
    data: MetricsData
    metadata: ListMetadata


class BacktestMetadata(_Strict):
    symbol: str
    count: int
    window: str | None = Field(description="The window asked for; null: every window.")
    rule: str | None = Field(description="The rule asked for; null: every rule.")


class BacktestResponse(_Strict):
    status: Literal["success"]
    data: list[BacktestRow]
    metadata: BacktestMetadata


class BacktestEquityMetadata(_Strict):
    symbol: str
    model: str
    horizon_h: int
    rule: str
    count: int
    window: str | None = Field(
        description="The window served: the one asked for, else the recent one the summary "
        "holds (else all); null when the summary holds none for the symbol."
    )
    windows: list[str] = Field(description="The windows the summary holds for the symbol.")
    rules: list[str] = Field(description="The rules the summary holds for the symbol.")


class BacktestEquityResponse(_Strict):
    status: Literal["success"]
    data: list[BacktestEquityRow] = Field(
        description="One row per cost setting the window was traded with (normally one); "
        "empty before the model's forecasts at that horizon have been backtested."
    )
    metadata: BacktestEquityMetadata


class ModelsData(_Strict):
    day: datetime | None = Field(description="The newest training day, if any.")
    models: list[ModelRecord]


class ModelsResponse(_Strict):
    status: Literal["success"]
    data: ModelsData
    metadata: ListMetadata


class SymbolInfo(_Strict):
    symbol: str
    latest_candle: datetime | None


class MetaData(_Strict):
    symbols: list[SymbolInfo]
    models: list[str]
    aliases: dict[str, str] = Field(description="Old frontend names and the zoo model each means.")
    horizons: list[int]
    time_ranges: dict[str, int] = Field(description="time_range values and their hours.")
    interval_level: float = Field(
        description="The level of the forecasts' intervals (CRYPTIFY_INTERVAL_LEVEL), e.g. 0.9.",
        examples=[0.9],
    )


class MetaResponse(_Strict):
    status: Literal["success"]
    data: MetaData


class HealthResponse(_Strict):
    status: Literal["ok", "degraded"]
    database: str = Field(description="'ok', or why the database cannot be read.")
    latest_candle: datetime | None = Field(
        description="The newest hour whose candle is stored for every configured symbol."
    )
    latest_prediction: datetime | None = Field(
        description="The newest hour with forecasts for every configured symbol."
    )
    lag_hours: int | None = Field(
        description="Closed hours due but not stored (0 when current; null with no candles)."
    )
    missing_symbols: list[str] = Field(description="Symbols without the newest due candle.")


class HealthUnavailableResponse(_Strict):
    """503: the error envelope, plus the health fields a monitor reads."""

    status: Literal["error"]
    error: ErrorDetail
    database: str = Field(description="Why the database cannot be read.")
    latest_candle: None
    latest_prediction: None
    lag_hours: None
