"""Server-Sent Events for one search (``GET /searches/{id}/events``, routed in ``searches.py``).

The stream, in SSE text (https://html.spec.whatwg.org/multipage/server-sent-events.html):

1. the latest state at once: the last event the worker published, or an event built from the
   database when Redis has none (``status`` for a queued search, ``finished`` for a finished
   one) or holds only the ``finished`` event of an earlier run of a search that was resumed;
2. every event the worker publishes from then on (``id:`` is its ``seq``; a reconnecting
   EventSource starts again at 1., so nothing is lost between two connections);
3. a comment line (``: heartbeat``) after each ``heartbeat_s`` without an event, which keeps
   proxies from closing the connection; at each one the database is asked whether the search
   ended without a ``finished`` event reaching Redis (e.g. a search cancelled while queued);
4. the end, after a ``finished`` event.

Events come from the process's one Redis subscription (`service.api.followers.Hub`) through an
``asyncio.Queue`` per stream: an idle follower holds no thread and no Redis connection, and the
database is read in the thread pool only on connect and at heartbeats. At most
``ENAS_SSE_MAX_FOLLOWERS`` streams are open at once (429 past it). When the client goes away the
response ends and its follower leaves the hub.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from service.api.followers import Follower, Hub
from service.queue import FINISHED
from service.queue.events import Events
from service.store import Store
from service.store.records import SearchRecord

HEARTBEAT_S = 15.0
"""Idle seconds between two heartbeat comments."""
RETRY_MS = 3000
"""The reconnection delay the stream asks EventSource for."""


def format_event(event: dict[str, Any], *, retry_ms: int | None = None) -> str:
    """One SSE message: ``event:`` (the event's type), ``id:`` (its seq, when it has one), ``data:``."""
    lines = [f"event: {event.get('type', 'message')}"]
    if event.get("seq") is not None:
        lines.append(f"id: {event['seq']}")
    if retry_ms is not None:
        lines.append(f"retry: {retry_ms}")
    lines.append(f"data: {json.dumps(event)}")
    return "\n".join(lines) + "\n\n"


def state_event(record: SearchRecord) -> dict[str, Any]:
    """An event describing the search as the database has it (no ``seq``: not from the worker)."""
    if record.is_terminal:
        return {"type": FINISHED, "search_id": record.id, "status": record.status, "error": record.error}
    return {
        "type": "status",
        "search_id": record.id,
        "status": record.status,
        "epoch": record.epoch,
        "total": record.total_epochs,
        "progress": record.progress,
    }


def _first_event(store: Store, last: dict[str, Any] | None, search_id: int) -> dict[str, Any]:
    """The event to replay on connect: Redis's latest (``last``), unless the database knows better."""
    if last is not None and last.get("type") != FINISHED:
        return last
    record = store.get_search(search_id=search_id)
    if last is not None and record.is_terminal:
        return last
    return state_event(record)  # none in Redis, or a finished event from before a resume


async def sse_chunks(
    store: Store, events: Events, follower: Follower, *, heartbeat_s: float = HEARTBEAT_S
) -> AsyncIterator[str]:
    """The SSE text of ``follower``'s search, chunk by chunk (see the module docstring).

    The follower is subscribed already, so reading the last event now misses nothing. Ends after a
    finished event, or when the hub stops (None: Redis went away; EventSource reconnects).
    """
    search_id = follower.search_id
    last = await run_in_threadpool(events.last_event, search_id)
    first = await run_in_threadpool(_first_event, store, last, search_id)
    yield format_event(first, retry_ms=RETRY_MS)
    if first.get("type") == FINISHED:
        return
    seen = int(first.get("seq") or 0)
    while True:
        try:
            event = await asyncio.wait_for(follower.events.get(), heartbeat_s)
        except TimeoutError:
            record = await run_in_threadpool(store.get_search, search_id=search_id)
            if record.is_terminal:  # it ended without its finished event reaching us
                yield format_event(state_event(record))
                return
            yield ": heartbeat\n\n"
            continue
        if event is None:
            return
        if int(event.get("seq", 0)) <= seen:
            continue
        seen = int(event["seq"])
        yield format_event(event)
        if event.get("type") == FINISHED:
            return


class FollowerStream(StreamingResponse):
    """A streaming response that gives its follower's place back however it ends (finished, client
    gone, never started)."""

    def __init__(self, content: AsyncIterator[str], hub: Hub, follower: Follower) -> None:
        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}  # nginx: do not buffer
        super().__init__(content, media_type="text/event-stream", headers=headers)
        self.hub = hub
        self.follower = follower

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.hub.leave(self.follower)


async def event_response(
    store: Store, hub: Hub, events: Events, search_id: int, *, heartbeat_s: float = HEARTBEAT_S
) -> StreamingResponse:
    """The streaming response of ``GET /searches/{id}/events``: 404 for an unknown search and 429
    past the followers' cap (`Hub.join`), both before the stream starts."""
    await run_in_threadpool(store.get_search, search_id=search_id)  # raises NotFound
    follower = await run_in_threadpool(hub.join, search_id, asyncio.get_running_loop())
    return FollowerStream(sse_chunks(store, events, follower, heartbeat_s=heartbeat_s), hub, follower)
