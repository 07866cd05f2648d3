"""The read-only data API and its dashboard: ``create_app(settings)`` builds the FastAPI app.

No Dagster here: the API reads the asset tables the pipeline writes, through ``queries.py``.
Bodies are JSON built by Postgres (see ``queries.py``), described by ``schemas.py``.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from enum import IntEnum
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import orjson
from fastapi import FastAPI, Query, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles

from cryptify_pipeline.api import schemas
from cryptify_pipeline.api.cache import ResponseCache
from cryptify_pipeline.api.errors import error_body, install_error_handlers, json_response
from cryptify_pipeline.api.names import MODEL_ALIASES, Symbols, resolve_model
from cryptify_pipeline.api.queries import Database, DatabaseUnavailable, JsonRows
from cryptify_pipeline.api.windows import RANGE_HOURS, TimeRangeName, window
from cryptify_pipeline.hours import HOUR, last_closed_hour
from cryptify_pipeline.ml.models import ZOO
from cryptify_pipeline.ml.targets import HORIZONS
from cryptify_pipeline.settings import DEFAULT_API_HOST, DEFAULT_API_PORT, Settings
from cryptify_pipeline.storage.database_url import resolve_database_url

# the hour that closed at HH:00 is collected at HH:02 and due by HH:15, as the pipeline's
# candles_fresh check says (assets/candle_checks.py)
FRESHNESS_GRACE = timedelta(minutes=15)
STATIC = Path(__file__).parent / "static"

Horizon = IntEnum("Horizon", {f"h{hours}": hours for hours in HORIZONS})

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": schemas.ErrorResponse, "description": "Inconsistent input"},
    404: {"model": schemas.ErrorResponse, "description": "Unknown symbol or model"},
    422: {"model": schemas.ErrorResponse, "description": "Malformed parameter"},
    503: {"model": schemas.ErrorResponse, "description": "Database unavailable"},
}

SymbolParam = Annotated[
    str | None,
    Query(
        description="BTC/USDT, BTCUSDT or BTC-USDT; default: the first configured symbol",
        examples=["BTC/USDT"],
    ),
]
ModelParam = Annotated[
    str | None,
    Query(
        description=f"A zoo model ({', '.join(ZOO)}; + may be sent as is) or an old "
        "frontend's name "
        f"({', '.join(f'{a} = {m}' for a, m in MODEL_ALIASES.items())}); default: all",
        examples=["ridge"],
    ),
]
HorizonParam = Annotated[Horizon | None, Query(description="Hours ahead; default: all")]
FromParam = Annotated[datetime | None, Query(description="Window start, ISO 8601 (UTC if naive)")]
ToParam = Annotated[
    datetime | None, Query(description="Window end (excluded); default: the end of this hour")
]


def api_database(settings: Settings) -> Database:
    """The tables as the API reads them: ``CRYPTIFY_API_DATABASE_URL`` if set (a read-only
    role), else the pipeline's own database."""
    url = settings.api_database_url or resolve_database_url(settings.database)
    return Database(url, settings.schema)


