"""``/predictions/latest``: the newest forecasts of a symbol."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response

from cryptify_pipeline.api import schemas
from cryptify_pipeline.api.deps import DatabaseDep, HorizonParam, ModelDep, SymbolDep
from cryptify_pipeline.api.envelope import ERROR_RESPONSES, rows, success

router = APIRouter()


@router.get(
    "/predictions/latest",
    response_model=schemas.PredictionsResponse,
    responses=ERROR_RESPONSES,
    summary="The newest forecasts of a symbol, newest first.",
)
def latest_predictions(
    db: DatabaseDep,
    symbol: SymbolDep,
    model: ModelDep,
    horizon: HorizonParam = None,
    limit: Annotated[int, Query(ge=1, le=100, description="Forecasts (rows)")] = 10,
) -> Response:
    found = db.latest_predictions(
        symbol,
        model.model_id if model else None,
        model.label if model else None,
        int(horizon) if horizon is not None else None,
        limit,
    )
    return success(data=rows(found), metadata={"symbol": symbol, "count": found.count})
