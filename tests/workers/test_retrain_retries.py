"""Retraining tasks are retried by Ray (bounded) and every failed attempt shows on the retrain row."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import ray

from enas_core.genotype import Genotype
from service.store import Store
from workers.config import build_plan
from workers.retrain import retrain_derived

pytestmark = pytest.mark.usefixtures("ray_session")

Spec = Callable[..., dict[str, Any]]
RETRAIN = {"epochs": 1, "top_k": 1, "num_layers": 1, "channels": 4, "batch_size": 16, "steps_per_epoch": 2}


def _derived(store: Store, spec: dict[str, Any]) -> list[Any]:
    """A running search with one derived architecture (all tokens 0: valid in every micro space)."""
    search = store.create_search(spec=spec)
    store.mark_running(search_id=search.id)
    space = build_plan(spec).space()
    g = Genotype.of(space, [0] * space.num_tokens)
    item = {"tokens": list(g.tokens), "hash": g.hash(), "genotype": g.to_dict(), "score": 0.5}
    return store.record_derived(search_id=search.id, items=[item], epoch=0)


def test_a_task_whose_process_dies_is_retried_and_the_death_recorded(
    store: Store, tiny_spec: Spec, tmp_path: Path
) -> None:
    spec = tiny_spec(retrain=RETRAIN)
    derived = _derived(store, spec)
    marker = str(tmp_path / "died-once")

    def dies_once(**kwargs: Any) -> dict[str, Any]:
        import os

        from workers.retrain import retrain_architecture, running_node

        if not os.path.exists(marker):
            open(marker, "w").close()
            store_ = Store(kwargs["store_url"])
            store_.update_retrain(
                retrain_id=kwargs["retrain_id"], status="running", metrics={"attempts": 1, **running_node()}
            )
            os._exit(1)  # the worker process dies in the middle of the attempt
        return retrain_architecture(**kwargs)

    plan = build_plan(spec, data_root=tmp_path / "data")
    [result] = retrain_derived(
        store, derived[0].search_id, plan, derived, lambda: None, max_retries=1, task=ray.remote(dies_once)
    )

    row = store.get_retrain(retrain_id=result["retrain_id"])
    assert result["status"] == row.status == "succeeded" and row.test_score is not None, row.error
    assert row.metrics is not None and row.metrics["attempts"] == 2
    node = ray.get_runtime_context().get_node_id()
    [failure] = row.metrics["failures"]
    assert failure["attempt"] == 1 and failure["node"] == node
    assert failure["error"].startswith("the task's process or its node died on node ")
    assert row.metrics["node"] == node and row.metrics["node_ip"]  # where it finally ran
    again = retrain_derived(store, derived[0].search_id, plan, derived, lambda: None)  # idempotent
    assert again == [result] and len(store.list_retrains(search_id=derived[0].search_id)) == 1


def test_a_failing_task_is_retried_a_bounded_number_of_times(
    store: Store, tiny_spec: Spec, tmp_path: Path
) -> None:
    missing = tmp_path / "no-cifar-here"
    spec = tiny_spec(dataset="cifar10", data_dir=str(missing), retrain=RETRAIN)
    derived = _derived(store, spec)
    plan = build_plan(spec, data_root=tmp_path / "data")

    [result] = retrain_derived(store, derived[0].search_id, plan, derived, lambda: None, max_retries=2)

    row = store.get_retrain(retrain_id=result["retrain_id"])
    assert result["status"] == row.status == "failed"
    assert row.error and "no-cifar-here" in row.error
    assert row.metrics is not None and row.metrics["attempts"] == 3  # the first try and 2 retries
    assert [f["attempt"] for f in row.metrics["failures"]] == [1, 2, 3]
    assert all("no-cifar-here" in f["error"] for f in row.metrics["failures"])
