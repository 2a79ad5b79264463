"""Liveness and readiness."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from service.api.deps import connect_queue
from service.api.handlers import error_body
from service.api.responses import errors
from service.errors import EnasError

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process answers (no dependency is checked)."""
    return {"status": "ok"}


def _check_database(state: Any) -> str:
    try:
        if state.store is None:
            raise EnasError("the store is not ready")
        state.store.ping()
    except EnasError as e:
        return f"unavailable: {e.message}"
    return "ok"


def _check_redis(state: Any) -> str:
    try:
        connect_queue(state).redis.ping()
    except Exception as e:  # connection refused, embedded server down, timeouts
        return f"unavailable: {e}"
    return "ok"


@router.get("/readyz", responses=errors(503))
def readyz(request: Request) -> Any:
    """Ready when the database and Redis answer; 503 naming the one that does not."""
    state = request.app.state
    checks = {"database": _check_database(state), "redis": _check_redis(state)}
    failures = [name for name, result in checks.items() if result != "ok"]
    if failures:
        message = f"{' and '.join(failures)} unreachable"
        return JSONResponse(error_body("unavailable", message, failures[0], checks=checks), status_code=503)
    return {"status": "ok", "checks": checks}
