"""A cancel stops a search within seconds in any phase, even inside one long Ray call (issue 13
item 3): real SQLite store, embedded Redis, local Ray."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import ray

from service.api.schemas import RetrainRequest
from service.api.usecases import cancel_retrain, retrain_search
from service.auth import Caller
from service.queue import Job, Queue
from service.settings import Settings
from service.store import Store
from tests.workers.conftest import TINY_OVERRIDES
from workers.runner import run_search
from workers.worker import run_worker

pytestmark = pytest.mark.usefixtures("ray_session")

Spec = Callable[..., dict[str, Any]]


def _cpus_free() -> float:
    return float(ray.available_resources().get("CPU", 0.0))


def _wait(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_cancel_stops_a_long_controller_phase_within_seconds(
    store: Store, queue: Queue, settings: Settings, tiny_spec: Spec
) -> None:
    # one controller phase of 100,000 steps: hours of CPU in a single Ray call
    spec = tiny_spec(epochs=1, controller={"steps_per_epoch": 100_000, "archs_per_step": 2})
    search = store.create_search(spec=spec)
    total = _cpus_free()
    done: dict[str, Any] = {}
    thread = threading.Thread(
        target=lambda: done.update(
            final=run_search(search.id, store=store, queue=queue, settings=settings, worker_id="wc")
        )
    )
    thread.start()
    _wait(lambda: (queue.events.last_event(search.id) or {}).get("phase") == "controller", 90, "the phase")
    time.sleep(1)  # well inside the one Ray call of the controller phase
    assert thread.is_alive() and store.list_epochs(search_id=search.id) == []

    began = time.monotonic()
    store.request_cancel(search_id=search.id)
    queue.cancels.request(search.id)  # as the API does for a running search
    thread.join(timeout=30)
    _wait(lambda: _cpus_free() == total, 30, "the actors' CPUs to come back")
    to_idle = time.monotonic() - began

    assert not thread.is_alive()
    assert done["final"].status == "cancelled" and done["final"].error is None
    assert to_idle < 10, f"cancel to idle took {to_idle:.1f}s"
    print(f"cancel to idle: {to_idle:.2f}s")


def test_cancel_stops_a_running_retrain_job_within_seconds(
    store: Store, queue: Queue, settings: Settings, tiny_spec: Spec
) -> None:
    spec = tiny_spec(epochs=1, retrain={**TINY_OVERRIDES["retrain"], "enabled": False})
    search = store.create_search(spec=spec)
    queue.jobs.push(Job.search(search.id))
    assert run_worker(settings, burst=True, worker_id="wr1", queue_prefix=queue.prefix) == 1
    (row,) = retrain_search(
        store=store,
        queue=queue,
        search_id=search.id,
        request=RetrainRequest(epochs=10_000),  # hours of CPU
        caller=Caller(),
    )
    total = _cpus_free()
    worker = threading.Thread(
        target=run_worker,
        args=(settings,),
        kwargs={"burst": True, "worker_id": "wr2", "queue_prefix": queue.prefix},
    )
    worker.start()
    _wait(lambda: store.get_retrain(retrain_id=row.id).status == "running", 60, "the retrain to start")
    _wait(lambda: _cpus_free() < total, 60, "its Ray task")

    began = time.monotonic()
    answer = cancel_retrain(store=store, queue=queue, retrain_id=row.id, caller=Caller())
    assert answer.status == "running"  # the worker stops it
    _wait(lambda: store.get_retrain(retrain_id=row.id).status == "cancelled", 30, "the row cancelled")
    _wait(lambda: _cpus_free() == total, 30, "the task's CPU to come back")
    to_idle = time.monotonic() - began
    worker.join(timeout=30)

    assert not worker.is_alive() and queue.jobs.depth() == 0
    assert to_idle < 10, f"cancel to idle took {to_idle:.1f}s"
    print(f"retrain cancel to idle: {to_idle:.2f}s")

    # a queued one is cancelled at once and its job skipped
    (again,) = retrain_search(
        store=store,
        queue=queue,
        search_id=search.id,
        request=RetrainRequest(),
        caller=Caller(),
    )
    assert again.id != row.id and again.status == "queued"
    cancelled = cancel_retrain(store=store, queue=queue, retrain_id=again.id, caller=Caller())
    assert cancelled.status == "cancelled"
    assert run_worker(settings, burst=True, worker_id="wr3", queue_prefix=queue.prefix) == 1
    assert store.get_retrain(retrain_id=again.id).status == "cancelled"
