"""Leases: the right to run one job, held by one worker (SET NX PX; its heartbeat renews it), and
short-lived named locks built the same way.

A worker registers itself, takes a job (`service.queue.jobs.Jobs.take`), then claims it with
`Leases.acquire`; only the lease holder runs it, so a duplicated job never runs twice. Its
heartbeat renews the lease (`Leases.renew` also puts the lease and the processing-list entry back
after Redis lost its data).
"""

from __future__ import annotations

import redis

from service.queue.jobs import Job, encode_job
from service.queue.keys import Keys, ms

# Scripts (atomic on the server). KEYS/ARGV documented per script.
# acquire: KEYS[1] lease; ARGV[1] worker, ARGV[2] ttl ms. Returns the holder after the call.
_ACQUIRE = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return ARGV[1] end
if holder then return holder end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return ARGV[1]
"""
# renew: KEYS[1] lease, KEYS[2] the worker's processing list; ARGV[1] worker, ARGV[2] ttl ms,
# ARGV[3] the job's list item. 1: held (re-taken if Redis had lost it, item put back in the list);
# 0: lost.
_RENEW = """
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
if not redis.call('LPOS', KEYS[2], ARGV[3]) then redis.call('LPUSH', KEYS[2], ARGV[3]) end
return 1
"""
# release: KEYS[1] lease; ARGV[1] worker. Deletes the lease only when this worker holds it.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class Leases:
    """Leases on jobs, and named locks."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self._redis = client
        self._keys = keys

    def _key(self, job: Job) -> str:
        return self._keys.lease(encode_job(job))

    def acquire(self, job: Job, worker_id: str, ttl_s: float) -> bool:
        """Claim the right to run ``job`` for ``ttl_s`` seconds.

        True when ``worker_id`` holds the lease now (taken, or already its own: renewed);
        False when another worker holds it.
        """
        return bool(self._redis.eval(_ACQUIRE, 1, self._key(job), worker_id, ms(ttl_s)) == worker_id)

    def renew(self, job: Job, worker_id: str, ttl_s: float) -> bool:
        """Extend ``worker_id``'s lease on ``job``; False when another worker holds it now.

        After Redis lost its data (restart without persistence) the lease is taken again and the job
        put back in the worker's processing list, so it is not re-enqueued under it.
        """
        keys = (self._key(job), self._keys.processing(worker_id))
        return bool(self._redis.eval(_RENEW, 2, *keys, worker_id, ms(ttl_s), encode_job(job)))

    def release(self, job: Job, worker_id: str) -> bool:
        """Drop ``worker_id``'s lease on ``job``; False when it did not hold it."""
        return bool(self._redis.eval(_RELEASE, 1, self._key(job), worker_id))

    def holder(self, job: Job) -> str | None:
        """The worker holding the lease on ``job``, or None."""
        holder = self._redis.get(self._key(job))
        return None if holder is None else str(holder)

    def leased(self, jobs: list[Job]) -> set[Job]:
        """Those of ``jobs`` that a worker currently leases."""
        if not jobs:
            return set()
        holders = self._redis.mget([self._key(job) for job in jobs])
        return {job for job, holder in zip(jobs, holders, strict=True) if holder is not None}

    def try_lock(self, name: str, owner: str, ttl_s: float) -> bool:
        """Take (or extend, when ``owner`` has it) the lock ``name`` for ``ttl_s`` seconds; False
        when someone else holds it. Never waits."""
        return bool(self._redis.eval(_ACQUIRE, 1, self._keys.lock(name), owner, ms(ttl_s)) == owner)
