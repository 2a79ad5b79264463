"""Dependencies of the routes (``Annotated`` aliases): settings, store, queue, caller.

The store and the Redis connection live on ``app.state`` (built by the app's lifespan); a Redis
connection that failed at start is retried on the next request that needs it.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Path, Request

from service.api.followers import Hub
from service.api.schemas import MAX_ID
from service.errors import Unauthorized, Unavailable
from service.queue import Queue
from service.queue.connection import connect
from service.settings import Settings
from service.store import Store

ANONYMOUS = "anonymous"


def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings


def get_store(request: Request) -> Store:
    store = getattr(request.app.state, "store", None)
    if store is None:
        raise Unavailable("the store is not ready")
    return store


def connect_queue(state: Any) -> Queue:
    """The app's `Queue` (on ``app.state``), connecting to Redis first if not done yet.

    Raises :class:`Unavailable` when the embedded Redis cannot be started (a configured server
    that is down shows up at the first command instead).
    """
    if state.queue is not None:
        return state.queue
    with state.queue_lock:
        if state.queue is None:
            try:
                client = connect(state.settings)
            except Exception as e:  # the embedded server failed to start, a bad URL...
                raise Unavailable(f"Redis is unavailable: {e}") from e
            state.redis = client
            state.queue = Queue.on(client, prefix=state.queue_prefix)
    return state.queue


def get_queue(request: Request) -> Queue:
    return connect_queue(request.app.state)


def get_hub(request: Request) -> Hub:
    """The app's `Hub` of event-stream followers (built with the first follower)."""
    state = request.app.state
    queue = connect_queue(state)
    with state.queue_lock:
        if state.hub is None:
            state.hub = Hub(queue.events, max_followers=state.settings.sse_max_followers)
    return state.hub


def _bearer(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def get_owner(request: Request, settings: Annotated[Settings, Depends(get_settings_dep)]) -> str:
    """Who is calling a mutating endpoint: the token's owner, or ``anonymous`` when auth is off.

    Raises :class:`Unauthorized` when ``ENAS_AUTH_TOKENS`` is set and no known token is given.
    """
    owners = settings.token_owners()
    if not owners:
        return ANONYMOUS
    token = _bearer(request)
    if token is None:
        raise Unauthorized("this endpoint needs an 'Authorization: Bearer <token>' header")
    if token not in owners:
        raise Unauthorized("unknown token")
    return owners[token]


IdPath = Annotated[int, Path(ge=1, le=MAX_ID, description="an id (1 to 2^53-1)")]
"""A path id, bounded to what the databases hold (larger: 422, not a driver overflow)."""
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
StoreDep = Annotated[Store, Depends(get_store)]
QueueDep = Annotated[Queue, Depends(get_queue)]
HubDep = Annotated[Hub, Depends(get_hub)]
OwnerDep = Annotated[str, Depends(get_owner)]
