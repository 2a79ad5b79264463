"""Progress events of searches on Redis pub/sub: `Events.publish` (the worker), `Events.last_event`
and `Events.subscribe` (followers: ``enasctl watch`` through the API, the SSE route, tests).

Each event is a JSON object with a ``type``; the worker's last one is ``{"type": "finished",
"status": ..., "error": ...}`` (`FINISHED`). Every event gets ``search_id`` and ``seq`` (1, 2, ...
per search), is published on ``<p>:events:<id>`` and kept as ``<p>:last:<id>`` for late followers.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import redis

from service.queue.keys import Keys

FINISHED = "finished"
"""Type of the last event of a run: ``{"type": "finished", "status": ..., "error": ...}``."""
HEARTBEAT = "heartbeat"
"""Type of the keep-alive `Subscription.follow` yields after a quiet ``heartbeat_s``."""

DEFAULT_EVENT_TTL_S = 7 * 24 * 3600

Listener = Callable[[dict[str, Any]], None]
"""Called with each event a process publishes (before it is published)."""


class Subscription:
    """A live subscription to one search's events (from `Events.open`)."""

    def __init__(self, pubsub: redis.client.PubSub, events: Events, search_id: int) -> None:
        self._pubsub = pubsub
        self._events = events
        self._search_id = search_id

    def last(self) -> dict[str, Any] | None:
        """The latest event published before now (read after subscribing: nothing is missed)."""
        return self._events.last_event(self._search_id)

    def follow(
        self,
        seen: int = 0,
        *,
        heartbeat_s: float | None = None,
        tick_s: float | None = None,
        stop: threading.Event | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Yield published events whose ``seq`` is above ``seen``, until a finished event.

        With ``heartbeat_s`` set, yields ``{"type": "heartbeat"}`` after that many seconds without
        an event (an SSE endpoint's keep-alive, and its chance to notice a gone client or look at
        the database). ``tick_s`` (default ``min(1, heartbeat_s)``): how long one wait for a
        message lasts, and so how soon a set ``stop`` ends the loop.
        """
        poll = tick_s if tick_s is not None else 1.0 if heartbeat_s is None else min(1.0, heartbeat_s)
        quiet_since = time.monotonic()
        while stop is None or not stop.is_set():
            message = self._pubsub.get_message(timeout=poll)
            if message is None or message.get("type") != "message":
                if heartbeat_s is not None and time.monotonic() - quiet_since >= heartbeat_s:
                    quiet_since = time.monotonic()
                    yield {"type": HEARTBEAT}
                continue
            event = json.loads(message["data"])
            if int(event.get("seq", 0)) <= seen:
                continue
            seen, quiet_since = int(event["seq"]), time.monotonic()
            yield event
            if event.get("type") == FINISHED:
                return


class Events:
    """Publishing and following the progress events of searches.

    Args:
        client: a Redis client with ``decode_responses=True``.
        keys: the key names (their prefix).
        ttl_s: how long the latest event of a search stays readable (`last_event`).
        listeners: called with each event before it is published (`with_listener`).
    """

    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        *,
        ttl_s: int = DEFAULT_EVENT_TTL_S,
        listeners: tuple[Listener, ...] = (),
    ) -> None:
        self._redis = client
        self._keys = keys
        self._ttl_s = ttl_s
        self._listeners = listeners

    def with_listener(self, listener: Listener) -> Events:
        """These events with ``listener`` also called with each event, before Redis sees it (so
        what it does, e.g. writing TensorBoard files, does not depend on Redis being up)."""
        return Events(self._redis, self._keys, ttl_s=self._ttl_s, listeners=(*self._listeners, listener))

    def publish(self, search_id: int, event: dict[str, Any]) -> dict[str, Any]:
        """Publish ``event`` (JSON-serialisable, with a ``"type"``) to the followers of a search.

        The event gets ``search_id`` and ``seq`` added. Non-finite floats are sent as null
        (browsers cannot parse NaN), numpy scalars as numbers. Returns it as sent.
        Raises:
            TypeError: a value is not JSON-serialisable.
        """
        for listener in self._listeners:
            listener(event)
        seq = int(self._redis.incr(self._keys.seq(search_id)))
        sent = _plain({**event, "search_id": int(search_id), "seq": seq})
        payload = json.dumps(sent, separators=(",", ":"), allow_nan=False)
        pipe = self._redis.pipeline(transaction=True)
        pipe.expire(self._keys.seq(search_id), self._ttl_s)
        pipe.set(self._keys.last(search_id), payload, ex=self._ttl_s)
        pipe.publish(self._keys.events(search_id), payload)
        pipe.execute()
        return sent

    def last_event(self, search_id: int) -> dict[str, Any] | None:
        """The latest event published for ``search_id`` (within its TTL), else None."""
        raw = self._redis.get(self._keys.last(search_id))
        return None if raw is None else json.loads(raw)

    @contextmanager
    def open(self, search_id: int) -> Iterator[Subscription]:
        """Subscribe to ``search_id``'s events for the ``with`` block (unsubscribes at its end).

        Read `Subscription.last` inside the block, then `Subscription.follow` from its ``seq``:
        an event published in between is not missed (it is both, and ``seq`` skips the copy).
        """
        pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        try:
            pubsub.subscribe(self._keys.events(search_id))
            yield Subscription(pubsub, self, search_id)
        finally:
            pubsub.close()

    def follow_all(
        self, *, stop: threading.Event, ready: threading.Event, tick_s: float = 0.5
    ) -> Iterator[dict[str, Any]]:
        """Yield the events of every search, as published, until ``stop`` is set (within ``tick_s``).

        One pattern subscription on one connection, however many searches are followed (the API's
        `service.api.followers.Hub`); ``ready`` is set once Redis confirmed it, so an event
        published after that is seen. Redis errors propagate.
        """
        pubsub = self._redis.pubsub()
        try:
            pubsub.psubscribe(self._keys.events_pattern())
            while not stop.is_set():
                message = pubsub.get_message(timeout=tick_s)
                if message is None:
                    continue
                if message["type"] == "psubscribe":
                    ready.set()
                elif message["type"] == "pmessage":
                    yield json.loads(message["data"])
        finally:
            pubsub.close()

    def subscribe(self, search_id: int, *, heartbeat: float | None = None) -> Iterator[dict[str, Any]]:
        """Yield the events of ``search_id``: first the latest one (if any), then each new one.

        Ends after a ``"finished"`` event. With ``heartbeat`` set, yields ``{"type": "heartbeat"}``
        after that many seconds without an event. Closing the generator unsubscribes.
        """
        with self.open(search_id) as subscription:
            seen = 0
            last = subscription.last()
            if last is not None:
                seen = int(last.get("seq", 0))
                yield last
                if last.get("type") == FINISHED:
                    return
            yield from subscription.follow(seen, heartbeat_s=heartbeat)


def _plain(value: Any) -> Any:
    """``value`` with non-finite floats as None, numpy scalars as numbers, tuples as lists."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, bool | int | str) or value is None:
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    item = getattr(value, "item", None)
    if callable(item):
        return _plain(item())
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")
