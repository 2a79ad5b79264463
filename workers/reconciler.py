"""The database is the source of truth; this puts Redis back in line with it.

`Reconciler.run_once` (every worker runs it periodically in a `Maintenance` thread):

1. reaps: ids in the processing lists of dead workers go back to the queue (`Jobs.reap`);
2. re-enqueues every ``queued`` or ``running`` search that is nowhere in Redis (not in the queue,
   not in a processing list, no live lease), so losing Redis (a restart without persistence, a
   flush, a failover) loses no job. A search must be seen missing twice, ``grace_s`` apart, before
   it is queued again: a worker whose Redis came back empty re-registers its running search within
   a heartbeat, and a search just created is pushed by the API a moment after its row.
   Likewise every ``queued``/``running`` retrain of a finished search (`Store.orphan_retrains`)
   whose job (``retrain:<id>``) is nowhere in Redis.

Duplicated ids are harmless: a worker that takes one finds the lease held (another worker runs it)
or the search finished, and drops it.
"""

from __future__ import annotations

import logging
import threading
import time

import redis

from service.errors import Unavailable
from service.queue import Job, Queue
from service.store import Store

logger = logging.getLogger(__name__)


class Reconciler:
    """Reaps dead workers' jobs and re-enqueues unfinished searches missing from Redis."""

    def __init__(
        self, store: Store, queue: Queue, *, grace_s: float, owner: str, lock_ttl_s: float | None = None
    ) -> None:
        """``grace_s``: how long a search must stay missing before it is queued again;
        ``lock_ttl_s``: how long this reconciler keeps the others out between its passes
        (default 3 x grace_s; it re-takes its own lock on each pass)."""
        self.store = store
        self.queue = queue
        self.grace_s = grace_s
        self.owner = owner
        self.lock_ttl_s = lock_ttl_s if lock_ttl_s is not None else 3 * grace_s
        self._missing_since: dict[Job, float] = {}

    def run_once(self) -> list[Job]:
        """One pass; returns the ids queued again (reaped or restored).

        Raises Unavailable (database) or redis errors; the next pass starts afresh.
        """
        moved = self.queue.jobs.reap()
        if not self.queue.leases.try_lock("reconcile", self.owner, self.lock_ttl_s):
            return moved  # another worker reconciles (its suspects would restart here)
        jobs = self._unfinished_jobs()
        present = self.queue.jobs.present()
        absent = [job for job in jobs if job not in present]
        missing = set(absent) - self.queue.leases.leased(absent)
        now = time.monotonic()
        self._missing_since = {j: self._missing_since.get(j, now) for j in missing}
        for job in sorted(missing, key=str):
            if now - self._missing_since[job] >= self.grace_s:
                self.queue.jobs.requeue(job)
                del self._missing_since[job]
                moved.append(job)
                logger.warning("job %s: unfinished in the database but not in Redis; queued again", job)
        return moved

    def _unfinished_jobs(self) -> list[Job]:
        """The jobs the database says must be somewhere: unfinished searches, orphan retrains."""
        searches = [Job.search(r.id) for r in self.store.unfinished_searches()]
        return searches + [Job.retrain(r.id) for r in self.store.orphan_retrains()]


class Maintenance:
    """A daemon thread running `Reconciler.run_once` every ``interval_s`` (failures logged)."""

    def __init__(self, reconciler: Reconciler, interval_s: float) -> None:
        self.reconciler = reconciler
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="reconciler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        failing = False
        while not self._stop.wait(self.interval_s):
            try:
                self.reconciler.run_once()
                failing = False
            except (Unavailable, redis.RedisError) as e:
                if not failing:
                    logger.warning("reconciler: %s; retrying every %.1fs", e, self.interval_s)
                failing = True
            except Exception:  # noqa: BLE001 - the thread must outlive any one failure
                logger.exception("reconciler pass failed")
