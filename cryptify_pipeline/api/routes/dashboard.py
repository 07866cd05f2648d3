"""The dashboard page and the chart library it loads, both served from installed files: the
page needs no CDN."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

STATIC = Path(__file__).parent.parent / "static"

router = APIRouter(include_in_schema=False)


@router.get("/")
def dashboard() -> FileResponse:
    return FileResponse(STATIC / "index.html")


@router.get("/vendor/plotly.min.js")
def chart_library() -> FileResponse:
    path = resources.files("plotly") / "package_data" / "plotly.min.js"
    return FileResponse(
        str(path), media_type="text/javascript", headers={"Cache-Control": "max-age=86400"}
    )
