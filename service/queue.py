"""The job queue and the progress events of searches, on Redis.

The database is the source of truth; the queue only carries job names. A job is either a search
id (``"42"``: run, or resume, search 42) or ``"retrain:<retrain_id>"`` (retrain one architecture of
a finished search, `push_retrain`); `take` returns an ``int`` for the first and the string for the
second (`retrain_id_of`). Leases, processing lists, reaping and the reconciler treat both alike.
Keys (``<p>`` is the prefix, ``enas`` by default):

==============================  ======  ==========================================================
``<p>:queue``                   list    jobs waiting; `push` LPUSHes, `take` moves from the right
``<p>:processing:<worker_id>``  list    ids a worker took and has not acked (reliable-queue move)
``<p>:events:<search_id>``      pubsub  progress events (JSON) for live followers
``<p>:last:<search_id>``        string  the latest event (JSON), with a TTL, for late followers
``<p>:seq:<search_id>``         string  the event counter behind each event's ``seq``
``<p>:cancel:<search_id>``      string  set when a cancel was requested
``<p>:lease:<job>``             string  the worker running the job (SET NX PX; heartbeat renews)
``<p>:worker:<worker_id>``      string  a live worker (PX; heartbeat renews)
``<p>:workers``                 set     worker ids that may own a processing list (for the reaper)
``<p>:lock:<name>``             string  short-lived mutual exclusion (one reconcile pass at a time)
==============================  ======  ==========================================================

Leases: a worker registers itself (`register_worker`) before it takes anything, takes an id with
`take` (BLMOVE into its processing list), then claims the search with `acquire_lease`; only the
lease holder runs it, so a duplicated id never runs twice. Its heartbeat renews both keys
(`renew_lease` also puts them back after Redis lost its data). `reap` moves the ids of workers
whose key expired back to the front of the queue, unless another worker leases them.

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

RETRAIN_PREFIX = "retrain:"
"""Queue items ``retrain:<retrain_id>`` are retrain jobs; plain integers are search jobs."""

Job = int | str
"""A queue item: a search id (int) or a retrain job (``"retrain:<retrain_id>"``)."""

DEFAULT_EVENT_TTL_S = 7 * 24 * 3600
DEFAULT_CANCEL_TTL_S = 7 * 24 * 3600

# Lease scripts (atomic on the server). KEYS/ARGV documented per script.
# acquire: KEYS[1] lease; ARGV[1] worker, ARGV[2] ttl ms. Returns the holder after the call.
_ACQUIRE = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return ARGV[1] end
if holder then return holder end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return ARGV[1]
"""
# renew: KEYS[1] lease, KEYS[2] the worker's processing list; ARGV[1] worker, ARGV[2] ttl ms,
# ARGV[3] search id. 1: held (re-taken if Redis had lost it, id put back in the list); 0: lost.
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
# reap one worker: KEYS[1] its processing list, KEYS[2] queue, KEYS[3] its worker key, KEYS[4] the
# workers set; ARGV[1] lease key prefix, ARGV[2] worker id. Nothing while the worker is alive.
# Ids leased by nobody go to the front of the queue; ids another worker leases are only dropped
# (that worker has them); ids still leased by this worker wait for the lease to expire.
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

    def push_retrain(self, retrain_id: int) -> int:
        """Queue the retrain job of row ``retrain_id`` (after the row is committed); returns the depth.

        Unlike `push` it leaves the search's cancel flag alone (the search itself is finished).
        """
        return int(self.redis.lpush(self.key("queue"), retrain_job(retrain_id)))

    def take(self, worker_id: str, timeout: float = 1.0) -> Job | None:
        """Move the oldest queued job to ``worker_id``'s processing list and return it: a search id
        (int) or a retrain job (``"retrain:<id>"``).

        Blocks up to ``timeout`` seconds (``<= 0``: does not block). Returns None when nothing
        came. The id stays in the processing list until `ack`; a worker that dies leaves it there
        (for `reap`). Take only after `register_worker`: an unregistered worker counts as dead.
        """
        source, target = self.key("queue"), self.key("processing", worker_id)
        if timeout > 0:
            raw = self.redis.blmove(source, target, timeout, "RIGHT", "LEFT")  # type: ignore[arg-type]
        else:
            raw = self.redis.lmove(source, target, "RIGHT", "LEFT")
        if raw is None:
            return None
        self.redis.sadd(self.key("workers"), worker_id)  # its processing list is found by `reap`
        job = parse_job(raw)
        if job is None:
            logger.warning("dropping malformed queue item %r", raw)
            self.redis.lrem(target, 1, str(raw))
        return job

    def ack(self, worker_id: str, search_id: Job) -> bool:
        """Remove job ``search_id`` from ``worker_id``'s processing list; False when it was not there."""
        return int(self.redis.lrem(self.key("processing", worker_id), 1, _item(search_id))) > 0

    def release(self, worker_id: str, search_id: Job) -> None:
        """Give a taken id back: move it from ``worker_id``'s processing list to the front of the
        queue (it is taken next), atomically. For a worker that stops before finishing a job."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.lrem(self.key("processing", worker_id), 1, _item(search_id))
        pipe.rpush(self.key("queue"), _item(search_id))
        pipe.execute()

    def processing(self, worker_id: str) -> list[Job]:
        """Jobs ``worker_id`` took and has not acked, oldest last."""
        items = (parse_job(x) for x in self.redis.lrange(self.key("processing", worker_id), 0, -1))
        return [job for job in items if job is not None]

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

    # -- workers, leases, reaping ----------------------------------------------------------------

    def register_worker(self, worker_id: str, ttl_s: float) -> None:
        """Mark ``worker_id`` alive for ``ttl_s`` seconds (its heartbeat calls this again)."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.set(self.key("worker", worker_id), "1", px=_ms(ttl_s))
        pipe.sadd(self.key("workers"), worker_id)
        pipe.execute()

    def unregister_worker(self, worker_id: str) -> None:
        """A worker that stops cleanly: its liveness key goes; the reaper forgets it once its
        processing list is empty."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(self.key("worker", worker_id))
        pipe.llen(self.key("processing", worker_id))
        if not pipe.execute()[1]:
            self.redis.srem(self.key("workers"), worker_id)

    def worker_alive(self, worker_id: str) -> bool:
        """Whether ``worker_id``'s liveness key is set (not expired)."""
        return bool(self.redis.exists(self.key("worker", worker_id)))

    def workers(self) -> list[str]:
        """Ids of the workers that registered and were not forgotten yet (alive or not)."""
        return sorted(str(w) for w in self.redis.smembers(self.key("workers")))

    def acquire_lease(self, search_id: Job, worker_id: str, ttl_s: float) -> bool:
        """Claim the right to run ``search_id`` for ``ttl_s`` seconds (SET NX PX).

        True when ``worker_id`` holds the lease now (taken, or already its own: renewed);
        False when another worker holds it.
        """
        holder = self.redis.eval(_ACQUIRE, 1, self.key("lease", search_id), worker_id, _ms(ttl_s))
        return bool(holder == worker_id)

    def renew_lease(self, search_id: Job, worker_id: str, ttl_s: float) -> bool:
        """Extend ``worker_id``'s lease on ``search_id``; False when another worker holds it now.

        After Redis lost its data (restart without persistence) the lease is taken again and the id
        put back in the worker's processing list, so the job is not re-enqueued under it.
        """
        keys = (self.key("lease", search_id), self.key("processing", worker_id))
        return bool(self.redis.eval(_RENEW, 2, *keys, worker_id, _ms(ttl_s), _item(search_id)))

    def release_lease(self, search_id: Job, worker_id: str) -> bool:
        """Drop ``worker_id``'s lease on ``search_id``; False when it did not hold it."""
        return bool(self.redis.eval(_RELEASE, 1, self.key("lease", search_id), worker_id))

    def lease_holder(self, search_id: Job) -> str | None:
        """The worker holding the lease on ``search_id``, or None."""
        holder = self.redis.get(self.key("lease", search_id))
        return None if holder is None else str(holder)

    def reap(self) -> list[Job]:
        """Put the jobs of dead workers (liveness key expired) back at the front of the queue.

        Returns the ids moved. Safe to run from any number of processes at once (one script per
        worker, atomic on the server).
        """
        moved: list[Job] = []
        for worker_id in self.workers():
            keys = (
                self.key("processing", worker_id),
                self.key("queue"),
                self.key("worker", worker_id),
                self.key("workers"),
            )
            ids = self.redis.eval(_REAP, 4, *keys, self.key("lease", ""), worker_id)
            moved.extend(job for job in map(parse_job, ids) if job is not None)
        if moved:
            logger.warning("reaped search(es) %s from dead workers: back on the queue", moved)
        return moved

    def present(self) -> set[Job]:
        """Every job waiting in the queue or held in a processing list (for the reconciler)."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.lrange(self.key("queue"), 0, -1)
        for worker_id in self.workers():
            pipe.lrange(self.key("processing", worker_id), 0, -1)
        jobs = (parse_job(x) for items in pipe.execute() for x in items)
        return {job for job in jobs if job is not None}

    def leased(self, search_ids: list[Job]) -> set[Job]:
        """Those of ``search_ids`` that a worker currently leases."""
        if not search_ids:
            return set()
        holders = self.redis.mget([self.key("lease", i) for i in search_ids])
        return {i for i, h in zip(search_ids, holders, strict=True) if h is not None}

    def restore(self, search_id: Job) -> None:
        """Queue job ``search_id`` again after Redis lost it (reconciler). Unlike `push`, keeps the
        cancel flag: the run was never cancelled by this."""
        self.redis.lpush(self.key("queue"), _item(search_id))

    def try_lock(self, name: str, owner: str, ttl_s: float) -> bool:
        """Take (or extend, when ``owner`` has it) the lock ``name`` for ``ttl_s`` seconds; False
        when someone else holds it. Never waits."""
        return bool(self.redis.eval(_ACQUIRE, 1, self.key("lock", name), owner, _ms(ttl_s)) == owner)


def retrain_job(retrain_id: int) -> str:
    """The queue item of a retrain job."""
    return f"{RETRAIN_PREFIX}{int(retrain_id)}"


def retrain_id_of(job: Job) -> int | None:
    """The retrain id of a retrain job, None for a search job."""
    if isinstance(job, str) and job.startswith(RETRAIN_PREFIX):
        return int(job[len(RETRAIN_PREFIX) :])
    return None


def parse_job(raw: object) -> Job | None:
    """A queue item as a job (search id int, or ``"retrain:<id>"``); None when malformed."""
    text = str(raw)
    if text.isdigit():
        return int(text)
    rest = text[len(RETRAIN_PREFIX) :]
    if text.startswith(RETRAIN_PREFIX) and rest.isdigit():
        return retrain_job(int(rest))
    return None


def _item(job: Job) -> str:
    """The Redis list item of ``job`` (normalised, so LREM/LPOS match what was pushed)."""
    retrain_id = retrain_id_of(job)
    return str(int(job)) if retrain_id is None else retrain_job(retrain_id)


def _ms(seconds: float) -> int:
    """Milliseconds for a PX argument (at least 1)."""
    return max(1, int(seconds * 1000))


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
