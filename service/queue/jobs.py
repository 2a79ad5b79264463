"""The job queue: a reliable queue of typed jobs on Redis.

The database is the source of truth; the queue only carries what to run: a `Job`, a search to run
(or resume) or a retrain of one architecture of a finished search. How a job is written in Redis
(``"42"``, ``"retrain:7"``) is private to this package (`encode_job`, `decode_job`).

A worker takes a job with `Jobs.take` (BLMOVE into its own processing list), runs it under a lease
(`service.queue.leases`), and acks it; `Jobs.reap` moves the jobs of workers whose liveness key
expired back to the front of the queue, unless another worker leases them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import redis

from service.queue.keys import Keys
from service.queue.workers import WorkerRegistry

logger = logging.getLogger(__name__)

JobKind = Literal["search", "retrain"]
_RETRAIN_PREFIX = "retrain:"


@dataclass(frozen=True, order=True)
class Job:
    """One queued unit of work: run search ``id`` (``kind="search"``) or retrain row ``id``
    (``kind="retrain"``, from ``POST /searches/{id}/retrain``)."""

    kind: JobKind
    id: int

    @classmethod
    def search(cls, search_id: int) -> Job:
        return cls("search", int(search_id))

    @classmethod
    def retrain(cls, retrain_id: int) -> Job:
        return cls("retrain", int(retrain_id))

    def __str__(self) -> str:
        return f"{self.kind} {self.id}"


def encode_job(job: Job) -> str:
    """The Redis form of ``job`` (list item, lease key suffix): ``"42"`` or ``"retrain:7"``."""
    return str(job.id) if job.kind == "search" else f"{_RETRAIN_PREFIX}{job.id}"


def decode_job(raw: object) -> Job | None:
    """The job an item of a Redis list stands for; None when it is malformed."""
    text = str(raw)
    if text.isdigit():
        return Job.search(int(text))
    rest = text[len(_RETRAIN_PREFIX) :]
    if text.startswith(_RETRAIN_PREFIX) and rest.isdigit():
        return Job.retrain(int(rest))
    return None


def _decoded(items: Iterable[object]) -> list[Job]:
    jobs = (decode_job(x) for x in items)
    return [job for job in jobs if job is not None]


# reap one worker: KEYS[1] its processing list, KEYS[2] queue, KEYS[3] its worker key, KEYS[4] the
# workers set; ARGV[1] lease key prefix, ARGV[2] worker id. Nothing while the worker is alive.
# Jobs leased by nobody go to the front of the queue; jobs another worker leases are only dropped
# (that worker has them); jobs still leased by this worker wait for the lease to expire.
_REAP = """
if redis.call('EXISTS', KEYS[3]) == 1 then return {} end
local moved = {}
local ids = redis.call('LRANGE', KEYS[1], 0, -1)
for i = #ids, 1, -1 do
  local holder = redis.call('GET', ARGV[1] .. ids[i])
  if holder ~= ARGV[2] then
    redis.call('LREM', KEYS[1], 1, ids[i])
    if not holder then
      redis.call('RPUSH', KEYS[2], ids[i])
      table.insert(moved, ids[i])
    end
  end
