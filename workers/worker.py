"""The worker loop (``enasctl worker``): take a job from the queue, lease it, run it, ack it.

A job is a search id (run or resume the search) or ``retrain:<retrain_id>`` (retrain one
architecture of a finished search: `workers.retrain_job`). A worker handles one job at a time, and
every log line while it handles one carries the search id (`service.logging.bind_search`).

At start it migrates the database (a worker started alone
against a fresh database works), registers itself and starts two daemon threads: the heartbeat
(`workers.lease.LeaseKeeper`: liveness key and lease renewal) and the maintenance pass
(`workers.reconciler`: reaping dead workers' jobs, re-enqueueing searches Redis lost).

It survives its dependencies going away: an unreachable database or Redis is retried with backoff
(logged), in the loop and inside a running search, and the worker never exits for it.

Attached to a Ray cluster, it watches the head (`workers.head_watch`): when the head stays
unreachable for ``ENAS_RAY_HEAD_GRACE_S``, the job it holds goes back to the front of the queue
and it exits with status 3 (`HEAD_LOST_EXIT`) for its supervisor to restart it.

SIGTERM or SIGINT asks it to stop: the running search stops at its next batch boundary and goes
back to the front of the queue (still ``running`` in the database, so the next worker re-claims it
and resumes from its checkpoint); a second SIGINT interrupts at once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import signal
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from types import FrameType

import redis

from service.errors import NotFound
from service.logging import bind_search
from service.queue import Job, Queue
from service.queue.connection import connect
from service.settings import Settings
from service.store import Store, db
from workers.actors import ensure_ray
from workers.head_watch import HEAD_LOST_EXIT, HeadWatch, head_address
from workers.lease import LeaseKeeper
from workers.reconciler import Maintenance, Reconciler
from workers.retrain import retrain_cancels
from workers.retrain_job import run_retrain_job
from workers.retry import TRANSIENT, Backoff, retry_transient
from workers.runner import SearchInterrupted, run_search

logger = logging.getLogger(__name__)

RUNNABLE_STATUSES = ("queued", "running", "pending")


class WorkerStopping(Exception):
    """The worker was asked to stop while waiting for a dependency."""


@dataclass(frozen=True)
class JobContext:
    """What handling one job needs: the store, the queue, this worker and its lease keeper."""

    store: Store
    queue: Queue
    settings: Settings
    worker_id: str
    stop_event: threading.Event
    keeper: LeaseKeeper

    def settle(self, job: Job) -> None:
        """Done with a job: drop the lease (so no heartbeat re-registers the id), then ack it."""
        self.keeper.release()
        self.queue.jobs.ack(self.worker_id, job)


def _new_keeper(queue: Queue, worker_id: str, settings: Settings) -> LeaseKeeper:
    return LeaseKeeper(queue, worker_id, ttl_s=settings.lease_ttl_s, interval_s=settings.heartbeat_interval_s)


def default_worker_id() -> str:
    """``<host>-<pid>-<random>``: unique per worker process, readable in logs and leases."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


