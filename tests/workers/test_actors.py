"""The actors run exactly the in-process loop: one epoch through `shared_phase` and the one-call
`controller_phase` samples, trains and rewards the same architectures as
`enas_core.search.run_search_epoch` from the same seed."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import ray
import torch

from enas_core.search import ControllerTrainer, make_shared_trainer, run_search_epoch
from workers.actors import create_actors, kill_actors
from workers.config import build_plan
from workers.runner import SearchRun, controller_phase, shared_phase

pytestmark = pytest.mark.usefixtures("ray_session")


class NeverCancelled:
    def __init__(self) -> None:
        self.cancels = self

    def requested(self, search_id: int) -> bool:
        return False


@pytest.fixture
def one_thread() -> Iterator[None]:
    """The actors run torch on one thread (Ray's OMP_NUM_THREADS=1): the same float sums here."""
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


@pytest.mark.usefixtures("one_thread")
def test_an_epoch_on_the_actors_equals_the_in_process_epoch(tiny_spec: Callable[..., dict[str, Any]]) -> None:
    plan = build_plan(tiny_spec(controller={"steps_per_epoch": 3, "archs_per_step": 4}))
    controller = ControllerTrainer(plan.space(), plan.controller, plan.controller_train, plan.seed)
    shared = make_shared_trainer(plan.space(), plan.child, plan.dataset.load(), plan.seed, "cpu")
    local = run_search_epoch(shared, controller, 0)

    actors = create_actors(plan, 0)
    try:
        run = SearchRun(0, None, NeverCancelled(), plan, plan.space(), 0, threading.Event())  # type: ignore[arg-type]
        train_batch, _parts = shared_phase(run, *actors, 0, shared.steps_per_epoch())
        steps = controller_phase(run, *actors)
        sampled: Any = ray.get(train_batch)
    finally:
        kill_actors(*actors)

    assert sampled["tokens"] == [list(a.tokens) for a in local.architectures if a.phase == "train"]
    assert len(steps) == 3 and all(len(batch["tokens"]) == 4 for batch, _, _ in steps)
    remote = [(t, r) for batch, rewards, _ in steps for t, r in zip(batch["tokens"], rewards, strict=True)]
    expected = [(list(a.tokens), a.reward) for a in local.architectures if a.phase == "sample"]
    assert [t for t, _ in remote] == [t for t, _ in expected]
    assert [r for _, r in remote] == pytest.approx([r for _, r in expected], abs=1e-6)
    assert steps[-1][2]["baseline"] == pytest.approx(local.metrics["baseline"], abs=1e-6)
