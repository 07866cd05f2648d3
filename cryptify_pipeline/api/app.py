"""The read-only data API and its dashboard: ``create_app(settings)`` assembles the FastAPI app
from the routers in ``routes/``, and ``serve`` runs it.

No Dagster here: the API reads the asset tables the pipeline writes, through ``queries.py``.
Bodies are JSON built by Postgres (see ``queries.py``), described by ``schemas.py``. The docs
pages (``/docs``, ``/redoc``) load Swagger UI and ReDoc from an installed package, so they
work without internet, as the dashboard does.
"""

from __future__ import annotations

import errno
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline

from cryptify_pipeline.api.cache import ResponseCache
from cryptify_pipeline.api.deps import ApiState
from cryptify_pipeline.api.errors import error_body, install_error_handlers, json_response
from cryptify_pipeline.api.metrics import ApiMetrics
from cryptify_pipeline.api.names import Symbols
from cryptify_pipeline.api.queries import Database, DatabaseUnavailable
from cryptify_pipeline.api.routes import (
    backtest,
    dashboard,
    docs,
    features,
    history,
    metrics,
    predictions,
    scores,
    status,
)
from cryptify_pipeline.settings import DEFAULT_API_HOST, DEFAULT_API_PORT, Settings
from cryptify_pipeline.storage.server import resolve_database_url

ROUTERS = (dashboard, docs, status, history, predictions, features, scores, backtest, metrics)


def api_database(settings: Settings) -> Database:
    """The tables as the API reads them: ``CRYPTIFY_API_DATABASE_URL`` if set (a read-only
    role), else the pipeline's own database."""
    url = settings.api_database_url or resolve_database_url(settings.database)
    return Database(url, settings.schema, instance_schema=settings.instance_schema)


def create_app(
    settings: Settings,
    database: Database | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> FastAPI:
    """The API over ``database`` (default: ``api_database(settings)``); ``clock`` says what
    time it is (tests pin it)."""
    db = database or api_database(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        db.close()

    app = FastAPIOffline(
        title="Cryptify data API",
        version="1.0",
        summary="Candles, features, forecasts and scores of the Cryptify pipeline (read-only).",
        lifespan=lifespan,
        static_url=docs.STATIC_URL,
        redoc_url=None,  # routes/docs.py serves it, with a policy that keeps it offline
    )
    measured = ApiMetrics(db, settings.symbols, clock)
    app.state.api = ApiState(
        db, Symbols(settings.symbols), clock, ResponseCache(), settings.interval_level, measured
    )
    install_error_handlers(app)

    @app.middleware("http")
    async def _count(request: Request, call_next: Callable[[Request], Awaitable[Response]]):
        started = time.perf_counter()
        status = 500  # unless a response comes back
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            # the route's template (/predict/{model}/{horizon}), not the path: bounded labels
            route = getattr(request.scope.get("route"), "path", None) or "unmatched"
            measured.observe(request.method, route, status, time.perf_counter() - started)

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

    app.mount("/static", StaticFiles(directory=dashboard.STATIC), name="static")
    for area in ROUTERS:
        app.include_router(area.router)
    return app


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