end
if redis.call('LLEN', KEYS[1]) == 0 then redis.call('SREM', KEYS[4], ARGV[2]) end
return moved
"""


class Jobs:
    """The queue of jobs and the processing list of each worker.

    Args:
        client: a Redis client with ``decode_responses=True`` (`service.queue.connection.connect`).
        keys: the key names (their prefix).
        workers: the registry, to which a worker that takes a job is known (for `reap`).
    """

    def __init__(self, client: redis.Redis, keys: Keys, workers: WorkerRegistry) -> None:
        self._redis = client
        self._keys = keys
        self._workers = workers

    def push(self, job: Job) -> int:
        """Queue ``job`` (after its row is committed); returns the queue depth.

        A search job is a new run request: it clears a cancel flag left from an earlier run (in the
        same transaction). A retrain job leaves the search's cancel flag alone (the search is done).
        """
        pipe = self._redis.pipeline(transaction=True)
        if job.kind == "search":
            pipe.delete(self._keys.cancel(job.id))
        pipe.lpush(self._keys.queue, encode_job(job))
        return int(pipe.execute()[-1])

    def take(self, worker_id: str, timeout: float = 1.0) -> Job | None:
        """Move the oldest queued job to ``worker_id``'s processing list and return it.

        Blocks up to ``timeout`` seconds (``<= 0``: does not block). Returns None when nothing
        came. The job stays in the processing list until `ack`; a worker that dies leaves it there
        (for `reap`). Take only after registering the worker: an unregistered worker counts as dead.
        A malformed item is dropped (logged) and None returned.
        """
        source, target = self._keys.queue, self._keys.processing(worker_id)
        if timeout > 0:  # the raw command: redis-py types BLMOVE's timeout as int, the server takes a float
            raw = self._redis.execute_command("BLMOVE", source, target, "RIGHT", "LEFT", timeout)
        else:
            raw = self._redis.lmove(source, target, "RIGHT", "LEFT")
        if raw is None:
            return None
        self._workers.remember(worker_id)  # its processing list is found by `reap`
        job = decode_job(raw)
        if job is None:
            logger.warning("dropping malformed queue item %r", raw)
            self._redis.lrem(target, 1, str(raw))
        return job

    def ack(self, worker_id: str, job: Job) -> bool:
        """Remove ``job`` from ``worker_id``'s processing list; False when it was not there."""
        return int(self._redis.lrem(self._keys.processing(worker_id), 1, encode_job(job))) > 0

    def release(self, worker_id: str, job: Job) -> None:
        """Give a taken job back: move it from ``worker_id``'s processing list to the front of the
        queue (it is taken next), atomically. For a worker that stops before finishing a job."""
        pipe = self._redis.pipeline(transaction=True)
        pipe.lrem(self._keys.processing(worker_id), 1, encode_job(job))
        pipe.rpush(self._keys.queue, encode_job(job))
        pipe.execute()

    def requeue(self, job: Job) -> None:
        """Queue ``job`` again after Redis lost it (the reconciler). Unlike `push`, keeps the
        cancel flag: the run was never cancelled by this."""
        self._redis.lpush(self._keys.queue, encode_job(job))

    def processing(self, worker_id: str) -> list[Job]:
        """Jobs ``worker_id`` took and has not acked, oldest last."""
        return _decoded(self._redis.lrange(self._keys.processing(worker_id), 0, -1))

    def waiting(self) -> list[Job]:
        """The jobs in the queue, the next one to be taken last."""
        return _decoded(self._redis.lrange(self._keys.queue, 0, -1))

    def depth(self) -> int:
        """How many jobs wait in the queue."""
        return int(self._redis.llen(self._keys.queue))

    def present(self) -> set[Job]:
        """Every job waiting in the queue or held in a processing list (for the reconciler)."""
        pipe = self._redis.pipeline(transaction=False)
        pipe.lrange(self._keys.queue, 0, -1)
        for worker_id in self._workers.ids():
            pipe.lrange(self._keys.processing(worker_id), 0, -1)
        return {job for items in pipe.execute() for job in _decoded(items)}

    def reap(self) -> list[Job]:
        """Put the jobs of dead workers (liveness key expired) back at the front of the queue.

        Returns the jobs moved. Safe to run from any number of processes at once (one script per
        worker, atomic on the server).
        """
        moved: list[Job] = []
        for worker_id in self._workers.ids():
            keys = (
                self._keys.processing(worker_id),
                self._keys.queue,
                self._keys.worker(worker_id),
                self._keys.workers,
            )
            moved.extend(_decoded(self._redis.eval(_REAP, 4, *keys, self._keys.lease(""), worker_id)))
        if moved:
            logger.warning(
                "reaped search(es) %s from dead workers: back on the queue", [str(j) for j in moved]
            )
        return moved
