"""Structured logs: one JSON object per line, with the search id on every line logged for a search.

``configure_logging(settings)`` sets up the root logger of a process (the API, a worker) once;
``bind_search(search_id)`` marks the lines logged inside it (this thread or task, and the threads
it hands work to with a copied context) with ``search_id``; ``SearchLogContext`` is an ASGI
middleware binding the id of ``/searches/{id}...`` requests. A line looks like::

    {"ts": "2026-01-02T03:04:05.678Z", "level": "INFO", "logger": "workers.runner",
     "message": "search 7: epoch 3/8 reward 0.4210 (3.2s)", "search_id": 7}

Fields given with ``logger.info(..., extra={"worker_id": "w1"})`` are added as keys; an exception
comes as ``exc`` (its formatted traceback).
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import IO, Any

_SEARCH_ID: ContextVar[int | None] = ContextVar("enas_search_id", default=None)
_SEARCH_PATH = re.compile(r"^/(?:ui/)?searches/(\d+)(?:/|$)")
# Attributes every LogRecord has: anything else on a record came from `extra=` and is logged.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}
_TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s%(search)s: %(message)s"
_HANDLER_MARK = "_enas_handler"
FORMATS = ("json", "text")


def current_search_id() -> int | None:
    """The search id bound in this context, or None."""
    return _SEARCH_ID.get()


@contextmanager
def bind_search(search_id: int | None) -> Iterator[None]:
    """Log every line inside the block with ``search_id`` (restored on exit; nests)."""
    token = _SEARCH_ID.set(None if search_id is None else int(search_id))
    try:
        yield
    finally:
        _SEARCH_ID.reset(token)


class SearchIdFilter(logging.Filter):
    """Copies the bound search id onto each record (in the thread that logs it) unless the record
    already has one (``extra={"search_id": ...}``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "search_id", None) is None:
            record.search_id = current_search_id()
        return True


def _timestamp(created: float) -> str:
    """ISO 8601 UTC with milliseconds: ``2026-01-02T03:04:05.678Z``."""
    return datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ts (UTC, ms), level, logger, message, search_id when known,
    the record's ``extra`` fields, and ``exc`` / ``stack`` when present."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": _timestamp(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        search_id = getattr(record, "search_id", None)
        if search_id is not None:
            out["search_id"] = search_id
        for key, value in vars(record).items():
            if key not in _STANDARD and key != "search_id" and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(out, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """The human form, for a terminal: ``time LEVEL logger [search 7]: message``."""

    def __init__(self) -> None:
        super().__init__(_TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        search_id = getattr(record, "search_id", None)
        record.search = "" if search_id is None else f" [search {search_id}]"
        return super().format(record)


def configure_logging(
    settings: Any = None, *, level: str | None = None, fmt: str | None = None, stream: IO[str] | None = None
) -> logging.Handler:
    """Send the process's logs to ``stream`` (stderr) as JSON lines (or ``fmt="text"``).

    Args:
        settings: a ``service.settings.Settings``; its ``log_level`` and, when it has one,
            ``log_format`` are the defaults of ``level`` and ``fmt``.
        level: a level name (``INFO``...). fmt: ``json`` (default) or ``text``.
        stream: where lines go.
    Returns the installed handler. Calling it again replaces the handler it installed before;
    uvicorn's loggers are routed through it too (run uvicorn with ``log_config=None``).
    Raises:
        ValueError: an unknown format or level.
    """
    level = (level or getattr(settings, "log_level", None) or "INFO").upper()
    fmt = fmt or getattr(settings, "log_format", None) or "json"
    if fmt not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(SearchIdFilter())
    setattr(handler, _HANDLER_MARK, True)
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _HANDLER_MARK, False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    return handler


class SearchLogContext:
    """ASGI middleware: bind the search id of ``/searches/{id}...`` and ``/ui/searches/{id}``
    requests while they are handled (``app.add_middleware(SearchLogContext)``).

    Plain ASGI, not Starlette's ``BaseHTTPMiddleware``: that one runs each request through extra
    tasks and memory streams, which cost more than a status request itself (bench/RESULTS.md).
    """

    def __init__(self, app: Callable[..., Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        match = _SEARCH_PATH.match(scope.get("path", "")) if scope["type"] in ("http", "websocket") else None
        with bind_search(int(match.group(1)) if match else None):
            await self.app(scope, receive, send)
