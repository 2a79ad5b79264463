"""Placement on a real local Ray: impossible requests fail fast, busy ones wait as ``pending``.

The session's Ray node offers 2 CPUs, no GPU and one ``node_a`` (tests/workers/conftest.py).
"""

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
from workers.config import build_plan
from workers.placement import Need, pending_reason, role_needs, unplaceable_reason
from workers.retrain import retrain_task_options
from workers.runner import run_search

Spec = Callable[..., dict[str, Any]]

NODES = [{"CPU": 4.0, "GPU": 1.0}, {"CPU": 8.0, "node_a": 1.0}]


def test_feasibility_is_per_node() -> None:
    assert unplaceable_reason(Need("shared model", {"CPU": 2, "GPU": 1}), NODES) is None
    assert unplaceable_reason(Need("controller", {"CPU": 8, "node_a": 1}), NODES) is None
    assert unplaceable_reason(Need("shared model", {"GPU": 2}), NODES) == (
        "no Ray node can hold the shared model: it asks for 2 GPU, the largest any node offers is 1"
    )
    assert unplaceable_reason(Need("controller", {"CPU": 12}), NODES) == (
        "no Ray node can hold the controller: it asks for 12 CPU, the largest any node offers is 8"
    )
    # each resource exists somewhere, the cluster's sums would do, but no one node holds both
    together = unplaceable_reason(Need("retraining task", {"GPU": 1, "node_a": 1}), NODES)
    assert together is not None and together.startswith("no single Ray node can hold the retraining task")


def test_pending_reason_looks_at_the_nodes_that_fit() -> None:
    gpu = Need("shared model", {"CPU": 1, "GPU": 1})
    free = [{"CPU": 4.0, "GPU": 0.0}, {"CPU": 8.0, "node_a": 1.0}]
    assert pending_reason(gpu, NODES, free) == (
        "waiting for 1 GPU for the shared model: 0 of 1 free on the nodes that fit"
    )
    assert pending_reason(gpu, NODES, NODES) is None
    cpus = Need("controller", {"CPU": 6})  # only the second node fits; its free CPUs count
    assert pending_reason(cpus, NODES, [{"CPU": 4.0}, {"CPU": 2.0}]) == (
        "waiting for 6 CPU for the controller: 2 of 6 free on the nodes that fit"
    )


def test_roles_and_retrain_options(tiny_spec: Spec) -> None:
    spec = tiny_spec(resources={"num_gpus": 0.5, "shared": {"node_a": 0.5}, "retrain": {"node_a": 1}})
    plan = build_plan(spec)
    assert [(n.role, n.amounts) for n in role_needs(plan)] == [
        ("shared model", {"CPU": 1.0, "GPU": 0.5, "node_a": 0.5}),
        ("controller", {"CPU": 1.0}),
        ("retraining task", {"CPU": 1.0, "GPU": 0.5, "node_a": 1.0}),
    ]
    options = retrain_task_options(plan, 2)
    assert options["scheduling_strategy"] == "SPREAD" and options["max_retries"] == 2
    assert options["resources"] == {"node_a": 1.0} and options["num_gpus"] == 0.5


@pytest.mark.usefixtures("ray_session")
def test_an_impossible_request_fails_at_once(
    store: Store, queue: Queue, settings: Settings, tiny_spec: Spec
) -> None:
    search = store.create_search(spec=tiny_spec(resources={"num_gpus": 1}))
    began = time.monotonic()
    final = run_search(search.id, store=store, queue=queue, settings=settings)
    assert time.monotonic() - began < 10
    assert final.status == "failed"
    assert final.error == (
        "Unplaceable: no Ray node can hold the shared model: it asks for 1 GPU, the largest any node "
        "offers is 0 (resources in the spec; set ENAS_RAY_AUTOSCALING=1 if the cluster scales)"
    )


@ray.remote(num_cpus=0, resources={"node_a": 1})
class Holder:
    """Another search's actor, holding the node's only ``node_a``."""

    def ping(self) -> bool:
        return True


def _start_waiting(
    store: Store, queue: Queue, settings: Settings, tiny_spec: Spec, shared: str = "node_a"
) -> tuple[int, Any, threading.Thread]:
    holder: Any = Holder.remote()  # type: ignore[attr-defined]
    ray.get(holder.ping.remote())
    retrain = {"epochs": 1, "top_k": 1, "enabled": False}
    search = store.create_search(spec=tiny_spec(epochs=1, retrain=retrain, resources={"shared": {shared: 1}}))
    runner = threading.Thread(
        target=run_search, args=(search.id,), kwargs={"store": store, "queue": queue, "settings": settings}
    )
    runner.start()
    deadline = time.monotonic() + 60
    while store.get_search(search_id=search.id).status != "pending":
        assert runner.is_alive() and time.monotonic() < deadline, store.get_search(search_id=search.id)
        time.sleep(0.2)
    return search.id, holder, runner


@pytest.mark.usefixtures("ray_session")
def test_busy_resources_show_pending_then_running(
    store: Store, queue: Queue, settings: Settings, tiny_spec: Spec
) -> None:
    search_id, holder, runner = _start_waiting(store, queue, settings, tiny_spec)
    waiting = store.get_search(search_id=search_id)
    assert (
        waiting.pending_reason
        == "waiting for 1 node_a for the shared model: 0 of 1 free on the nodes that fit"
    )
    assert store.unfinished_searches()[-1].id == search_id  # the reconciler still sees it
    ray.kill(holder)
    runner.join(timeout=120)
    final = store.get_search(search_id=search_id)
    assert final.status == "succeeded", (final.error, final.error_traceback)
    assert final.pending_reason is None and final.epoch == 0


@pytest.mark.usefixtures("ray_session")
def test_a_cancelled_pending_search_stops_waiting(
    store: Store, queue: Queue, settings: Settings, tiny_spec: Spec
) -> None:
    search_id, holder, runner = _start_waiting(store, queue, settings, tiny_spec)
    assert store.request_cancel(search_id=search_id).cancel_requested
    queue.cancels.request(search_id)
    runner.join(timeout=30)
    ray.kill(holder)
    assert not runner.is_alive()
    final = store.get_search(search_id=search_id)
    assert final.status == "cancelled" and final.pending_reason is None


@pytest.mark.usefixtures("ray_session")
def test_with_autoscaling_an_impossible_request_waits(
    store: Store, queue: Queue, settings: Settings, tiny_spec: Spec, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ENAS_RAY_AUTOSCALING", "1")
    search_id, holder, runner = _start_waiting(store, queue, settings, tiny_spec, shared="node_b")
    assert store.get_search(search_id=search_id).pending_reason == (
        "waiting for the cluster to scale up: no Ray node can hold the shared model: it asks for "
        "1 node_b, the largest any node offers is 0"
    )
    store.request_cancel(search_id=search_id)
    queue.cancels.request(search_id)
    runner.join(timeout=30)
    ray.kill(holder)
    assert store.get_search(search_id=search_id).status == "cancelled"
