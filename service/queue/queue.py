"""`Queue`: the parts of the queue package over one Redis client and one key prefix."""

from __future__ import annotations

from dataclasses import dataclass

from redis import Redis

from service.queue.cancel import CancelFlags
from service.queue.events import Events
from service.queue.jobs import Jobs
from service.queue.keys import Keys
from service.queue.leases import Leases
from service.queue.workers import WorkerRegistry


@dataclass(frozen=True)
class Queue:
    """Everything the service keeps in Redis, one part per concern.

    Attributes:
        redis: the client (``decode_responses=True``); thread-safe, shared by the parts.
        keys: the key names under this queue's prefix.
        jobs: the job queue and the workers' processing lists.
        events: progress events (publish, last event, subscribe).
        cancels: cancel flags.
        leases: leases on jobs, and named locks.
        workers: the worker registry (liveness).
    """

    redis: Redis
    keys: Keys
    jobs: Jobs
    events: Events
    cancels: CancelFlags
    leases: Leases
    workers: WorkerRegistry

    @classmethod
    def on(cls, client: Redis, prefix: str = "enas") -> Queue:
        """The queue whose keys start with ``prefix`` on ``client`` (tests use their own prefix)."""
        keys = Keys(prefix)
        workers = WorkerRegistry(client, keys)
        return cls(
            redis=client,
            keys=keys,
            jobs=Jobs(client, keys, workers),
            events=Events(client, keys),
            cancels=CancelFlags(client, keys),
            leases=Leases(client, keys),
            workers=workers,
        )

    @property
    def prefix(self) -> str:
        return self.keys.prefix
