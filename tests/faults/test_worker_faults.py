"""Worker faults with real processes: ``kill -9`` mid-epoch, and two workers racing for one search.

SQLite under the test's ENAS_HOME and that home's embedded Redis; each worker is
``python -m service.cli worker`` with its own local Ray.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from service.queue import Job, Queue
from service.queue.connection import connect, start_embedded
from service.settings import Settings
from service.store import Store
from service.store.db import upgrade
from tests.faults.conftest import Proc, assert_complete, fault_spec, search_rows, wait_for

pytestmark = pytest.mark.faults

Spawn = Callable[..., Proc]


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "home"
    handle, _ = start_embedded(path)
    yield path
    handle.shutdown()


@pytest.fixture
def store(home: Path) -> Iterator[Store]:
    url = f"sqlite:///{home / 'enas.db'}"
    upgrade(url)
    s = Store(url)
    yield s
    s.dispose()


@pytest.fixture
def queue(home: Path) -> Iterator[Queue]:
    client = connect(Settings(home=home))
    yield Queue.on(client)
    client.close()


def test_kill9_mid_epoch_second_worker_resumes_exactly(
    spawn: Spawn, home: Path, store: Store, queue: Queue
) -> None:
    spec = fault_spec()
    victim = store.create_search(spec=spec)
    queue.jobs.push(Job.search(victim.id))
    env = {"ENAS_HOME": str(home)}
    first = spawn("worker-1", "worker", "--worker-id", "w1", env=env)
    epoch_done = lambda: store.get_search(search_id=victim.id).epoch is not None  # noqa: E731
    wait_for(epoch_done, 120, "epoch 0", procs=(first,), every=0.05)
    first.kill9()  # in the middle of the next epoch: its rows are not written
    first.stop()
    crashed = store.get_search(search_id=victim.id)
    assert (crashed.status, crashed.lease_owner) == ("running", "w1") and crashed.epoch in (0, 1)
    assert queue.jobs.processing("w1") == [Job.search(victim.id)]  # the job is still the dead worker's

    reference = store.create_search(spec=spec)  # the same search, uninterrupted, for comparison
    queue.jobs.push(Job.search(reference.id))
    second = spawn("worker-2", "worker", "--worker-id", "w2", env=env)
    both_done = lambda: all(store.get_search(search_id=i).is_terminal for i in (victim.id, reference.id))  # noqa: E731
    wait_for(both_done, 180, "the searches", procs=(second,))

    assert_complete(store, victim.id, spec)
    assert_complete(store, reference.id, spec)
    assert search_rows(store, victim.id) == search_rows(store, reference.id)  # exact resume, row by row
    final = store.get_search(search_id=victim.id)
    assert final.fencing_token == 2 and final.lease_owner is None
    assert f"resumed from {home}/artifacts/{victim.id}/ckpt-{crashed.epoch}.pt" in second.log()
    assert "reaped search(es)" in second.log() and queue.jobs.processing("w1") == []


def test_two_workers_never_run_one_search_at_once(
    spawn: Spawn, home: Path, store: Store, queue: Queue
) -> None:
    spec = fault_spec()
    search = store.create_search(spec=spec)
    job = Job.search(search.id)
    queue.jobs.push(job)
    queue.jobs.push(job)  # a duplicate (API and reconciler racing): both workers take a copy
    env = {"ENAS_HOME": str(home)}
    workers = [spawn(f"worker-{i}", "worker", "--worker-id", f"r{i}", env=env) for i in (1, 2)]
    owner = wait_for(
        lambda: store.get_search(search_id=search.id).lease_owner, 120, "a claim", procs=tuple(workers)
    )
    wait_for(
        lambda: queue.jobs.depth() == 0 and len(queue.jobs.processing(owner)) == 1, 60, "both copies taken"
    )
    running, other = (workers[0], workers[1]) if owner == "r1" else (workers[1], workers[0])
    wait_for(lambda: "dropping this copy" in other.log(), 60, "the duplicate dropped", procs=(other,))
    assert store.get_search(search_id=search.id).fencing_token == 1  # claimed once

    wait_for(lambda: store.get_search(search_id=search.id).epoch == 0, 120, "epoch 0", procs=(running,))
    os.kill(running.pid, signal.SIGSTOP)  # a long pause: its lease expires, the other takes over
    try:
        wait_for(
            lambda: store.get_search(search_id=search.id).fencing_token == 2,
            60,
            "the take-over",
            procs=(other,),
        )
    finally:
        os.kill(running.pid, signal.SIGCONT)  # it wakes up believing it still runs the search
    stale_stopped = lambda: "lease lost" in running.log() or "fenced out" in running.log()  # noqa: E731
    wait_for(stale_stopped, 60, "the stale worker to stop", procs=(running,))
    wait_for(lambda: store.get_search(search_id=search.id).is_terminal, 180, "the search", procs=(other,))

    assert_complete(store, search.id, spec)
    final = store.get_search(search_id=search.id)
    assert final.fencing_token == 2 and "taken by" in other.log()
    assert running.log().count(f"search {search.id}: taken by") == 1
    assert f"search {search.id}: succeeded" not in running.log()  # only the lease holder finished it
