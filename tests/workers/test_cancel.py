"""A cancel stops a search within seconds in any phase, even inside one long Ray call (issue 13
item 3): real SQLite store, embedded Redis, local Ray."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import ray

from service.queue import Queue
from service.settings import Settings
from service.store import Store
from workers.runner import run_search

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
