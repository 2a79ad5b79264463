"""Watching the Ray head from a worker attached to a cluster: `HeadWatch`.

A daemon thread connects to the head's GCS address over TCP every ``interval_s``. When the head has
not answered for ``grace_s`` (``ENAS_RAY_HEAD_GRACE_S``), it calls ``on_lost`` once. The worker's
``on_lost`` (`workers.worker`) releases the job it holds (back to the front of the queue, the
lease dropped; the search stays ``running`` with its checkpoints) and ends the process with
`HEAD_LOST_EXIT`, so that its supervisor (compose ``restart:``, Kubernetes) starts it again; the
restarted worker attaches once the head is back and the search resumes from its newest checkpoint.
Exiting is the only safe move: with its head gone, Ray calls in the driver may block forever and
Ray ends a driver whose GCS stays away anyway.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import ray

from workers.actors import connect_tcp

logger = logging.getLogger(__name__)

HEAD_LOST_EXIT = 3
"""Exit status of a worker whose Ray head stayed unreachable for the grace period."""


def head_address() -> str:
    """The connected cluster's GCS address (``host:port``)."""
    return str(ray.get_runtime_context().gcs_address)


class HeadWatch:
    """Calls ``on_lost`` once when ``address`` (``host:port``) refused or ignored TCP connections
    for ``grace_s`` seconds in a row."""

    def __init__(
        self, address: str, grace_s: float, on_lost: Callable[[str], None], *, interval_s: float | None = None
    ) -> None:
        self.address = address
        self.grace_s = grace_s
        self.on_lost = on_lost
        self.interval_s = interval_s if interval_s is not None else min(5.0, max(grace_s / 6, 0.1))
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start watching (a daemon thread; the first probe runs after ``interval_s``)."""
        self._thread = threading.Thread(target=self._run, name="ray-head-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop watching (``on_lost`` is not called after this returns)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=10)

    def answers(self) -> bool:
        """Whether the head accepts a TCP connection now."""
        try:
            connect_tcp(self.address, min(self.interval_s * 2, 5.0))
        except (OSError, ValueError):
            return False
        return True

    def _run(self) -> None:
        down_since: float | None = None
        while not self._stop.wait(self.interval_s):
            if self.answers():
                if down_since is not None:
                    logger.info("Ray head %s answers again", self.address)
                down_since = None
                continue
            now = time.monotonic()
            if down_since is None:
                down_since = now
                logger.warning("Ray head %s does not answer; giving it %.0fs", self.address, self.grace_s)
            if now - down_since >= self.grace_s:
                reason = f"the Ray head {self.address} did not answer for {now - down_since:.0f}s"
                logger.error("%s", reason)
                self.lost.set()
                self.on_lost(reason)
                return
