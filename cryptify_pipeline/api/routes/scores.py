"""``/metrics/latest`` (the leaderboard and the newest day's scores) and ``/models`` (the
trained models' provenance)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from cryptify_pipeline.api import schemas
from cryptify_pipeline.api.deps import DatabaseDep, HorizonParam, ModelDep, SymbolDep
from cryptify_pipeline.api.envelope import ERROR_RESPONSES, rows, success

router = APIRouter()


@router.get(
    "/metrics/latest",
    response_model=schemas.MetricsResponse,
    responses=ERROR_RESPONSES,
    summary="The leaderboard (recent window and all time) and the newest day's scores.",
)
def latest_metrics(
    db: DatabaseDep, symbol: SymbolDep, model: ModelDep, horizon: HorizonParam = None
) -> Response:
    model_id = model.model_id if model else None
    label = model.label if model else None
    hours = int(horizon) if horizon is not None else None
    board = db.leaderboard(symbol, model_id, label, hours)
    day, scores = db.latest_scores(symbol, model_id, label, hours)
    return success(
        data={"leaderboard": rows(board), "latest_day": day, "latest_scores": rows(scores)},
        metadata={"symbol": symbol, "count": board.count},
    )


@router.get(
    "/models",
    response_model=schemas.ModelsResponse,
    responses=ERROR_RESPONSES,
    summary="The newest day's trained models: provenance and validation figures.",
)
def models(db: DatabaseDep, symbol: SymbolDep) -> Response:
    day, records = db.newest_models(symbol)
    return success(
        data={"day": day, "models": rows(records)},
        metadata={"symbol": symbol, "count": records.count},
    )
