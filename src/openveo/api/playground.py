"""The playground: one page at `/`, plain HTML, CSS and JavaScript (no build step), that drives the
native job API with the visitor's own key: submit, live progress over server-sent events, cancel,
the video, its history, and the same request as curl / Python / JavaScript."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from openveo.api.errors import ApiError

router = APIRouter()

WEB = Path(__file__).parent / "web"
ASSETS = {"app.js": "text/javascript", "style.css": "text/css"}


@router.get("/", include_in_schema=False)
def page() -> FileResponse:
    return FileResponse(WEB / "index.html", media_type="text/html", headers={"Cache-Control": "no-cache"})


@router.get("/playground/{name}", include_in_schema=False)
def asset(name: str) -> FileResponse:
    if name not in ASSETS:
        raise ApiError(404, f"no such file: {name}")
    return FileResponse(WEB / name, media_type=ASSETS[name], headers={"Cache-Control": "no-cache"})
