"""``/health`` for monitors and ``/meta`` for clients that build their menus from it."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from fastapi import APIRouter
from fastapi.responses import Response

from cryptify_pipeline.api import schemas
from cryptify_pipeline.api.deps import DatabaseDep, IntervalLevelDep, NowDep, SymbolsDep
from cryptify_pipeline.api.envelope import ERROR_RESPONSES, success
from cryptify_pipeline.api.errors import error_body, json_response
from cryptify_pipeline.api.names import MODEL_ALIASES
from cryptify_pipeline.api.queries import DatabaseUnavailable
from cryptify_pipeline.api.windows import RANGE_HOURS
from cryptify_pipeline.hours import HOUR, last_closed_hour
from cryptify_pipeline.ml.models import ZOO
from cryptify_pipeline.ml.targets import HORIZONS

# the hour that closed at HH:00 is collected at HH:02 and due by HH:15, as the pipeline's
# candles_fresh check says (assets/candle_checks.py)
FRESHNESS_GRACE = timedelta(minutes=15)

router = APIRouter()


@router.get(
    "/health",
    response_model=schemas.HealthResponse,
    responses={503: {"model": schemas.HealthUnavailableResponse}},
    summary="Is the database readable, and is the newest closed hour stored?",
)
def health(db: DatabaseDep, symbols: SymbolsDep, now: NowDep) -> Response:
    due = last_closed_hour(now - FRESHNESS_GRACE)
    try:
        candles = db.latest_by_symbol("candles", symbols.configured)
        predictions = db.latest_by_symbol("predictions", symbols.configured)
    except DatabaseUnavailable as error:
        return json_response(
            {
                **error_body("database_unavailable", f"the database cannot be read: {error}"),
                "database": str(error),
                "latest_candle": None,
                "latest_prediction": None,
                "lag_hours": None,
            },
            503,
        )
    latest_candle = _oldest(candles.values())
    missing = [s for s, latest in candles.items() if latest is None or latest < due]
    lag = None if latest_candle is None else max(0, int((due - latest_candle) / HOUR))
    return json_response(
        {
            "status": "degraded" if missing else "ok",
            "database": "ok",
            "latest_candle": latest_candle,
            "latest_prediction": _oldest(predictions.values()),
            "lag_hours": lag,
            "missing_symbols": missing,
        }
    )


@router.get(
    "/meta",
    response_model=schemas.MetaResponse,
    responses={503: ERROR_RESPONSES[503]},
    summary="The symbols (with their newest candle), models, aliases, horizons, ranges and the "
    "interval level.",
)
def meta(db: DatabaseDep, symbols: SymbolsDep, interval_level: IntervalLevelDep) -> Response:
    latest = db.latest_by_symbol("candles", symbols.configured)
    return success(
        data={
            "symbols": [{"symbol": s, "latest_candle": t} for s, t in latest.items()],
            "models": list(ZOO),
            "aliases": {a: m for a, m in MODEL_ALIASES.items() if a not in ZOO},
            "horizons": list(HORIZONS),
            "time_ranges": {str(name): hours for name, hours in RANGE_HOURS.items()},
            "interval_level": interval_level,
        }
    )


def _oldest(moments: Iterable[datetime | None]) -> datetime | None:
    """The oldest of the per-symbol newest hours: the newest hour every symbol has."""
    values = list(moments)
    return None if not values or None in values else min(values)
