"""The actors run exactly the in-process loop: one epoch through `shared_phase` and the one-call
`controller_phase` samples, trains and rewards the same architectures as
`enas_core.search.run_search_epoch` from the same seed (and `enas_core.epoch.epoch_result` builds
the same rows and metrics from either)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import ray
import torch

from enas_core.controller_trainer import ControllerTrainer
from enas_core.epoch import METRICS, epoch_result
from enas_core.registry import make_shared_trainer
from enas_core.search import run_search_epoch
from service.queue import Queue
from service.settings import Settings
from service.store import Store
from workers.actors import create_actors, kill_actors, samples_of
from workers.config import build_plan
from workers.runner import controller_phase, shared_phase
from workers.search_run import claim_search

pytestmark = pytest.mark.usefixtures("ray_session")


@pytest.fixture
def one_thread() -> Iterator[None]:
    """The actors run torch on one thread (Ray's OMP_NUM_THREADS=1): the same float sums here."""
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


@pytest.mark.usefixtures("one_thread")
def test_an_epoch_on_the_actors_equals_the_in_process_epoch(
    tiny_spec: Callable[..., dict[str, Any]], store: Store, queue: Queue, settings: Settings
) -> None:
    spec = tiny_spec(controller={"steps_per_epoch": 3, "archs_per_step": 4})
    plan = build_plan(spec)
    controller = ControllerTrainer(plan.space(), plan.controller, plan.controller_train, plan.seed)
    shared = make_shared_trainer(plan.space(), plan.child, plan.dataset.load(), plan.seed, "cpu")
    local = run_search_epoch(shared, controller, 0)

    actors = create_actors(plan, 0)
    try:
        search = store.create_search(spec=spec)
        claim = claim_search(store, queue, settings, search.id)
        train_batch, parts = shared_phase(claim, *actors, 0, shared.steps_per_epoch())
        steps = controller_phase(claim, *actors, plan.controller_train)
        sampled: Any = ray.get(train_batch)
    finally:
        kill_actors(*actors)

    assert sampled["tokens"] == [list(a.tokens) for a in local.architectures if a.phase == "train"]
    assert len(steps) == 3 and all(len(step.samples) == 4 for step in steps)
    remote = [(s.tokens, r) for step in steps for s, r in zip(step.samples, step.rewards, strict=True)]
    expected = [(list(a.tokens), a.reward) for a in local.architectures if a.phase == "sample"]
    assert [t for t, _ in remote] == [t for t, _ in expected]
    assert [r for _, r in remote] == pytest.approx([r for _, r in expected], abs=1e-6)
    assert steps[-1].update["baseline"] == pytest.approx(local.metrics["baseline"], abs=1e-6)

    rebuilt = epoch_result(0, samples_of(sampled), parts, steps, shared_seconds=1.0, duration=2.0)
    assert [(a.phase, a.index, a.tokens, a.step) for a in rebuilt.architectures] == [
        (a.phase, a.index, a.tokens, a.step) for a in local.architectures
    ]
    assert set(rebuilt.metrics) == set(local.metrics) <= set(METRICS)
    assert rebuilt.metrics["entropy"] == pytest.approx(local.metrics["entropy"], abs=1e-6)
