"""The worker registry: which workers are alive (a key each, with a TTL their heartbeat renews)
and which may own a processing list (a set, for the reaper)."""

from __future__ import annotations

import redis

from service.queue.keys import Keys, ms


class WorkerRegistry:
    """Live workers and the ids the reaper must look at.

    A worker registers itself before it takes anything (an unregistered worker counts as dead),
    and again at each heartbeat.
    """

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self._redis = client
        self._keys = keys

    def register(self, worker_id: str, ttl_s: float) -> None:
        """Mark ``worker_id`` alive for ``ttl_s`` seconds (its heartbeat calls this again)."""
        pipe = self._redis.pipeline(transaction=True)
        pipe.set(self._keys.worker(worker_id), "1", px=ms(ttl_s))
        pipe.sadd(self._keys.workers, worker_id)
        pipe.execute()

    def unregister(self, worker_id: str) -> None:
        """A worker that stops cleanly: its liveness key goes; the reaper forgets it once its
        processing list is empty."""
        pipe = self._redis.pipeline(transaction=True)
        pipe.delete(self._keys.worker(worker_id))
        pipe.llen(self._keys.processing(worker_id))
        if not pipe.execute()[1]:
            self._redis.srem(self._keys.workers, worker_id)

    def remember(self, worker_id: str) -> None:
        """Note that ``worker_id`` owns a processing list (it took a job), alive or not."""
        self._redis.sadd(self._keys.workers, worker_id)

    def alive(self, worker_id: str) -> bool:
        """Whether ``worker_id``'s liveness key is set (not expired)."""
        return bool(self._redis.exists(self._keys.worker(worker_id)))

    def ids(self) -> list[str]:
        """Ids of the workers that registered and were not forgotten yet (alive or not)."""
        return sorted(str(w) for w in self._redis.smembers(self._keys.workers))
