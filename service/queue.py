"""The job queue and the progress events of searches, on Redis.

The database is the source of truth; the queue only carries search ids. Keys (``<p>`` is the
prefix, ``enas`` by default):

==============================  ======  ==========================================================
``<p>:queue``                   list    ids waiting; `push` LPUSHes, `take` moves from the right
``<p>:processing:<worker_id>``  list    ids a worker took and has not acked (reliable-queue move)
``<p>:events:<search_id>``      pubsub  progress events (JSON) for live followers
``<p>:last:<search_id>``        string  the latest event (JSON), with a TTL, for late followers
``<p>:seq:<search_id>``         string  the event counter behind each event's ``seq``
``<p>:cancel:<search_id>``      string  set when a cancel was requested
==============================  ======  ==========================================================

Extension point for leases (a later issue): a worker's processing list is where its lease lives;
a heartbeat key per worker and a reaper that moves the ids of expired workers' processing lists
back to the queue (`release` does it for one id) fit next to `take` without changing this API.

This module imports neither torch, ray nor workers.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Iterator
from typing import Any

import redis

logger = logging.getLogger(__name__)

FINISHED = "finished"
"""Type of the last event of a run: ``{"type": "finished", "status": ..., "error": ...}``."""

DEFAULT_EVENT_TTL_S = 7 * 24 * 3600
DEFAULT_CANCEL_TTL_S = 7 * 24 * 3600


class JobQueue:
    """A reliable queue of search ids plus per-search events and cancel flags.

    Args:
        redis: a client; ``decode_responses=True`` is expected (`service.redis_conn.connect`).
        prefix: the first part of every key, so that tests and deployments can share a server.
        event_ttl_s: how long the latest event of a search stays readable (`last_event`).
        cancel_ttl_s: how long a cancel request is kept.
    """

    def __init__(
        self,
        redis: redis.Redis,
        prefix: str = "enas",
        *,
        event_ttl_s: int = DEFAULT_EVENT_TTL_S,
        cancel_ttl_s: int = DEFAULT_CANCEL_TTL_S,
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self.event_ttl_s = event_ttl_s
        self.cancel_ttl_s = cancel_ttl_s

    def key(self, *parts: object) -> str:
        """The Redis key ``<prefix>:<part>:<part>...``."""
        return ":".join([self.prefix, *(str(p) for p in parts)])

    # -- the queue -------------------------------------------------------------------------------

    def push(self, search_id: int) -> int:
        """Queue a run of ``search_id`` (after its row is committed); returns the queue depth.

        A push is a new run request: it clears a cancel flag left from an earlier run.
        """
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(self.key("cancel", search_id))
        pipe.lpush(self.key("queue"), int(search_id))
        return int(pipe.execute()[1])

    def take(self, worker_id: str, timeout: float = 1.0) -> int | None:
        """Move the oldest queued id to ``worker_id``'s processing list and return it.

        Blocks up to ``timeout`` seconds (``<= 0``: does not block). Returns None when nothing
        came. The id stays in the processing list until `ack`; a worker that dies leaves it there.
        """
        source, target = self.key("queue"), self.key("processing", worker_id)
        if timeout > 0:
            raw = self.redis.blmove(source, target, timeout, "RIGHT", "LEFT")
        else:
            raw = self.redis.lmove(source, target, "RIGHT", "LEFT")
        if raw is None:
            return None
        try:
            return int(raw)
        except ValueError:
            logger.warning("dropping malformed queue item %r", raw)
            self.redis.lrem(target, 1, raw)
            return None

    def ack(self, worker_id: str, search_id: int) -> bool:
        """Remove ``search_id`` from ``worker_id``'s processing list; False when it was not there."""
        return int(self.redis.lrem(self.key("processing", worker_id), 1, int(search_id))) > 0

    def release(self, worker_id: str, search_id: int) -> None:
        """Give a taken id back: move it from ``worker_id``'s processing list to the front of the
        queue (it is taken next), atomically. For a worker that stops before finishing a job."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.lrem(self.key("processing", worker_id), 1, int(search_id))
        pipe.rpush(self.key("queue"), int(search_id))
        pipe.execute()

    def processing(self, worker_id: str) -> list[int]:
        """Ids ``worker_id`` took and has not acked, oldest last."""
        return [int(x) for x in self.redis.lrange(self.key("processing", worker_id), 0, -1)]

    def depth(self) -> int:
        """How many ids wait in the queue."""
        return int(self.redis.llen(self.key("queue")))

    # -- events ----------------------------------------------------------------------------------

    def publish(self, search_id: int, event: dict[str, Any]) -> dict[str, Any]:
        """Publish ``event`` (JSON-serialisable, with a ``"type"``) to the followers of a search.

        The event gets ``search_id`` and ``seq`` (1, 2, ... per search) added, is published on
        ``<p>:events:<id>`` and kept as ``<p>:last:<id>`` for late followers. Non-finite floats are
        sent as null (browsers cannot parse NaN), numpy scalars as numbers. Returns it as sent.
        Raises:
            TypeError: a value is not JSON-serialisable.
        """
        seq = int(self.redis.incr(self.key("seq", search_id)))
        sent = _plain({**event, "search_id": int(search_id), "seq": seq})
        payload = json.dumps(sent, separators=(",", ":"), allow_nan=False)
        pipe = self.redis.pipeline(transaction=True)
        pipe.expire(self.key("seq", search_id), self.event_ttl_s)
        pipe.set(self.key("last", search_id), payload, ex=self.event_ttl_s)
        pipe.publish(self.key("events", search_id), payload)
        pipe.execute()
        return sent

    def last_event(self, search_id: int) -> dict[str, Any] | None:
        """The latest event published for ``search_id`` (within its TTL), else None."""
        raw = self.redis.get(self.key("last", search_id))
        return None if raw is None else json.loads(raw)

    def subscribe(self, search_id: int, *, heartbeat: float | None = None) -> Iterator[dict[str, Any]]:
        """Yield the events of ``search_id``: first the latest one (if any), then each new one.

        Subscribes before reading the latest event, so nothing is missed in between, and skips
        events whose ``seq`` was already yielded. Ends after a ``"finished"`` event. With
        ``heartbeat`` set, yields ``{"type": "heartbeat"}`` after that many seconds without an
        event (an SSE endpoint's keep-alive, and its chance to notice a gone client). Closing the
        generator unsubscribes.
        """
        pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe(self.key("events", search_id))
        try:
            seen = 0
            last = self.last_event(search_id)
            if last is not None:
                seen = int(last.get("seq", 0))
                yield last
                if last.get("type") == FINISHED:
                    return
            yield from _follow(pubsub, seen, heartbeat)
        finally:
            pubsub.close()

    # -- cancel ----------------------------------------------------------------------------------

    def request_cancel(self, search_id: int) -> None:
        """Ask the worker running ``search_id`` to stop at its next batch boundary (idempotent)."""
        self.redis.set(self.key("cancel", search_id), "1", ex=self.cancel_ttl_s)

    def cancel_requested(self, search_id: int) -> bool:
        """Whether a cancel was requested for ``search_id`` since its last `push`."""
        return bool(self.redis.exists(self.key("cancel", search_id)))


def _follow(pubsub: redis.client.PubSub, seen: int, heartbeat: float | None) -> Iterator[dict[str, Any]]:
    """Yield pub/sub events newer than ``seen`` until a finished event."""
    poll = 1.0 if heartbeat is None else min(1.0, heartbeat)
    quiet_since = time.monotonic()
    while True:
        message = pubsub.get_message(timeout=poll)
        if message is None or message.get("type") != "message":
            if heartbeat is not None and time.monotonic() - quiet_since >= heartbeat:
                quiet_since = time.monotonic()
                yield {"type": "heartbeat"}
            continue
        event = json.loads(message["data"])
        if int(event.get("seq", 0)) <= seen:
            continue
        seen = int(event["seq"])
        quiet_since = time.monotonic()
        yield event
        if event.get("type") == FINISHED:
            return


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
