"""The old backend's forecast calls: ``/history`` (candles of a window and its forecasts) and
``/predict/{model}/{horizon}`` (the newest stored forecast; the API never makes one)."""

from __future__ import annotations

from typing import Annotated, Literal

import orjson
from fastapi import APIRouter, Path, Query
from fastapi.responses import Response

from cryptify_pipeline.api import schemas
from cryptify_pipeline.api.deps import (
    DatabaseDep,
    FromParam,
    HistoryCacheDep,
    Horizon,
    ModelDep,
    NowDep,
    SymbolDep,
    ToParam,
)
from cryptify_pipeline.api.envelope import ERROR_RESPONSES, rows, success, success_body
from cryptify_pipeline.api.errors import ApiError
from cryptify_pipeline.api.names import resolve_model
from cryptify_pipeline.api.windows import TimeRangeName, window

router = APIRouter()

PredictionsShown = Literal["newest", "all"]


@router.get(
    "/history",
    response_model=schemas.HistoryResponse,
    responses=ERROR_RESPONSES,
    summary="The dashboard call: candles of a window and its forecasts.",
    description=(
        "Bars are the stored closed candles with open time in [from, to). Predictions, by "
        "default (`predictions=newest`, the old backend's contract), are the newest forecast "
        "of each model and horizon made before `to` (one per horizon with `model`), sorted "
        "by horizon then model; `predictions=all` gives every forecast made in the window plus "
        "the newest forecast hour before it (the look ahead), oldest first. A forecast without "
        "an interval has no `ci_low`/`ci_high`. Prices are close * exp(predicted log return). "
        "`time_range` (1d, 1w, 1m = 30 days) applies when `from_time` is absent; the default "
        "is 1w."
    ),
)
def history(
    db: DatabaseDep,
    cache: HistoryCacheDep,
    now: NowDep,
    symbol: SymbolDep,
    model: ModelDep,
    from_time: FromParam = None,
    to_time: ToParam = None,
    time_range: Annotated[
        TimeRangeName | None, Query(description="1d, 1w or 1m; default 1w")
    ] = None,
    predictions: Annotated[
        PredictionsShown,
        Query(
            description="newest: the newest forecast per model and horizon (the old backend's "
            "contract); all: every forecast of the window, for a chart of the whole series"
        ),
    ] = "newest",
) -> Response:
    span = window(from_time, to_time, time_range, now)
    model_id = model.model_id if model else None
    label = model.label if model else None
    key = (symbol, span.start, span.end, model_id, label, predictions)
    fingerprint = db.history_fingerprint(symbol, span.start, span.end, model_id)
    body = cache.get(key, fingerprint)
    if body is None:
        bars = db.bars(symbol, span.start, span.end)
        forecasts = db.history_predictions(
            symbol, span.start, span.end, model_id, label, newest_only=predictions == "newest"
        )
        body = success_body(
            data={"raw_bars": rows(bars), "predictions": rows(forecasts)},
            metadata={
                "bars_count": bars.count,
                "predictions_count": forecasts.count,
                "symbol": symbol,
                "model": label,
                "predictions": predictions,
            },
            time_range=span.as_json(),
        )
        if fingerprint is not None:
            cache.put(key, fingerprint, body)
    return Response(body, media_type="application/json")


@router.get(
    "/predict/{model}/{horizon}",
    response_model=schemas.PredictResponse,
    responses=ERROR_RESPONSES,
    summary="The newest stored forecast of a model and horizon (made by the pipeline).",
    description=(
        "The old backend made a forecast on this call; here the pipeline makes every forecast "
        "at the close of each hour, and this returns the newest one stored. `save_to_db` is "
        "accepted for the old clients and ignored: nothing is written."
    ),
)
def predict(
    db: DatabaseDep,
    symbol: SymbolDep,
    model: Annotated[str, Path(description="A zoo model or an old frontend's name")],
    horizon: Annotated[Horizon, Path(description="Hours ahead")],
    save_to_db: Annotated[
        bool | None, Query(description="Accepted and ignored: the API writes nothing")
    ] = None,
) -> Response:
    choice = resolve_model(model)
    assert choice is not None  # a path parameter is never absent
    newest = db.newest_prediction(symbol, choice.model_id, choice.label, int(horizon))
    if newest is None:
        raise ApiError(
            404,
            "no_forecast",
            f"no {choice.label} forecast {int(horizon)} h ahead is stored for {symbol} yet; "
            "the pipeline writes one at the close of every hour once the model is trained",
            {"symbol": symbol, "model": choice.label, "horizon": int(horizon)},
        )
    return success(
        data=orjson.Fragment(newest),
        metadata={
            "symbol": symbol,
            "model": choice.label,
            "made_by": "pipeline",
            "note": "made by the pipeline at the close of the hour in `timestamp`, not on "
            "request; save_to_db is ignored: the API is read-only",
        },
    )
