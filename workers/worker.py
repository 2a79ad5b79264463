"""The worker loop (``enasctl worker``): take a search id from the queue, run it, ack it.

A worker handles one search at a time. SIGTERM or SIGINT asks it to stop: the running search
stops at its next batch boundary and goes back to the front of the queue (still ``running`` in the
database, so the next worker re-claims it); a second SIGINT interrupts at once.
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
from types import FrameType

from service.errors import NotFound
from service.queue import JobQueue
from service.redis_conn import connect
from service.settings import Settings
from service.store import Store
from workers.runner import SearchInterrupted, run_search

logger = logging.getLogger(__name__)

RUNNABLE_STATUSES = ("queued", "running")


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
        settings: database, Redis and Ray settings.
        burst: return as soon as the queue is empty (deterministic tests, batch jobs).
        worker_id: name of this worker's processing list (default `default_worker_id`).
        stop_event: set it to stop the worker (also set by SIGTERM/SIGINT in the main thread).
        queue_prefix: Redis key prefix of the queue (tests use their own).
        poll_s: how long one blocking take waits before the stop event is checked again.
    """
    worker_id = worker_id or default_worker_id()
    stop = stop_event or threading.Event()
    store = Store(settings.db_url)
    client = connect(settings)
    queue = JobQueue(client, prefix=queue_prefix)
    handled = 0
    logger.info("worker %s started (queue %s)", worker_id, queue.key("queue"))
    try:
        with _stop_on_signals(stop):
            while not stop.is_set():
                search_id = queue.take(worker_id, timeout=poll_s)
                if search_id is None:
                    if burst:
                        break
                    continue
                handle_job(
                    search_id,
                    store=store,
                    queue=queue,
                    settings=settings,
                    worker_id=worker_id,
                    stop_event=stop,
                )
                handled += 1
    finally:
        client.close()
        store.dispose()
        logger.info("worker %s stopped after %d job(s)", worker_id, handled)
    return handled


def handle_job(
    search_id: int,
    *,
    store: Store,
    queue: JobQueue,
    settings: Settings,
    worker_id: str,
    stop_event: threading.Event,
) -> None:
    """Run one taken job and settle it in the queue.

    Finished searches (and unknown ids) are acked and skipped. An interrupted search is released
    to the front of the queue. If handling itself crashes (e.g. the database is unreachable while
    recording the failure), the id stays in this worker's processing list, as if the worker had
    died, for the lease reaper.
    """
    try:
        status = store.get_search(search_id=search_id).status
    except NotFound:
        logger.warning("search %s: not in the database; dropping the job", search_id)
        queue.ack(worker_id, search_id)
        return
    if status not in RUNNABLE_STATUSES:
        logger.info("search %s: already %s; skipping", search_id, status)
        queue.ack(worker_id, search_id)
        return
    logger.info("search %s: taken by %s", search_id, worker_id)
    try:
        final = run_search(
            search_id, store=store, queue=queue, settings=settings, worker_id=worker_id, stop_event=stop_event
        )
    except SearchInterrupted:
        logger.info("search %s: interrupted by worker shutdown; back on the queue", search_id)
        queue.release(worker_id, search_id)
        return
    except Exception:
        logger.exception("search %s: the job crashed; left in %s's processing list", search_id, worker_id)
        return
    queue.ack(worker_id, search_id)
    logger.info("search %s: %s", search_id, final.status)


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
