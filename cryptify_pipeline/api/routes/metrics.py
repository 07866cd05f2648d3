"""``/metrics``, Prometheus' text format; not one of the data operations, so not in the
OpenAPI spec."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST

from cryptify_pipeline.api.deps import api_state

router = APIRouter()


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request) -> Response:
    return Response(api_state(request).metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
