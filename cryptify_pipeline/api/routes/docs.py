"""``/redoc``: ReDoc from fastapi-offline's installed files (``/docs``, Swagger UI, comes with
``FastAPIOffline`` itself), under a content security policy that lets the page load nothing
from another host."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html
from fastapi.responses import HTMLResponse

STATIC_URL = "/vendor/docs"  # where FastAPIOffline mounts its copies of Swagger UI and ReDoc
# ReDoc's sidebar shows Redocly's logo from cdn.redoc.ly, with no option to turn it off: the
# browser is told not to fetch it (or anything else from elsewhere); the page's own inline
# script, styles and the worker ReDoc starts from a blob still run
REDOC_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:"
)

router = APIRouter(include_in_schema=False)


@router.get("/redoc")
def redoc(request: Request) -> HTMLResponse:
    root = request.scope.get("root_path", "")
    page = get_redoc_html(
        openapi_url=f"{root}{request.app.openapi_url}",
        title=f"{request.app.title} - ReDoc",
        redoc_js_url=f"{root}{STATIC_URL}/redoc.standalone.js",
        redoc_favicon_url=f"{root}{STATIC_URL}/favicon.png",
        with_google_fonts=False,
    )
    page.headers["Content-Security-Policy"] = REDOC_POLICY
    return page