def run_worker(
    settings: Settings,
    *,
    burst: bool = False,
    worker_id: str | None = None,
    stop_event: threading.Event | None = None,
    queue_prefix: str = "enas",
    poll_s: float = 1.0,
) -> int:
    """Take and run searches until stopped; returns how many jobs were handled.

    Args:
        settings: database, Redis, Ray and lease settings.
        burst: return as soon as the queue is empty (deterministic tests, batch jobs).
        worker_id: name of this worker's processing list (default `default_worker_id`).
        stop_event: set it to stop the worker (also set by SIGTERM/SIGINT in the main thread).
        queue_prefix: Redis key prefix of the queue (tests use their own).
        poll_s: how long one blocking take waits before the stop event is checked again.
    """
    worker_id = worker_id or default_worker_id()
    stop = stop_event or threading.Event()
    if not logging.getLogger().handlers:  # a bare process (``enasctl worker``): log to stderr
        logging.basicConfig(
            level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
    if settings.ray_address is not None:
        ensure_ray(settings)  # attach now: a worker that cannot reach its cluster exits in seconds
    with _stop_on_signals(stop):
        try:
            _migrate(settings, stop)
        except WorkerStopping:
            return 0
        store = Store(settings.db_url)
        client = connect(settings)
        queue = Queue.on(client, prefix=queue_prefix)
        keeper = _new_keeper(queue, worker_id, settings)
        reconciler = Reconciler(
            store,
            queue,
            grace_s=settings.lease_ttl_s,
            owner=worker_id,
            lock_ttl_s=3 * settings.reconcile_interval_s,
        )
        maintenance = Maintenance(reconciler, settings.reconcile_interval_s)
        logger.info("worker %s started (queue %s)", worker_id, queue.keys.queue)
        handled = 0
        watch = _watch_head(settings, queue, worker_id, keeper)
        try:
            keeper.start()
            maintenance.start()
            context = JobContext(store, queue, settings, worker_id, stop, keeper)
            handled = _loop(context, burst=burst, poll_s=poll_s)
        finally:
            if watch is not None:
                watch.stop()
            maintenance.stop()
            keeper.stop()
            client.close()
            store.dispose()
            logger.info("worker %s stopped after %d job(s)", worker_id, handled)
    return handled


def _watch_head(settings: Settings, queue: Queue, worker_id: str, keeper: LeaseKeeper) -> HeadWatch | None:
    """On a cluster, a started `HeadWatch`: when the head stays away ``ray_head_grace_s``, the
    held job goes back to the front of the queue and the process exits with `HEAD_LOST_EXIT`."""
    if settings.ray_address is None:
        return None

    def on_lost(reason: str) -> None:
        job = keeper.held
        keeper.release()
        if job is not None:
            with contextlib.suppress(redis.RedisError):
                queue.jobs.release(worker_id, job)
        logger.error(
            "worker %s: %s; job %s back on the queue; exiting with status %d to be restarted",
            worker_id,
            reason,
            job,
            HEAD_LOST_EXIT,
        )
        logging.shutdown()
        os._exit(HEAD_LOST_EXIT)

    watch = HeadWatch(head_address(), settings.ray_head_grace_s, on_lost)
    watch.start()
    return watch


def _loop(context: JobContext, *, burst: bool, poll_s: float) -> int:
    """Take and handle jobs until stopped; dependency failures wait with backoff, never raise."""
    queue, worker_id, stop, keeper = context.queue, context.worker_id, context.stop_event, context.keeper
    settings = context.settings
    handled = 0
    backoff = Backoff(maximum=settings.retry_max_s)
    while not stop.is_set():
        try:
            keeper.register()  # alive before the take, so the reaper leaves the taken id alone
            _requeue_leftovers(queue, worker_id)
            job = queue.jobs.take(worker_id, timeout=poll_s)
            if job is None:
                backoff.reset()  # Redis answers and nothing failed
                if burst:
                    break
                continue
            _handle(job, context)
            handled += 1
            backoff.reset()
        except TRANSIENT as e:
            delay = backoff.next_delay()
            logger.warning("worker %s: %s; retry %d in %.1fs", worker_id, e, backoff.attempts, delay)
            stop.wait(delay)
        except Exception:  # noqa: BLE001 - a worker outlives any one job's handling
            delay = backoff.next_delay()
            logger.exception(
                "worker %s: handling a job crashed; retry %d in %.1fs", worker_id, backoff.attempts, delay
            )
            stop.wait(delay)
    return handled


def _requeue_leftovers(queue: Queue, worker_id: str) -> None:
    """Jobs in this worker's processing list that it is not running (a handling that crashed, or a
    previous life under the same id) go back to the front of the queue."""
    for job in queue.jobs.processing(worker_id):
        logger.warning("job %s: left in %s's processing list; back on the queue", job, worker_id)
        queue.jobs.release(worker_id, job)


def handle_job(
    job: Job,
    *,
    store: Store,
    queue: Queue,
    settings: Settings,
    worker_id: str,
    stop_event: threading.Event,
    keeper: LeaseKeeper | None = None,
) -> None:
    """Lease, run and settle one taken ``job`` (a search to run, or a retrain).

    A job whose lease another worker holds (a duplicate id) is dropped: that worker runs it.
    Finished searches or retrains (and unknown ids) are acked and skipped. An interrupted job is
    released to the front of the queue. When the database or Redis fails while the job is settled,
    the job goes back to the queue (or stays in the processing list for `_requeue_leftovers`) and
    the error propagates to the loop's backoff. Log lines carry the job's search id.
    """
    keeper = keeper or _new_keeper(queue, worker_id, settings)
    _handle(job, JobContext(store, queue, settings, worker_id, stop_event, keeper))


def _handle(job: Job, context: JobContext) -> None:
    """`handle_job` with its context, inside the job's log binding."""
    with bind_search(_search_of(job, context.store)):
        _handle_bound(job, context)


def _search_of(job: Job, store: Store) -> int | None:
    """The search a job is about (a retrain job's row names it; None when the row is gone)."""
    if job.kind == "search":
        return job.id
    try:
        return store.get_retrain(retrain_id=job.id).search_id
    except NotFound:
        return None


def _handle_bound(job: Job, context: JobContext) -> None:
    """`handle_job`'s body, inside the search's log binding."""
    queue, worker_id, keeper = context.queue, context.worker_id, context.keeper
    if not keeper.acquire(job):
        logger.info("job %s: leased by %s; dropping this copy", job, queue.leases.holder(job))
        queue.jobs.ack(worker_id, job)
        return
    run = _run_leased if job.kind == "search" else _run_retrain_leased
    try:
        run(job, context)
    except (SearchInterrupted, *TRANSIENT) as e:
        if isinstance(e, SearchInterrupted):
            logger.info("job %s: interrupted by worker shutdown; back on the queue", job)
        else:
            logger.warning("job %s: handling failed (%s); back on the queue", job, e)
        keeper.release()  # first: a heartbeat would put the id back in the processing list
        with contextlib.suppress(redis.RedisError):
            queue.jobs.release(worker_id, job)
        if not isinstance(e, SearchInterrupted):
            raise
    finally:
        keeper.release()


def _run_leased(job: Job, context: JobContext) -> None:
    """Run a search whose lease this worker holds, then ack it (finished, skipped or fenced out)."""
    store, worker_id = context.store, context.worker_id
    search_id = job.id
    try:
        status = store.get_search(search_id=search_id).status
    except NotFound:
        logger.warning("search %s: not in the database; dropping the job", search_id)
        context.settle(job)
        return
    if status not in RUNNABLE_STATUSES:
        logger.info("search %s: already %s; skipping", search_id, status)
        context.settle(job)
        return
    logger.info("search %s: taken by %s", search_id, worker_id)
    final = run_search(
        search_id,
        store=store,
        queue=context.queue,
        settings=context.settings,
        worker_id=worker_id,
        stop_event=context.stop_event,
        keeper=context.keeper,
    )
    context.settle(job)
    if final.is_terminal:
        logger.info("search %s: %s", search_id, final.status)
    else:
        logger.info("search %s: left to %s (it holds the search now)", search_id, final.lease_owner)


def _run_retrain_leased(job: Job, context: JobContext) -> None:
    """Run a retrain job whose lease this worker holds, then ack it (finished, skipped or left).

    A retrain whose search is queued or running again (resumed) is left queued: that search's own
    run retrains it, or the reconciler queues the job again once the search finished.
    """
    store = context.store
    retrain_id = job.id
    try:
        row = store.get_retrain(retrain_id=retrain_id)
        search = store.get_search(search_id=row.search_id)
    except NotFound:
        logger.warning("retrain %s: not in the database; dropping the job", retrain_id)
        context.settle(job)
        return
    if row.status not in RUNNABLE_STATUSES or search.status in RUNNABLE_STATUSES:
        logger.info("retrain %s: %s (search %s); skipping", retrain_id, row.status, search.status)
        context.settle(job)
        return
    logger.info(
        "retrain %s of architecture %s: taken by %s", retrain_id, row.architecture_id, context.worker_id
    )
    summary = run_retrain_job(
        store,
        row,
        search.spec,
        context.settings,
        stop_event=context.stop_event,
        keeper=context.keeper,
        cancelled=retrain_cancels(context.queue),
    )
    context.settle(job)
    if summary is not None:
        logger.info("retrain %s: %s (test score %s)", retrain_id, summary["status"], summary["test_score"])


def _migrate(settings: Settings, stop: threading.Event) -> None:
    """`service.store.db.upgrade` at start, retried with backoff while the database is unreachable."""

    def check() -> None:
        if stop.is_set():
            raise WorkerStopping

    retry_transient(
        lambda: db.upgrade(settings.db_url),
        what="database migration",
        check=check,
        maximum=settings.retry_max_s,
        sleep=stop.wait,
    )


@contextlib.contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """Set ``stop`` on the first SIGTERM/SIGINT; a second SIGINT raises KeyboardInterrupt.

    A SIGTERM after a SIGINT does not escalate: ``enasctl up`` forwards SIGTERM to its children
    right after the terminal's Ctrl-C reached them, and they should still stop cleanly.
    Signal handlers can only be installed from the main thread; elsewhere this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        if stop.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        logger.info("%s received: stopping after the current batch", signal.Signals(signum).name)
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
