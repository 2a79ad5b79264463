"""The error answers each route documents in the OpenAPI schema (every status it can return).

Every error has the body of `service.api.handlers.error_body`; the sets below are attached to the
routes (``responses=``), and `COMMON_ERRORS` to the app (`service.api.guards` may answer them on
any route).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class ErrorDetail(BaseModel):
    code: str
    message: str
    field: str | None


class ErrorBody(BaseModel):
    """``{"error": {"code", "message", "field"}}``; a 422 adds ``details`` (one per problem)."""

    model_config = ConfigDict(extra="allow")
    error: ErrorDetail


DESCRIPTIONS = {
    400: "untrusted Host header, or a body that is not valid JSON",
    401: "missing or unknown bearer token (when ENAS_AUTH_TOKENS is set)",
    403: "a foreign Origin",
    404: "no such search, architecture or file (another owner's is answered as missing)",
    409: "the object is in the wrong state for the request",
    413: "the body is larger than the limit",
    415: "a state-changing request whose body is not application/json",
    422: "a path, query or body value out of its type or bounds (field names it)",
    429: "too many event-stream followers, or the caller is over a quota (Retry-After: when it frees)",
    501: "a format this process does not produce",
    503: "the database or Redis is unreachable",
}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` entry documenting ``codes`` with the error body."""
    return {code: {"model": ErrorBody, "description": DESCRIPTIONS[code]} for code in codes}


COMMON_ERRORS = errors(400, 413)
"""What `service.api.guards` may answer on any route."""
READ_ERRORS = errors(401, 422, 503)
"""A read taking parameters (422) from the store (503); 401 with tokens and none given."""
ONE_ERRORS = errors(401, 404, 422, 503)
"""A read of one object by id."""
WRITE_ERRORS = errors(401, 403, 404, 409, 415, 422, 503)
"""A state-changing request on an existing object."""
SUBMIT_ERRORS = errors(401, 403, 415, 422, 429, 503)
"""A state-changing request creating an object."""
