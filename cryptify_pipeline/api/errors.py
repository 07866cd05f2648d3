"""One error envelope for everything: ``{status: "error", error: {code, message, details}}``.

400 inconsistent input, 404 unknown symbol, model or path, 422 malformed parameters, 503 the
database cannot be read. Anything else a client sends must not reach the 500 handler.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException

log = logging.getLogger("cryptify.api")

_HTTP_CODES = {404: "not_found", 405: "method_not_allowed"}


class ApiError(Exception):
    """A request the API answers with an error status and the envelope."""

    def __init__(self, status: int, code: str, message: str, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    error = {"code": code, "message": message, "details": details or {}}
    return {"status": "error", "error": error}


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body, default=str), status, headers, media_type="application/json")


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, error: ApiError) -> Response:
        return json_response(error_body(error.code, error.message, error.details), error.status)

    @app.exception_handler(RequestValidationError)
    async def _malformed(request: Request, error: RequestValidationError) -> Response:
        problems = [
            {
                "parameter": ".".join(str(part) for part in problem["loc"]),
                "problem": problem["msg"],
                "type": problem["type"],
            }
            for problem in error.errors()
        ]
        message = "; ".join(f"{p['parameter']}: {p['problem']}" for p in problems)
        return json_response(
            error_body("invalid_parameter", message, {"errors": problems}), status=422
        )

    @app.exception_handler(HTTPException)
    async def _http(request: Request, error: HTTPException) -> Response:
        code = _HTTP_CODES.get(error.status_code, "http_error")
        message = str(error.detail)
        if error.status_code == 404:
            message = f"no endpoint {request.url.path}; see /docs"
        return json_response(error_body(code, message), error.status_code, error.headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, error: Exception) -> Response:
        log.exception("unexpected error on %s", request.url.path)
        return json_response(
            error_body("internal_error", f"unexpected {type(error).__name__}; see the API's log"),
            status=500,
        )
