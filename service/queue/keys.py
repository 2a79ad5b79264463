"""The Redis keys of the queue package, in one place (``<p>`` is the prefix, ``enas`` by default).

==============================  ======  ==========================================================
``<p>:queue``                   list    jobs waiting (`Jobs.push` LPUSHes, `Jobs.take` moves right)
``<p>:processing:<worker_id>``  list    jobs a worker took and has not acked (reliable-queue move)
``<p>:events:<search_id>``      pubsub  progress events (JSON) for live followers
``<p>:last:<search_id>``        string  the latest event (JSON), with a TTL, for late followers
``<p>:seq:<search_id>``         string  the event counter behind each event's ``seq``
``<p>:cancel:<search_id>``      string  set when a cancel was requested
``<p>:lease:<job>``             string  the worker running the job (SET NX PX; heartbeat renews)
``<p>:worker:<worker_id>``      string  a live worker (PX; heartbeat renews)
``<p>:workers``                 set     worker ids that may own a processing list (for the reaper)
``<p>:lock:<name>``             string  short-lived mutual exclusion (one reconcile pass at a time)
==============================  ======  ==========================================================

A job appears in the lists and in lease keys in its Redis form (`service.queue.jobs.encode_job`).
"""

from __future__ import annotations

from dataclasses import dataclass

QUEUE = "queue"
PROCESSING = "processing"
EVENTS = "events"
LAST = "last"
SEQ = "seq"
CANCEL = "cancel"
LEASE = "lease"
WORKER = "worker"
WORKERS = "workers"
LOCK = "lock"


@dataclass(frozen=True)
class Keys:
    """The keys under one prefix, so that tests and deployments can share a server."""

    prefix: str = "enas"

    def key(self, *parts: object) -> str:
        """``<prefix>:<part>:<part>...``."""
        return ":".join([self.prefix, *(str(p) for p in parts)])

    @property
    def queue(self) -> str:
        return self.key(QUEUE)

    @property
    def workers(self) -> str:
        return self.key(WORKERS)

    def processing(self, worker_id: str) -> str:
        return self.key(PROCESSING, worker_id)

    def worker(self, worker_id: str) -> str:
        return self.key(WORKER, worker_id)

    def events(self, search_id: int) -> str:
        return self.key(EVENTS, int(search_id))

    def events_pattern(self) -> str:
        """The pattern of every search's events channel (one PSUBSCRIBE follows them all)."""
        return self.key(EVENTS, "*")

    def last(self, search_id: int) -> str:
        return self.key(LAST, int(search_id))

    def seq(self, search_id: int) -> str:
        return self.key(SEQ, int(search_id))

    def cancel(self, search_id: int) -> str:
        return self.key(CANCEL, int(search_id))

    def cancel_retrain(self, retrain_id: int) -> str:
        return self.key(CANCEL, "retrain", int(retrain_id))

    def lease(self, item: str) -> str:
        """The lease key of a job in its Redis form (``""``: the prefix of every lease key)."""
        return self.key(LEASE, item)

    def lock(self, name: str) -> str:
        return self.key(LOCK, name)


def ms(seconds: float) -> int:
    """Milliseconds for a PX argument (at least 1)."""
    return max(1, int(seconds * 1000))
