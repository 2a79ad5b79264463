"""The followers of event streams in one API process: one Redis subscription shared by them all.

`Hub` holds one pattern subscription (`Events.follow_all`) in one daemon thread, started with the
first follower and stopped with the app; each event goes to the followers of its search through
their asyncio queues (``call_soon_threadsafe``). A follower past ``max_followers`` is refused
with a 429 before its stream starts. When Redis fails the thread ends every stream (EventSource
reconnects) and the next follower starts a new one.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass, field
from typing import Any, ClassVar

from service.errors import EnasError, Unavailable
from service.queue.events import Events

logger = logging.getLogger(__name__)

READY_TIMEOUT_S = 5.0
"""How long a first follower waits for Redis to confirm the subscription."""


class TooManyFollowers(EnasError):
    """The process follows as many event streams as it may (HTTP 429)."""

    status_code: ClassVar[int] = 429
    code: ClassVar[str] = "too_many_followers"


@dataclass(eq=False)
class Follower:
    """One SSE stream: the search it follows and where its events go (None: the hub stopped)."""

    search_id: int
    loop: asyncio.AbstractEventLoop
    events: asyncio.Queue[dict[str, Any] | None] = field(default_factory=asyncio.Queue)

    def put(self, event: dict[str, Any] | None) -> None:
        """Hand ``event`` to the stream's loop (from any thread); a closed loop drops it."""
        try:
            self.loop.call_soon_threadsafe(self.events.put_nowait, event)
        except RuntimeError:  # the loop closed: the server is stopping
            pass


class Hub:
    """The followers of this process and the one subscription that feeds them.

    Args:
        events: the queue's events (the Redis client and key prefix).
        max_followers: how many streams may be open at once (``ENAS_SSE_MAX_FOLLOWERS``).
    """

    def __init__(self, events: Events, max_followers: int) -> None:
        self._events = events
        self.max_followers = max_followers
        self._lock = threading.Lock()
        self._followers: dict[int, set[Follower]] = {}
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stop = threading.Event()

    @property
    def count(self) -> int:
        """How many streams are open."""
        with self._lock:
            return sum(len(f) for f in self._followers.values())

    def join(self, search_id: int, loop: asyncio.AbstractEventLoop) -> Follower:
        """A new follower of ``search_id``, subscribed when this returns (blocking: run in a thread).

        Raises TooManyFollowers (429) past ``max_followers``, Unavailable (503) when Redis does
        not confirm the subscription.
        """
        follower = Follower(search_id, loop)
        with self._lock:
            if sum(len(f) for f in self._followers.values()) >= self.max_followers:
                raise TooManyFollowers(
                    f"this server follows its limit of {self.max_followers} event streams "
                    "(ENAS_SSE_MAX_FOLLOWERS); poll GET /searches/{id} or retry later",
                    field="ENAS_SSE_MAX_FOLLOWERS",
                )
            self._followers.setdefault(search_id, set()).add(follower)
            ready = self._start_locked()
        if not ready.wait(READY_TIMEOUT_S) or not self._running():
            self.leave(follower)
            raise Unavailable("Redis did not confirm the event subscription")
        return follower

    def _running(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and not self._stop.is_set()

    def leave(self, follower: Follower) -> None:
        """Forget ``follower`` (its stream ended or its client went away)."""
        with self._lock:
            group = self._followers.get(follower.search_id, set())
            group.discard(follower)
            if not group:
                self._followers.pop(follower.search_id, None)

    def stop(self) -> None:
        """Stop the subscription thread (the app's shutdown); open streams end."""
        self._stop.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout=5)

    def _start_locked(self) -> threading.Event:
        if self._running():
            return self._ready
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(self._ready, self._stop), name="sse-hub")
        self._thread.daemon = True
        self._thread.start()
        return self._ready

    def _run(self, ready: threading.Event, stop: threading.Event) -> None:
        try:
            for event in self._events.follow_all(stop=stop, ready=ready):
                with self._lock:
                    followers = list(self._followers.get(int(event.get("search_id", -1)), ()))
                for follower in followers:
                    follower.put(event)
        except Exception as e:  # Redis went away: end the streams; their clients reconnect
            logger.warning("the event subscription ended: %s", e)
        finally:
            stop.set()
            ready.set()  # a follower still waiting sees the thread gone
            with self._lock:
                everyone = [f for group in self._followers.values() for f in group]
            for follower in everyone:
                follower.put(None)
