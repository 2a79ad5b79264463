"""How a failed search's error is described on its row: the root cause, not Ray's wrappers."""

from __future__ import annotations

import traceback

import ray

ERROR_MAX_CHARS = 2000
TRACEBACK_MAX_CHARS = 8000


def describe_error(exc: BaseException) -> tuple[str, str]:
    """``(message, traceback)`` for the search row: the root error (Ray wrappers unwrapped)
    as ``"Type: message"``, and the full traceback, both truncated."""
    root = _root_cause(exc)
    message = f"{type(root).__name__}: {root}".strip()
    if isinstance(root, ray.exceptions.RayError):  # its text is a remote traceback
        message = _ray_error_message(root) or message.splitlines()[0]
    trace = "".join(traceback.format_exception(exc))
    return message[:ERROR_MAX_CHARS], trace[-TRACEBACK_MAX_CHARS:]


def _root_cause(exc: BaseException) -> BaseException:
    """The user-level exception inside Ray's wrappers (RayTaskError.cause, chained causes)."""
    seen: set[int] = set()
    while id(exc) not in seen:
        seen.add(id(exc))
        cause = getattr(exc, "cause", None)
        if isinstance(cause, BaseException):
            exc = cause
            continue
        break
    return exc


def _ray_error_message(error: BaseException) -> str | None:
    """The last ``Type: message`` line of a Ray error's text (an actor's creation error)."""
    for line in reversed(str(error).splitlines()):
        head, sep, rest = line.strip().partition(": ")
        if sep and head.replace(".", "").isidentifier() and head.split(".")[-1][:1].isupper() and rest:
            return f"{head.split('.')[-1]}: {rest}"
    return None
