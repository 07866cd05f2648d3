"""``/backtest``: the forecasts in money terms, as the backtest summary holds them."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response

from cryptify_pipeline.api import schemas
from cryptify_pipeline.api.deps import DatabaseDep, HorizonParam, ModelDep, SymbolDep
from cryptify_pipeline.api.envelope import ERROR_RESPONSES, rows, success
from cryptify_pipeline.api.errors import ApiError
from cryptify_pipeline.ml.backtest import RULES

router = APIRouter()

RuleName = StrEnum("RuleName", {rule: rule for rule in RULES})
# 'all' or a recent window of days, as the summary names them (30d by default)
WINDOW_PATTERN = r"^(all|[1-9][0-9]{0,3}d)$"


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
        held = db.backtest_windows(symbol)
        if held and window not in held:
            raise ApiError(
                404,
                "unknown_backtest_window",
                f"no backtest window {window!r} for {symbol}; the summary holds {', '.join(held)}",
                {"window": window, "valid": held},
            )
    return success(
        data=rows(found),
        metadata={"symbol": symbol, "count": found.count, "window": window, "rule": rule_name},
    )
