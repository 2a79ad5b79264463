"""The API docs, Swagger UI (``/docs``) and ReDoc (``/redoc``), with their scripts served from the
installed ``fastapi-offline`` package (``/docs/static/...``): no CDN, so they work offline.

Each page has its own Content-Security-Policy: FastAPI's page starts Swagger UI from one inline
script, allowed by its hash; both viewers set inline styles, and ReDoc runs a web worker from a blob.
"""

from __future__ import annotations

import base64
import hashlib
import re
from functools import lru_cache
from importlib.resources import files

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response

from service.errors import NotFound

router = APIRouter(include_in_schema=False)

STATIC = files("fastapi_offline") / "static"
ASSETS = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "redoc.standalone.js": "text/javascript",
    "favicon.png": "image/png",
}
FROM_CDN = {
    # ReDoc's "API docs by Redocly" footer loads its logo from a CDN: the favicon served here instead
    "redoc.standalone.js": (b"https://cdn.redoc.ly/redoc/logo-mini.svg", b"/docs/static/favicon.png"),
}
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


def docs_csp(html: str) -> str:
    """The policy of a docs page: its inline scripts by hash, inline styles, blob workers."""
    hashes = " ".join(
        f"'sha256-{base64.b64encode(hashlib.sha256(s.encode()).digest()).decode()}'"
        for s in _INLINE_SCRIPT.findall(html)
    )
    return (
        f"default-src 'self'; script-src 'self' {hashes}; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; worker-src 'self' blob:; connect-src 'self'; object-src 'none'; "
        "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )


def _page(page: HTMLResponse) -> HTMLResponse:
    """``page`` with the policy its inline scripts need."""
    page.headers["Content-Security-Policy"] = docs_csp(bytes(page.body).decode())
    return page


def _url(request: Request, path: str) -> str:
    return f"{request.scope.get('root_path', '')}{path}"


@router.get("/docs")
def swagger_ui(request: Request) -> HTMLResponse:
    return _page(
        get_swagger_ui_html(
            openapi_url=_url(request, "/openapi.json"),
            title="enas-service - Swagger UI",
            swagger_js_url=_url(request, "/docs/static/swagger-ui-bundle.js"),
            swagger_css_url=_url(request, "/docs/static/swagger-ui.css"),
            swagger_favicon_url=_url(request, "/docs/static/favicon.png"),
        )
    )


@router.get("/redoc")
def redoc(request: Request) -> HTMLResponse:
    return _page(
        get_redoc_html(
            openapi_url=_url(request, "/openapi.json"),
            title="enas-service - ReDoc",
            redoc_js_url=_url(request, "/docs/static/redoc.standalone.js"),
            redoc_favicon_url=_url(request, "/docs/static/favicon.png"),
            with_google_fonts=False,
        )
    )


@lru_cache(maxsize=len(ASSETS))
def _asset(name: str) -> bytes:
    content = (STATIC / name).read_bytes()
    if name in FROM_CDN:
        content = content.replace(*FROM_CDN[name])
    return content


@router.get("/docs/static/{name}")
def docs_asset(name: str) -> Response:
    """One file of the docs viewers (a fixed list: no other file is reachable)."""
    if name not in ASSETS:
        raise NotFound(f"no docs file {name!r}", field="name")
    return Response(_asset(name), media_type=ASSETS[name], headers={"Cache-Control": "max-age=86400"})
