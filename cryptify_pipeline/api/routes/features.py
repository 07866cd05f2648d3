"""``/features/latest`` and ``/features``: the feature rows the models read."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response

from cryptify_pipeline.api import schemas
from cryptify_pipeline.api.deps import DatabaseDep, FromParam, NowDep, SymbolDep, ToParam
from cryptify_pipeline.api.envelope import ERROR_RESPONSES, rows, success
from cryptify_pipeline.api.windows import window

router = APIRouter()


@router.get(
    "/features/latest",
    response_model=schemas.FeaturesResponse,
    responses=ERROR_RESPONSES,
    summary="The newest feature rows of a symbol, newest first.",
)
def latest_features(
    db: DatabaseDep,
    symbol: SymbolDep,
    limit: Annotated[int, Query(ge=1, le=1000, description="Hours (rows)")] = 1,
) -> Response:
    found = db.latest_features(symbol, limit)
    return success(data=rows(found), metadata={"symbol": symbol, "count": found.count})


@router.get(
    "/features",
    response_model=schemas.RangeFeaturesResponse,
    responses=ERROR_RESPONSES,
    summary="Feature rows of a window (at most 365 days), oldest first.",
)
def features(
    db: DatabaseDep,
    now: NowDep,
    symbol: SymbolDep,
    from_time: FromParam = None,
    to_time: ToParam = None,
    limit: Annotated[int, Query(ge=1, le=10_000, description="Rows at most")] = 1000,
) -> Response:
    span = window(from_time, to_time, None, now)
    found, truncated = db.features(symbol, span.start, span.end, limit)
    return success(
        data=rows(found),
        metadata={"symbol": symbol, "count": found.count, "truncated": truncated},
        time_range=span.as_json(),
    )
