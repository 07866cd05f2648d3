"""``/backtest``: the forecasts in money terms, as the backtest summary holds them."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import orjson
from fastapi import APIRouter, Query
from fastapi.responses import Response

from cryptify_pipeline.api import schemas
from cryptify_pipeline.api.deps import DatabaseDep, Horizon, HorizonParam, ModelDep, SymbolDep
from cryptify_pipeline.api.envelope import ERROR_RESPONSES, rows, success
from cryptify_pipeline.api.equity import equity_curves
from cryptify_pipeline.api.errors import ApiError
from cryptify_pipeline.api.names import resolve_model
from cryptify_pipeline.ml.backtest import RULES

router = APIRouter()

RuleName = StrEnum("RuleName", {rule: rule for rule in RULES})
# 'all' or a recent window of days, as the summary names them (30d by default)
WINDOW_PATTERN = r"^(all|[1-9][0-9]{0,3}d)$"
ALL_DAYS = "all"


@router.get(
    "/backtest",
    response_model=schemas.BacktestResponse,
    responses=ERROR_RESPONSES,
    summary="The forecasts traded by simple rules: returns after costs beside buy-and-hold.",
    description=(
        "Per model, horizon, rule and window of the backtest summary: total return after fees "
        "and slippage, annualised Sharpe and Sortino, maximum drawdown, turnover, hit rate and "
        "exposure, buy-and-hold's figures over the same hours, and block-bootstrap p-values "
        "of the Sharpe ratio against zero and against buy-and-hold. Rules: `sign` (long when "
        "the forecast is up, short when down), `edge` (only when |forecast| exceeds the "
        "round-trip cost), `interval` (only when the interval excludes no change). `window` is "
        "`all` or the recent window (e.g. `30d`); a well-formed window the summary does not "
        "hold is a 404 naming those it does. A backtest replays the past: it is not a promise."
    ),
)
def backtest(
    db: DatabaseDep,
    symbol: SymbolDep,
    model: ModelDep,
    horizon: HorizonParam = None,
    window: Annotated[
        str | None,
        Query(pattern=WINDOW_PATTERN, description="all or e.g. 30d; default: every window"),
    ] = None,
    rule: Annotated[RuleName | None, Query(description="default: every rule")] = None,
) -> Response:
    rule_name = rule.value if rule is not None else None
    found = db.backtest(
        symbol,
        model.model_id if model else None,
        model.label if model else None,
        int(horizon) if horizon is not None else None,
        window,
        rule_name,
    )
    if window is not None and not found.count:
        windows, _ = db.backtest_choices(symbol)
        _refuse_unheld_window(symbol, window, windows)
    return success(
        data=rows(found),
        metadata={"symbol": symbol, "count": found.count, "window": window, "rule": rule_name},
    )


@router.get(
    "/backtest/equity",
    response_model=schemas.BacktestEquityResponse,
    responses=ERROR_RESPONSES,
    summary="One model's backtest as equity curves: the strategy, buy-and-hold and cash.",
    description=(
        "The backtest summary's row of a model, horizon, rule and window (the dashboard's "
        "panel), with the hourly equity curves its figures are computed on: what one unit of "
        "capital became trading the forecasts by the rule after fees and slippage, holding the "
        "symbol, and holding cash. `window` defaults to the recent window the summary holds "
        "(e.g. `30d`), else `all`; one it does not hold is a 404 naming those it does. Before "
        "the forecasts are backtested `data` is empty (not an error). A backtest replays the "
        "past: it is not a promise."
    ),
)
def backtest_equity(
    db: DatabaseDep,
    symbol: SymbolDep,
    model: Annotated[str, Query(description="A zoo model or an old frontend's name")],
    horizon: Annotated[Horizon, Query(description="Hours ahead")],
    rule: Annotated[RuleName, Query(description="The rule that traded the forecasts")] = (
        RuleName.sign
    ),
    window: Annotated[
        str | None,
        Query(pattern=WINDOW_PATTERN, description="all or e.g. 30d; default: the recent one"),
    ] = None,
) -> Response:
    choice = resolve_model(model)
    assert choice is not None  # a required parameter is never absent
    windows, rules = db.backtest_choices(symbol)
    if window is None:
        window = recent_window(windows)
    elif windows:
        _refuse_unheld_window(symbol, window, windows)
    found = []
    if window is not None:
        summary = db.backtest(
            symbol, choice.model_id, choice.label, int(horizon), window, rule.value
        )
        found = orjson.loads(summary.json)
    for row in found:
        row["equity"] = equity_curves(db.backtest_hours(symbol, row))
    return success(
        data=found,
        metadata={
            "symbol": symbol, "model": choice.label, "horizon_h": int(horizon),
            "rule": rule.value, "count": len(found), "window": window, "windows": windows,
            "rules": rules,
        },
    )  # fmt: skip


def recent_window(windows: list[str]) -> str | None:
    """The recent window of those held (e.g. ``30d``), else ``all``; None when none is held."""
    recent = [window for window in windows if window != ALL_DAYS]
    return recent[0] if recent else (ALL_DAYS if ALL_DAYS in windows else None)


def _refuse_unheld_window(symbol: str, window: str, held: list[str]) -> None:
    if held and window not in held:
        raise ApiError(
            404,
            "unknown_backtest_window",
            f"no backtest window {window!r} for {symbol}; the summary holds {', '.join(held)}",
            {"window": window, "valid": held},
        )
