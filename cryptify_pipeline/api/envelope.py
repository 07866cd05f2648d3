"""The success envelope, ``{status: "success", data, metadata, ...}``, with rows Postgres already
wrote as JSON passed through untouched; and the error responses every data route documents."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi.responses import Response

from cryptify_pipeline.api import schemas
from cryptify_pipeline.api.queries import JsonRows

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": schemas.ErrorResponse, "description": "Inconsistent input"},
    404: {"model": schemas.ErrorResponse, "description": "Unknown symbol or model"},
    422: {"model": schemas.ErrorResponse, "description": "Malformed parameter"},
    503: {"model": schemas.ErrorResponse, "description": "Database unavailable"},
}


def rows(json_rows: JsonRows) -> orjson.Fragment:
    """Rows as Postgres wrote them, embedded without parsing."""
    return orjson.Fragment(json_rows.json)


def success_body(**parts: Any) -> bytes:
    return orjson.dumps({"status": "success", **parts}, default=str)


def success(**parts: Any) -> Response:
    return Response(success_body(**parts), media_type="application/json")
