"""The ENAS search loop in one process: `run_search_epoch` and `derive`.

`run_search_epoch` runs one epoch (the shared phase, then the controller phase) on a shared trainer
and a `ControllerTrainer`, and builds its rows and metrics with `enas_core.epoch.epoch_result`, as
the Ray runner (`workers.runner`) does with its actors. `derive` keeps the best distinct
architectures of the trained policy; it needs only a `PolicySampler` and a `RewardScorer`, so the
runner hands it views of its actors.

Every random draw goes through a seeded generator owned by a trainer (dropout and drop path use
torch's global RNG, which each trainer swaps for its own saved state while it runs), so a run is
deterministic on CPU for a fixed seed, and `state_dict()` -> `load_state_dict()` -> continue is
bit-identical to an uninterrupted run.
"""

from __future__ import annotations

import time
from typing import Protocol

from enas_core.controller_trainer import ControllerTrainer
from enas_core.epoch import ControllerStep, EpochResult, Sampled, epoch_result
from enas_core.image_trainer import SharedTrainerLike
from enas_core.spaces import Space


class PolicySampler(Protocol):
    """What `derive` needs from a controller: its space and a batched sampler."""

    @property
    def space(self) -> Space: ...

    def sample(self, n: int) -> list[Sampled]: ...


class RewardScorer(Protocol):
    """What `derive` needs from a shared model: each architecture's reward on one validation
    minibatch."""

    def rewards(self, tokens: list[list[int]]) -> list[float]: ...


def run_search_epoch(
    shared: SharedTrainerLike,
    controller: ControllerTrainer,
    epoch: int,
    ctrl_steps: int | None = None,
    archs_per_step: int | None = None,
) -> EpochResult:
    """One ENAS epoch (0-based `epoch`): the shared phase (steps_per_epoch architectures sampled
    in one call, one minibatch each), then the controller phase (ctrl_steps x [sample
    archs_per_step -> rewards -> update]); defaults from the controller's train config."""
    ctrl_steps = controller.tcfg.steps_per_epoch if ctrl_steps is None else ctrl_steps
    archs_per_step = controller.tcfg.archs_per_step if archs_per_step is None else archs_per_step
    start = time.perf_counter()
    drawn = controller.sample(shared.steps_per_epoch())
    train = shared.train([s.tokens for s in drawn], epoch)
    shared_seconds = time.perf_counter() - start
    steps = []
    for _ in range(ctrl_steps):
        batch = controller.sample(archs_per_step)
        rewards = shared.rewards([s.tokens for s in batch])
        steps.append(ControllerStep(batch, rewards, controller.update([s.tokens for s in batch], rewards)))
    duration = time.perf_counter() - start
    return epoch_result(epoch, drawn, [train], steps, shared_seconds=shared_seconds, duration=duration)


def derive(
    shared: RewardScorer, controller: PolicySampler, num_samples: int, top_k: int
) -> list[tuple[list[int], float]]:
    """Sample `num_samples` architectures, score each on one validation minibatch with the shared
    weights, and return the best `top_k` distinct ones (canonical form; duplicates averaged) as
    (tokens, score), best first (ties: first drawn first)."""
    drawn = controller.sample(num_samples)
    scores = shared.rewards([s.tokens for s in drawn])
    groups: dict[tuple[int, ...], tuple[list[int], list[float]]] = {}
    for s, score in zip(drawn, scores, strict=True):
        key = controller.space.canonical(s.tokens)
        groups.setdefault(key, (s.tokens, []))[1].append(score)
    ranked = [(tokens, sum(v) / len(v)) for tokens, v in groups.values()]
    ranked.sort(key=lambda item: -item[1])  # stable: first drawn wins ties
    return ranked[:top_k]
