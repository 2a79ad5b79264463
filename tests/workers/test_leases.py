"""Heartbeat and lease keeping, and the reconciler (DB -> Redis), on a real
SQLite store and the embedded Redis (no Ray)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from service.errors import Conflict
from service.queue import Job, Queue
from service.settings import Settings
from service.store import Store
from workers.lease import LeaseKeeper, LeaseLost
from workers.reconciler import Reconciler
from workers.worker import run_worker

Spec = Callable[..., dict[str, Any]]


def _eventually(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_keeper_renews_and_notices_a_takeover(queue: Queue) -> None:
    keeper = LeaseKeeper(queue, "w1", ttl_s=0.6, interval_s=0.1)
    keeper.start()
    try:
        assert _eventually(lambda: queue.workers.alive("w1"))
        assert keeper.acquire(Job.search(11)) and queue.leases.holder(Job.search(11)) == "w1"
        time.sleep(1.0)  # longer than the TTL: only renewals keep it
        assert queue.leases.holder(Job.search(11)) == "w1" and keeper.valid()
        keeper.check()
        queue.redis.set(queue.keys.lease("11"), "w2")  # presumed dead, re-taken by w2
        assert _eventually(keeper.lost.is_set)
        with pytest.raises(LeaseLost):
            keeper.check()
        keeper.release()
        assert queue.leases.holder(Job.search(11)) == "w2"  # not ours to delete
    finally:
        keeper.stop()
    assert not queue.workers.alive("w1")


def test_keeper_pauses_while_the_lease_cannot_be_renewed(queue: Queue) -> None:
    keeper = LeaseKeeper(queue, "w3", ttl_s=0.3, interval_s=0.1)
    assert keeper.acquire(Job.search(12))
    time.sleep(0.35)  # no heartbeat thread: nothing renewed it within its TTL
    assert not keeper.valid()
    began = time.monotonic()
    threading.Timer(0.3, keeper.beat).start()  # Redis answers again: the next beat renews it
    keeper.wait_valid(threading.Event())
    assert (
        0.25 < time.monotonic() - began < 5 and keeper.valid() and queue.leases.holder(Job.search(12)) == "w3"
    )


def test_reconciler_requeues_what_redis_lost(store: Store, queue: Queue, tiny_spec: Spec) -> None:
    lost_queued = store.create_search(spec=tiny_spec())
    waiting = store.create_search(spec=tiny_spec())
    queue.jobs.push(Job.search(waiting.id))
    live = store.create_search(spec=tiny_spec())
    store.mark_running(search_id=live.id, worker_id="alive")
    queue.leases.acquire(Job.search(live.id), "alive", ttl_s=30)
    orphan = store.create_search(spec=tiny_spec())
    store.mark_running(search_id=orphan.id, worker_id="gone")  # its worker and Redis's data are gone
    done = store.create_search(spec=tiny_spec())
    store.finish_search(search_id=done.id, status="succeeded")

    reconciler = Reconciler(store, queue, grace_s=0.3, owner="r1")
    assert reconciler.run_once() == []  # seen missing once: not yet
    assert Reconciler(store, queue, grace_s=0.3, owner="r2").run_once() == []  # r1 holds the lock
    time.sleep(0.35)
    assert reconciler.run_once() == [Job.search(lost_queued.id), Job.search(orphan.id)]
    assert sorted(queue.redis.lrange(queue.keys.queue, 0, -1), key=int) == [
        str(i) for i in sorted([lost_queued.id, waiting.id, orphan.id])
    ]
    time.sleep(0.35)
    assert reconciler.run_once() == []  # everything unfinished is in Redis now


def test_a_stale_fencing_token_writes_nothing(store: Store, tiny_spec: Spec) -> None:
    search = store.create_search(spec=tiny_spec())
    stale = store.mark_running(search_id=search.id, worker_id="old")
    fresh = store.mark_running(search_id=search.id, worker_id="new")
    row = {"phase": "sample", "index": 0, "tokens": [0] * 40, "hash": "0" * 16, "reward": 0.5}
    with pytest.raises(Conflict):
        store.record_epoch(
            search_id=search.id,
            epoch=0,
            metrics={},
            architectures=[row],
            checkpoint_uri="file:///old/ckpt-0.pt",
            fencing_token=stale.fencing_token,
        )
    assert (
        store.list_architectures(search_id=search.id)[0] == []
        and store.list_epochs(search_id=search.id) == []
    )
    with pytest.raises(Conflict):
        store.finish_search(search_id=search.id, status="failed", fencing_token=stale.fencing_token)
    done = store.record_epoch(
        search_id=search.id,
        epoch=0,
        metrics={},
        architectures=[row],
        checkpoint_uri="file:///new/ckpt-0.pt",
        fencing_token=fresh.fencing_token,
    )
    assert (done.epoch, done.checkpoint_uri, done.lease_owner) == (0, "file:///new/ckpt-0.pt", "new")


def _run_briefly(settings: Settings, seconds: float) -> tuple[list[int], threading.Thread]:
    """Run a worker in a thread for ``seconds``, then stop it; returns (jobs handled, thread)."""
    stop = threading.Event()
    handled: list[int] = []
    thread = threading.Thread(
        target=lambda: handled.append(run_worker(settings, worker_id="lonely", stop_event=stop, poll_s=0.1))
    )
    thread.start()
    time.sleep(seconds)
    assert thread.is_alive()  # it waits for its dependencies; it does not die
    stop.set()
    thread.join(timeout=30)
    return handled, thread


def test_worker_migrates_a_fresh_database_and_waits_out_redis(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    settings = Settings(home=tmp_path, database_url=url, redis_url="redis://127.0.0.1:1/0", retry_max_s=0.2)
    with caplog.at_level(logging.WARNING):
        handled, thread = _run_briefly(settings, 2.0)
    assert handled == [0] and not thread.is_alive()
    assert Store(url).counts_by_status()["queued"] == 0  # the schema exists: the worker migrated it
    retries = [r.getMessage() for r in caplog.records if "retry" in r.getMessage()]
    assert len(retries) >= 2 and "Connection refused" in retries[0]


def test_worker_waits_for_an_unreachable_database(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    url = "postgresql+psycopg://postgres@127.0.0.1:1/nothing"
    settings = Settings(home=tmp_path, database_url=url, redis_url="redis://127.0.0.1:1/0", retry_max_s=0.2)
    with caplog.at_level(logging.WARNING):
        handled, _ = _run_briefly(settings, 1.5)
    assert handled == [0]  # stopped while still migrating, without ever taking a job
    assert any("database migration failed" in r.getMessage() for r in caplog.records)
