"""The project's error hierarchy; the API turns these into HTTP responses in one handler.

Each error carries a machine code, a human message and, where it applies, the field it is about
(dotted path, e.g. ``"child.foo"``).
"""

from __future__ import annotations

from typing import Any, ClassVar


class EnasError(Exception):
    """Base of every error the service raises on purpose."""

    status_code: ClassVar[int] = 500
    code: ClassVar[str] = "internal"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def to_dict(self) -> dict[str, Any]:
        """The JSON body the API returns: ``{"error": {"code", "message", "field"}}``."""
        return {"error": {"code": self.code, "message": self.message, "field": self.field}}


class InvalidInput(EnasError):
    """The caller sent something that cannot be accepted (HTTP 422)."""

    status_code = 422
    code = "invalid_input"


class Unauthorized(EnasError):
    """Missing or unknown bearer token (HTTP 401)."""

    status_code = 401
    code = "unauthorized"


class Forbidden(EnasError):
    """A known caller asking for something that is not theirs (HTTP 403)."""

    status_code = 403
    code = "forbidden"


class NotFound(EnasError):
    """No such search, architecture or retrain (HTTP 404)."""

    status_code = 404
    code = "not_found"


class Conflict(EnasError):
    """The object is in the wrong state for the request, e.g. cancelling a finished search (HTTP 409)."""

    status_code = 409
    code = "conflict"


class OverQuota(EnasError):
    """The caller is over one of its quotas (HTTP 429); ``retry_after_s``: when it frees, for the
    ``Retry-After`` header."""

    status_code = 429
    code = "over_quota"

    def __init__(self, message: str, *, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Unavailable(EnasError):
    """A backing service (database, Redis) cannot be reached (HTTP 503)."""

    status_code = 503
    code = "unavailable"


class NotServedHere(EnasError):
    """A format this process does not produce (HTTP 501), e.g. ONNX from the torch-free API."""

    status_code = 501
    code = "not_implemented"
