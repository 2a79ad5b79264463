"""The web page's sign-in: ``POST /session`` with ``{"token": ...}`` sets the ``enas_token`` cookie
(HttpOnly, SameSite=Strict) that the page's reads then carry; ``DELETE /session`` clears it.

The cookie authenticates GET and HEAD only (`service.api.deps.presented_token`): writes still need
the ``Authorization`` header, so a page on another site gains nothing from a signed-in browser.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from service.api.deps import SESSION_COOKIE, get_tokens
from service.api.responses import errors
from service.errors import Unauthorized

router = APIRouter(tags=["session"])


class SessionRequest(BaseModel):
    token: Annotated[str, Field(min_length=1, max_length=512, description="one of the server's tokens")]


class SessionPublic(BaseModel):
    name: str
    admin: bool


@router.post("/session", response_model=SessionPublic, responses=errors(401, 403, 415, 422))
def sign_in(body: SessionRequest, request: Request, response: Response) -> SessionPublic:
    """Check a token and keep it in the page's cookie (reads only); 401 for an unknown token or
    when the server has no tokens (nothing to sign in to)."""
    tokens = get_tokens(request)
    name = tokens.owner_of(body.token) if tokens.enabled else None
    if name is None:
        message = "unknown token" if tokens.enabled else "this server has no tokens: no sign-in needed"
        raise Unauthorized(message)
    response.set_cookie(
        SESSION_COOKIE,
        body.token,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    caller = tokens.caller(name)
    return SessionPublic(name=caller.name, admin=caller.admin)


@router.delete("/session", status_code=204, responses=errors(403, 415))
def sign_out(response: Response) -> Response:
    """Forget the page's cookie."""
    response.status_code = 204
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return response
