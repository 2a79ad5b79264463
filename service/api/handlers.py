"""The one place where exceptions become HTTP answers: ``{"error": {"code", "message", "field"}}``."""

from __future__ import annotations

import logging
from typing import Any

import redis
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException

from service.db import is_unreachable
from service.errors import EnasError, Unauthorized

logger = logging.getLogger(__name__)

_LOCATIONS = ("body", "query", "path", "header", "cookie")
_HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
               405: "method_not_allowed", 413: "too_large", 415: "unsupported_media_type"}  # fmt: skip


def error_body(code: str, message: str, field: str | None = None, **extra: Any) -> dict[str, Any]:
    """The JSON error body (``extra`` goes next to ``error``)."""
    return {"error": {"code": code, "message": message, "field": field}, **extra}


def _field(loc: tuple[Any, ...] | list[Any]) -> str | None:
    parts = list(loc)
    if parts and parts[0] in _LOCATIONS:
        parts = parts[1:]
    return ".".join(str(p) for p in parts) or None


def _validation_details(exc: RequestValidationError) -> list[dict[str, Any]]:
    details = []
    for err in exc.errors():
        field = _field(err.get("loc", ()))
        kind = err.get("type", "")
        message = err.get("msg", "invalid")
        if kind == "extra_forbidden":
            message = f"unknown field {field}"
        elif field and field not in message:
            message = f"{field}: {message}"
        details.append({"field": field, "message": message, "type": kind})
    return details


async def _on_validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
    details = _validation_details(exc)
    if any(d["type"] == "json_invalid" for d in details):
        return JSONResponse(error_body("bad_request", "the body is not valid JSON"), status_code=400)
    field, message = (details[0]["field"], details[0]["message"]) if details else (None, "invalid request")
    body = error_body("invalid_input", str(message), field, details=details)
    return JSONResponse(body, status_code=422)


async def _on_enas_error(_request: Request, exc: EnasError) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, Unauthorized) else None
    return JSONResponse(exc.to_dict(), status_code=exc.status_code, headers=headers)


async def _on_http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    return JSONResponse(error_body(code, str(exc.detail)), status_code=exc.status_code, headers=exc.headers)


async def _on_database(_request: Request, exc: SQLAlchemyError) -> JSONResponse:
    if isinstance(exc, DBAPIError) and is_unreachable(exc):
        return JSONResponse(error_body("unavailable", "the database is unreachable"), status_code=503)
    logger.exception("database error", exc_info=exc)
    return JSONResponse(error_body("internal", "internal database error"), status_code=500)


async def _on_redis(_request: Request, exc: redis.RedisError) -> JSONResponse:
    if isinstance(exc, redis.ConnectionError | redis.TimeoutError):
        return JSONResponse(error_body("unavailable", f"Redis is unreachable: {exc}"), status_code=503)
    logger.exception("redis error", exc_info=exc)
    return JSONResponse(error_body("internal", "internal queue error"), status_code=500)


async def _on_unexpected(_request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unhandled error", exc_info=exc)
    return JSONResponse(error_body("internal", "internal server error"), status_code=500)


def install_error_handlers(app: FastAPI) -> None:
    """Register every exception handler of the API on ``app``."""
    app.add_exception_handler(RequestValidationError, _on_validation)  # type: ignore[arg-type]
    app.add_exception_handler(EnasError, _on_enas_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _on_http)  # type: ignore[arg-type]
    app.add_exception_handler(SQLAlchemyError, _on_database)  # type: ignore[arg-type]
    app.add_exception_handler(redis.RedisError, _on_redis)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _on_unexpected)