def create_app(
    settings: Settings,
    database: Database | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> FastAPI:
    """The API over ``database`` (default: ``api_database(settings)``); ``clock`` says what
    time it is (tests pin it)."""
    db = database or api_database(settings)
    symbols = Symbols(settings.symbols)
    cache = ResponseCache()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        db.close()

    app = FastAPI(
        title="Cryptify data API",
        version="1.0",
        summary="Candles, features, forecasts and scores of the Cryptify pipeline (read-only).",
        lifespan=lifespan,
    )
    app.state.history_cache = cache
    install_error_handlers(app)
    if settings.api_cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.api_cors_origins),
            allow_methods=["GET"],
            allow_headers=["*"],
        )

    @app.exception_handler(DatabaseUnavailable)
    async def _unavailable(request: Request, error: DatabaseUnavailable) -> Response:
        return json_response(
            error_body("database_unavailable", f"the database cannot be read: {error}"), 503
        )

    # -- dashboard -------------------------------------------------------------------------

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    def dashboard() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.get("/vendor/plotly.min.js", include_in_schema=False)
    def chart_library() -> FileResponse:
        # served from the installed plotly package: the page needs no CDN
        path = resources.files("plotly") / "package_data" / "plotly.min.js"
        return FileResponse(
            str(path), media_type="text/javascript", headers={"Cache-Control": "max-age=86400"}
        )

    # -- data ------------------------------------------------------------------------------

    @app.get(
        "/health",
        response_model=schemas.HealthResponse,
        responses={503: {"model": schemas.HealthUnavailableResponse}},
        summary="Is the database readable, and is the newest closed hour stored?",
    )
    def health() -> Response:
        due = last_closed_hour(clock() - FRESHNESS_GRACE)
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

    @app.get(
        "/meta",
        response_model=schemas.MetaResponse,
        responses={503: _ERRORS[503]},
        summary="The symbols (with their newest candle), models, aliases, horizons and ranges.",
    )
    def meta() -> Response:
        latest = db.latest_by_symbol("candles", symbols.configured)
        return _success(
            data={
                "symbols": [{"symbol": s, "latest_candle": t} for s, t in latest.items()],
                "models": list(ZOO),
                "aliases": {a: m for a, m in MODEL_ALIASES.items() if a not in ZOO},
                "horizons": list(HORIZONS),
                "time_ranges": {str(name): hours for name, hours in RANGE_HOURS.items()},
            }
        )

    @app.get(
        "/history",
        response_model=schemas.HistoryResponse,
        responses=_ERRORS,
        summary="The dashboard call: candles of a window and the forecasts made in it.",
        description=(
            "Bars are the stored closed candles with open time in [from, to). Predictions are "
            "those made in the window plus the newest forecast hour before `to` (the look "
            "ahead). Prices are close * exp(predicted log return). `time_range` (1d, 1w, 1m = "
            "30 days) applies when `from_time` is absent; the default is 1w."
        ),
    )
    def history(
        symbol: SymbolParam = None,
        from_time: FromParam = None,
        to_time: ToParam = None,
        time_range: Annotated[
            TimeRangeName | None, Query(description="1d, 1w or 1m; default 1w")
        ] = None,
        model: ModelParam = None,
    ) -> Response:
        name, choice = symbols.resolve(symbol), resolve_model(model)
        span = window(from_time, to_time, time_range, clock())
        model_id = choice.model_id if choice else None
        label = choice.label if choice else None
        key = (name, span.start, span.end, model_id, label)
        fingerprint = db.history_fingerprint(name, span.start, span.end, model_id)
        body = cache.get(key, fingerprint)
        if body is None:
            bars = db.bars(name, span.start, span.end)
            predictions = db.history_predictions(name, span.start, span.end, model_id, label)
            body = _success_body(
                data={"raw_bars": _rows(bars), "predictions": _rows(predictions)},
                metadata={
                    "bars_count": bars.count,
                    "predictions_count": predictions.count,
                    "symbol": name,
                    "model": label,
                },
                time_range=span.as_json(),
            )
            if fingerprint is not None:
                cache.put(key, fingerprint, body)
        return Response(body, media_type="application/json")

    @app.get(
        "/predictions/latest",
        response_model=schemas.PredictionsResponse,
        responses=_ERRORS,
        summary="The newest forecasts of a symbol, newest first.",
    )
    def latest_predictions(
        symbol: SymbolParam = None,
        model: ModelParam = None,
        horizon: HorizonParam = None,
        limit: Annotated[int, Query(ge=1, le=100, description="Forecasts (rows)")] = 10,
    ) -> Response:
        name, choice = symbols.resolve(symbol), resolve_model(model)
        rows = db.latest_predictions(
            name,
            choice.model_id if choice else None,
            choice.label if choice else None,
            int(horizon) if horizon is not None else None,
            limit,
        )
        return _success(data=_rows(rows), metadata={"symbol": name, "count": rows.count})

    @app.get(
        "/features/latest",
        response_model=schemas.FeaturesResponse,
        responses=_ERRORS,
        summary="The newest feature rows of a symbol, newest first.",
    )
    def latest_features(
        symbol: SymbolParam = None,
        limit: Annotated[int, Query(ge=1, le=1000, description="Hours (rows)")] = 1,
    ) -> Response:
        name = symbols.resolve(symbol)
        rows = db.latest_features(name, limit)
        return _success(data=_rows(rows), metadata={"symbol": name, "count": rows.count})

    @app.get(
        "/features",
        response_model=schemas.RangeFeaturesResponse,
        responses=_ERRORS,
        summary="Feature rows of a window (at most 365 days), oldest first.",
    )
    def features(
        symbol: SymbolParam = None,
        from_time: FromParam = None,
        to_time: ToParam = None,
        limit: Annotated[int, Query(ge=1, le=10_000, description="Rows at most")] = 1000,
    ) -> Response:
        name = symbols.resolve(symbol)
        span = window(from_time, to_time, None, clock())
        rows, truncated = db.features(name, span.start, span.end, limit)
        return _success(
            data=_rows(rows),
            metadata={"symbol": name, "count": rows.count, "truncated": truncated},
            time_range=span.as_json(),
        )

    @app.get(
        "/metrics/latest",
        response_model=schemas.MetricsResponse,
        responses=_ERRORS,
        summary="The leaderboard (recent window and all time) and the newest day's scores.",
    )
    def latest_metrics(
        symbol: SymbolParam = None, model: ModelParam = None, horizon: HorizonParam = None
    ) -> Response:
        name, choice = symbols.resolve(symbol), resolve_model(model)
        model_id = choice.model_id if choice else None
        label = choice.label if choice else None
        hours = int(horizon) if horizon is not None else None
        board = db.leaderboard(name, model_id, label, hours)
        day, scores = db.latest_scores(name, model_id, label, hours)
        return _success(
            data={
                "leaderboard": _rows(board),
                "latest_day": day,
                "latest_scores": _rows(scores),
            },
            metadata={"symbol": name, "count": board.count},
        )

    @app.get(
        "/models",
        response_model=schemas.ModelsResponse,
        responses=_ERRORS,
        summary="The newest day's trained models: provenance and validation figures.",
    )
    def models(symbol: SymbolParam = None) -> Response:
        name = symbols.resolve(symbol)
        day, records = db.newest_models(name)
        return _success(
            data={"day": day, "models": _rows(records)},
            metadata={"symbol": name, "count": records.count},
        )

    return app


