"""The web page (one HTML file; its script shows the list at ``/`` and a search at ``/ui/searches/{id}``)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

router = APIRouter(include_in_schema=False)


@lru_cache(maxsize=1)
def _page() -> str:
    return (Path(__file__).resolve().parents[2] / "web" / "index.html").read_text(encoding="utf-8")


@router.get("/", response_class=HTMLResponse)
def index() -> HTMLResponse:
    return HTMLResponse(_page())


@router.get("/ui/searches/{search_id}", response_class=HTMLResponse)
def search_page(search_id: int) -> HTMLResponse:
    del search_id  # the page's script reads it from the address
    return HTMLResponse(_page())
