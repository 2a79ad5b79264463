"""What every request passes before a route: plain ASGI middlewares, outermost first.

1. `SecurityHeaders`: every answer gets a Content-Security-Policy (unless the route set its own),
   ``X-Content-Type-Options: nosniff``, ``X-Frame-Options: DENY`` and ``Referrer-Policy``.
2. `TrustedHosts`: a ``Host`` header not in ``Settings.trusted_host_names()`` is a 400 (a DNS
   rebinding page reaches the server under its own name, which is not in the list).
3. `BrowserGuard`: a state-changing request (POST, PUT, PATCH, DELETE) whose body is not JSON is a
   415, and one whose ``Origin`` is neither the server's own nor configured is a 403: a page on
   another site can neither post a form to the API nor call it with ``fetch``. Clients that are not
   browsers send no ``Origin`` and pass.
4. `BodyLimit`: the body is read here and counted as it arrives; past ``MAX_BODY_BYTES`` (with or
   without a Content-Length) the answer is a 413 and the rest is not read.

Each refusal is the API's JSON error body, naming the header or limit.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api.handlers import error_body
from service.settings import Settings

MAX_BODY_BYTES = 1 << 20
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
JSON_TYPES = frozenset({"application/json"})
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
"""The policy of every answer that sets none itself (the web page: scripts and styles from files
of this server only; see `service.api.routes.docs` for the API docs' own)."""
SECURITY_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
)
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


async def _refuse(scope: Scope, receive: Receive, send: Send, status: int, body: dict[str, object]) -> None:
    await JSONResponse(body, status_code=status)(scope, receive, send)


class SecurityHeaders:
    """Adds the security headers to every answer (the CSP only where the route set none)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {key.lower() for key, _ in headers}
                headers += [(k, v) for k, v in SECURITY_HEADERS if k not in present]
                if b"content-security-policy" not in present:
                    headers.append((b"content-security-policy", PAGE_CSP.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def host_name(host: str) -> str:
    """The name part of a ``Host`` header value (no port; an IPv6 address without brackets)."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    return host.rpartition(":")[0] if host.count(":") == 1 else host


class TrustedHosts:
    """400 for a request whose ``Host`` is not one of the names the server answers to."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.names = settings.trusted_host_names()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.names is not None:
            host = _header(scope, b"host") or ""
            if host_name(host) not in self.names:
                message = (
                    f"the Host header {host[:100]!r} is not a trusted host of this server; "
                    "add it to ENAS_TRUSTED_HOSTS"
                )
                await _refuse(scope, receive, send, 400, error_body("untrusted_host", message, "host"))
                return
        await self.app(scope, receive, send)


def _authority(scheme: str, netloc: str) -> tuple[str, int | None]:
    """(host, port) of ``netloc`` with the scheme's default port filled in."""
    parts = urlsplit(f"//{netloc}")
    try:
        port = parts.port
    except ValueError:  # a port that is not a number
        return netloc, -1
    return (parts.hostname or ""), port or _DEFAULT_PORTS.get(scheme)


def same_origin(origin: str, host: str) -> bool:
    """Whether ``origin`` (``scheme://host[:port]``) names the server reached through ``host``."""
    parts = urlsplit(origin)
    if parts.scheme not in _DEFAULT_PORTS or not parts.netloc:
        return False
    return _authority(parts.scheme, parts.netloc) == _authority(parts.scheme, host.strip().lower())


def _media_type(content_type: str) -> str:
    return content_type.partition(";")[0].strip().lower()


def _has_body(scope: Scope) -> bool:
    length = _header(scope, b"content-length")
    return _header(scope, b"transfer-encoding") is not None or (length is not None and length.strip() != "0")


class BrowserGuard:
    """415 for a state-changing request whose body is not JSON; 403 for one from a foreign Origin."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.origins = settings.allowed_origin_list()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in STATE_CHANGING:
            refusal = self.refusal(scope)
            if refusal is not None:
                await _refuse(scope, receive, send, *refusal)
                return
        await self.app(scope, receive, send)

    def refusal(self, scope: Scope) -> tuple[int, dict[str, object]] | None:
        """The (status, body) refusing ``scope``, or None when it may go on."""
        content_type = _header(scope, b"content-type")
        if content_type is not None or _has_body(scope):
            if _media_type(content_type or "") not in JSON_TYPES:
                message = "a request that changes state must send its body as Content-Type: application/json"
                return 415, error_body("unsupported_media_type", message, "content-type")
        origin = _header(scope, b"origin")
        if origin is None:  # not sent by a browser
            return None
        origin = origin.strip().rstrip("/").lower()
        if origin in self.origins or same_origin(origin, _header(scope, b"host") or ""):
            return None
        message = (
            f"requests from the origin {origin[:100]!r} may not change state here; "
            "the server's own origin and ENAS_ALLOWED_ORIGINS may"
        )
        return 403, error_body("forbidden", message, "origin")


class BodyTooLarge(Exception):
    """The body went past its limit while it was read."""


class BodyLimit:
    """Reads the body (counting the bytes received), 413 past ``limit``; the app reads it again."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            body = await self._read(receive)
        except BodyTooLarge:
            message = f"the body exceeds the limit of {self.limit} bytes"
            await _refuse(scope, receive, send, 413, error_body("too_large", message, "body"))
            return
        if body is None:  # the client went away before its body ended: nobody to answer
            return
        await self.app(scope, _replay(body, receive), send)

    async def _read(self, receive: Receive) -> bytes | None:
        """The whole body, None when the client disconnected first; BodyTooLarge past the limit."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                raise BodyTooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands out ``body`` once, then waits on the real one (disconnects)."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed
