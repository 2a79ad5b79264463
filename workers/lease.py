"""A worker's heartbeat and lease on the search it runs.

`LeaseKeeper` runs a daemon thread that, every ``interval_s``, marks the worker alive
(`WorkerRegistry.register`) and renews the lease of the search it holds (`Leases.renew`).
When another worker holds that lease now (this one was presumed dead and its job re-taken), the
keeper sets ``lost``; the runner stops at its next batch boundary and writes nothing more (its
fencing token is stale anyway). When renewals fail for longer than the TTL (Redis unreachable),
`LeaseKeeper.wait_valid` holds the search at its next batch boundary until a renewal succeeds, so
two workers never train one search at the same time.
"""

from __future__ import annotations

import logging
import threading
import time

import redis

from service.queue import Job, Queue
from workers.retry import short_error

logger = logging.getLogger(__name__)


class LeaseLost(Exception):
    """Another worker holds this search's lease now; this worker must stop without writing."""


class LeaseKeeper:
    """Keeps a worker registered and its search's lease renewed from a daemon thread.

    Args:
        queue: the job queue (its Redis client is thread-safe).
        worker_id: the worker (its processing list and lease value).
        ttl_s: lease and liveness TTL; interval_s: seconds between heartbeats (< ttl_s).
    """

    def __init__(self, queue: Queue, worker_id: str, *, ttl_s: float, interval_s: float) -> None:
        self.queue = queue
        self.worker_id = worker_id
        self.ttl_s = ttl_s
        self.interval_s = min(interval_s, ttl_s / 2)
        self.lost = threading.Event()
        self._held: Job | None = None
        self._renewed_at = 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False

    @property
    def held(self) -> Job | None:
        """The job (search id or retrain job) whose lease this worker holds, if any."""
        return self._held

    def start(self) -> None:
        """Start the heartbeat thread (the first beat runs at once, in the thread)."""
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{self.worker_id}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop beating and unregister the worker (best effort: Redis may be down)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        try:
            self.queue.workers.unregister(self.worker_id)
        except redis.RedisError as e:
            logger.warning("worker %s: could not unregister (%s)", self.worker_id, short_error(e))

    def register(self) -> None:
        """Mark the worker alive now (before its first take). Raises redis errors."""
        self.queue.workers.register(self.worker_id, self.ttl_s)

    def acquire(self, search_id: Job) -> bool:
        """Take the lease on job ``search_id``; False when another worker holds it. Raises redis errors."""
        with self._lock:
            if not self.queue.leases.acquire(search_id, self.worker_id, self.ttl_s):
                return False
            self._held, self._renewed_at = search_id, time.monotonic()
            self.lost.clear()
            return True

    def release(self) -> None:
        """Give up the held lease (best effort: an unreachable Redis lets it expire)."""
        with self._lock:
            search_id, self._held = self._held, None
        if search_id is None:
            return
        try:
            self.queue.leases.release(search_id, self.worker_id)
        except redis.RedisError as e:
            logger.warning("search %s: lease not released (%s); it expires", search_id, short_error(e))

    def valid(self) -> bool:
        """Whether the lease was renewed within its TTL (it cannot have expired on the server)."""
        return time.monotonic() - self._renewed_at < self.ttl_s

    def check(self) -> None:
        """Raise LeaseLost when another worker took the search over."""
        if self.lost.is_set():
            raise LeaseLost(f"search {self._held}: lease taken over by another worker")

    def wait_valid(self, stop: threading.Event) -> None:
        """Block while the lease may have expired (renewals failing), until renewed, lost or stopped."""
        if self.valid():
            return
        logger.warning("search %s: lease not renewed for %.0fs; pausing", self._held, self.ttl_s)
        while not self.valid() and not self.lost.is_set() and not stop.is_set():
            time.sleep(min(0.2, self.interval_s))
        if self.valid():
            logger.info("search %s: lease renewed; going on", self._held)

    def beat(self) -> None:
        """One heartbeat: liveness key, then the held lease. Raises redis errors."""
        self.queue.workers.register(self.worker_id, self.ttl_s)
        with self._lock:
            search_id = self._held
            if search_id is None:
                return
            if self.queue.leases.renew(search_id, self.worker_id, self.ttl_s):
                self._renewed_at = time.monotonic()
                return
        holder = self.queue.leases.holder(search_id)
        logger.error("search %s: lease lost to %s; stopping this run", search_id, holder)
        self.lost.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.beat()
                if self._failing:
                    logger.info("worker %s: heartbeat restored", self.worker_id)
                self._failing = False
            except redis.RedisError as e:
                if not self._failing:
                    logger.warning(
                        "worker %s: heartbeat failed (%s); retrying", self.worker_id, short_error(e)
                    )
                self._failing = True
            self._stop.wait(self.interval_s)