def _rows(rows: JsonRows) -> orjson.Fragment:
    return orjson.Fragment(rows.json)


def _success_body(**parts: Any) -> bytes:
    return orjson.dumps({"status": "success", **parts}, default=str)


def _success(**parts: Any) -> Response:
    return Response(_success_body(**parts), media_type="application/json")


def _oldest(moments: Any) -> datetime | None:
    """The oldest of the per-symbol newest hours: the newest hour every symbol has."""
    values = list(moments)
    return None if not values or None in values else min(values)


class CannotListen(Exception):
    """The API cannot listen where it was asked to; the message says why, in one line."""


def serve(settings: Settings, host: str = DEFAULT_API_HOST, port: int = DEFAULT_API_PORT) -> None:
    """Serve the API with uvicorn until interrupted, once ``host``:``port`` proved usable:
    uvicorn reports an unusable host or a port in use in several log lines, after startup."""
    import uvicorn

    bound_socket(host, port).close()  # uvicorn binds it again at once, and logs where
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info", access_log=False)


def bound_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host``:``port``, or ``CannotListen`` naming why not."""
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except (OSError, UnicodeError):  # socket.gaierror, or a name IDNA cannot encode
        raise CannotListen(
            f"cannot listen on {where}: {host!r} is not a name or address this machine resolves"
        ) from None
    sock = socket.socket(family, kind, proto)
    # as uvicorn binds: a port left in TIME_WAIT by a stopped server is free again
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as error:
        sock.close()
        why = {
            errno.EADDRINUSE: "the port is in use by another process",
            errno.EADDRNOTAVAIL: f"{host!r} is not an address of this machine",
            errno.EACCES: "not allowed to listen on that port (below 1024 needs privileges)",
        }.get(error.errno or 0, error.strerror or str(error))
        raise CannotListen(f"cannot listen on {where}: {why}") from None
    return sock
