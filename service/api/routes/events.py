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

Blocking work (Redis pub/sub, the database) runs in one daemon thread per connection, outside
the server's thread pool, and reaches the event loop through an ``asyncio.Queue``: a slow or idle
follower holds neither the event loop nor a worker thread of the other routes. When the client
goes away the response task is cancelled, the relay sets the thread's stop flag and the thread
unsubscribes within ``tick_s``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from service.queue import FINISHED, HEARTBEAT, Queue
from service.store import Store
from service.store.records import SearchRecord

logger = logging.getLogger(__name__)

HEARTBEAT_S = 15.0
"""Idle seconds between two heartbeat comments."""
TICK_S = 0.5
"""How often the stream thread looks at its stop flag while waiting for Redis."""
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


def sse_chunks(
    store: Store,
    queue: Queue,
    search_id: int,
    *,
    stop: threading.Event,
    heartbeat_s: float = HEARTBEAT_S,
    tick_s: float = TICK_S,
) -> Iterator[str]:
    """The SSE text of a search's stream, chunk by chunk (blocking; see the module docstring).

    Ends after a finished event or, within ``tick_s``, once ``stop`` is set.
    """
    with queue.events.open(search_id) as subscription:  # before reading the last event: none is missed
        first = _first_event(store, subscription.last(), search_id)
        yield format_event(first, retry_ms=RETRY_MS)
        if first.get("type") == FINISHED:
            return
        seen = int(first.get("seq") or 0)
        for event in subscription.follow(seen, heartbeat_s=heartbeat_s, tick_s=tick_s, stop=stop):
            if event.get("type") != HEARTBEAT:
                yield format_event(event)  # the follow ends after a finished event
                continue
            record = store.get_search(search_id=search_id)
            if record.is_terminal:  # it ended without its finished event reaching us
                yield format_event(state_event(record))
                return
            yield ": heartbeat\n\n"


class _Relay:
    """Runs `sse_chunks` in a daemon thread and hands its chunks to the event loop."""

    def __init__(self, store: Store, queue: Queue, search_id: int, **timing: float) -> None:
        self.chunks: asyncio.Queue[str | None] = asyncio.Queue()
        self.stop = threading.Event()
        self.thread = threading.Thread(
            target=self._run, args=(store, queue, search_id, timing), name=f"sse-{search_id}", daemon=True
        )

    def _run(self, store: Store, queue: Queue, search_id: int, timing: dict[str, float]) -> None:
        try:
            for chunk in sse_chunks(store, queue, search_id, stop=self.stop, **timing):
                self._put(chunk)
        except Exception as e:  # Redis or the database went away: end; EventSource reconnects
            logger.warning("event stream of search %s ended: %s", search_id, e)
        finally:
            self._put(None)

    def _put(self, chunk: str | None) -> None:
        try:
            self.loop.call_soon_threadsafe(self.chunks.put_nowait, chunk)
        except RuntimeError:  # the loop closed (the server is shutting down): stop following
            self.stop.set()

    async def stream(self) -> AsyncIterator[str]:
        """Start the thread and yield its chunks; closing or cancelling this stops the thread.

        (The thread starts here, not before: a response never sent starts none.)"""
        self.loop = asyncio.get_running_loop()
        self.thread.start()
        try:
            while (chunk := await self.chunks.get()) is not None:
                yield chunk
        finally:  # the end of the stream, or the client went away (this task was cancelled)
            self.stop.set()


async def event_response(store: Store, queue: Queue, search_id: int, **timing: float) -> StreamingResponse:
    """The streaming response of ``GET /searches/{id}/events`` (404 first for an unknown search).

    ``timing`` (``heartbeat_s``, ``tick_s``) is for tests.
    """
    await run_in_threadpool(store.get_search, search_id=search_id)  # raises NotFound
    relay = _Relay(store, queue, search_id, **timing)
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}  # nginx: do not buffer
    return StreamingResponse(relay.stream(), media_type="text/event-stream", headers=headers)
