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

from service.errors import EnasError, OverQuota, Unauthorized
from service.store.db import is_unreachable

logger = logging.getLogger(__name__)

_LOCATIONS = ("body", "query", "path", "header", "cookie")
_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    415: "unsupported_media_type",
}


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


def _validation(exc: RequestValidationError) -> JSONResponse:
    details = _validation_details(exc)
    if any(d["type"] == "json_invalid" for d in details):
        return JSONResponse(error_body("bad_request", "the body is not valid JSON"), status_code=400)
    field, message = (details[0]["field"], details[0]["message"]) if details else (None, "invalid request")
    body = error_body("invalid_input", str(message), field, details=details)
    return JSONResponse(body, status_code=422)


def _enas_error(exc: EnasError) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, Unauthorized) else None
    if isinstance(exc, OverQuota):
        headers = {"Retry-After": str(exc.retry_after_s)}
    return JSONResponse(exc.to_dict(), status_code=exc.status_code, headers=headers)


def _http(exc: StarletteHTTPException) -> JSONResponse:
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    return JSONResponse(error_body(code, str(exc.detail)), status_code=exc.status_code, headers=exc.headers)


def _database(exc: SQLAlchemyError) -> JSONResponse:
    if isinstance(exc, DBAPIError) and is_unreachable(exc):
        return JSONResponse(error_body("unavailable", "the database is unreachable"), status_code=503)
    logger.exception("database error", exc_info=exc)
    return JSONResponse(error_body("internal", "internal database error"), status_code=500)


def _redis(exc: redis.RedisError) -> JSONResponse:
    if isinstance(exc, redis.ConnectionError | redis.TimeoutError):
        return JSONResponse(error_body("unavailable", f"Redis is unreachable: {exc}"), status_code=503)
    logger.exception("redis error", exc_info=exc)
    return JSONResponse(error_body("internal", "internal queue error"), status_code=500)


def error_response(exc: Exception) -> JSONResponse:
    """The HTTP answer for ``exc``: our errors with their status, request validation as 422 (400 for
    a body that is not JSON), an unreachable database or Redis as 503, anything else as a logged 500."""
    if isinstance(exc, RequestValidationError):
        return _validation(exc)
    if isinstance(exc, EnasError):
        return _enas_error(exc)
    if isinstance(exc, StarletteHTTPException):
        return _http(exc)
    if isinstance(exc, SQLAlchemyError):
        return _database(exc)
    if isinstance(exc, redis.RedisError):
        return _redis(exc)
    logger.exception("unhandled error", exc_info=exc)
    return JSONResponse(error_body("internal", "internal server error"), status_code=500)


async def _on_error(_request: Request, exc: Exception) -> JSONResponse:
    return error_response(exc)


_HANDLED = (RequestValidationError, EnasError, StarletteHTTPException, SQLAlchemyError, redis.RedisError)


def install_error_handlers(app: FastAPI) -> None:
    """Register `error_response` on ``app`` for every exception (the last, ``Exception``, is the 500
    answer of Starlette's outermost middleware)."""
    for kind in (*_HANDLED, Exception):
        app.add_exception_handler(kind, _on_error)
