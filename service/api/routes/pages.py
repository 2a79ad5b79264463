"""The web page: one HTML shell (``/`` lists the searches, ``/ui/searches/{id}`` shows one) and its
static files (plain ES modules and a style sheet under ``/ui/static/``; no build step)."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response

from service.errors import NotFound

router = APIRouter(include_in_schema=False)

WEB_DIR = Path(__file__).resolve().parents[1] / "web"
MEDIA_TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
_NAME = re.compile(r"^[a-z][a-z0-9_-]*\.(js|css|svg)$")
_HEADERS = {"Cache-Control": "no-cache"}  # revalidate each time: a new version shows at once


@lru_cache(maxsize=32)
def _read(name: str) -> str:
    return (WEB_DIR / name).read_text(encoding="utf-8")


@router.get("/", response_class=HTMLResponse)
def index() -> HTMLResponse:
    return HTMLResponse(_read("index.html"), headers=_HEADERS)


@router.get("/ui/searches/{search_id}", response_class=HTMLResponse)
def search_page(search_id: int) -> HTMLResponse:
    del search_id  # the page's script reads it from the address
    return HTMLResponse(_read("index.html"), headers=_HEADERS)


@router.get("/ui/static/{name}")
def static_file(name: str) -> Response:
    """A file of ``service/api/web`` (flat folder; names are checked, so no path leaves it)."""
    if not _NAME.match(name) or not (WEB_DIR / name).is_file():
        raise NotFound(f"no static file {name!r}", field="name")
    return Response(_read(name), media_type=MEDIA_TYPES[Path(name).suffix], headers=_HEADERS)
