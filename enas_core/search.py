"""The ENAS search loop as plain objects, and the public face of the core's training side.

`run_search_epoch` (one epoch: the shared phase, then the controller phase) and `derive` (the best
distinct architectures of the trained policy) are defined here; the pieces they drive live in
smaller modules and are re-exported under their usual names:

* `enas_core.configs`: `ChildConfig`, `ControllerTrainConfig`, `RetrainConfig`;
* `enas_core.controller_trainer`: `ControllerTrainer`, `Sampled`;
* `enas_core.image_trainer`: `SharedTrainer` (micro, macro), `SharedTrainerLike`;
* `enas_core.retrain`: `retrain`, `retrain_image`, `evaluate_accuracy`;
* `enas_core.registry`: `SHARED_IMAGE_MODELS`, `FINAL_IMAGE_MODELS`, `SHARED_TRAINERS`,
  `RETRAINERS`, `register_shared_trainer`, `register_retrainer`, `make_shared_trainer`;
* `enas_core.runtime`: `sgdr_lr`, `subseed`, `resolve_device`, `PrivateRng`.

Every random draw goes through a seeded generator owned by a trainer (dropout and drop path use
torch's global RNG, which each trainer swaps for its own saved state while it runs), so a run is
deterministic on CPU for a fixed seed, and `state_dict()` -> `load_state_dict()` -> continue is
bit-identical to an uninterrupted run. The language-model task ("rnn") lives in `enas_core.lm`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from enas_core.configs import ChildConfig, ControllerTrainConfig, RetrainConfig
from enas_core.controller_trainer import ControllerTrainer, Sampled
from enas_core.image_trainer import SharedTrainer, SharedTrainerLike
from enas_core.registry import (
    FINAL_IMAGE_MODELS,
    RETRAINERS,
    SHARED_IMAGE_MODELS,
    SHARED_TRAINERS,
    make_shared_trainer,
    register_retrainer,
    register_shared_trainer,
)
from enas_core.retrain import evaluate_accuracy, retrain, retrain_image
from enas_core.runtime import PrivateRng, resolve_device, sgdr_lr, subseed

__all__ = [
    "FINAL_IMAGE_MODELS",
    "RETRAINERS",
    "SHARED_IMAGE_MODELS",
    "SHARED_TRAINERS",
    "ChildConfig",
    "ControllerTrainConfig",
    "ControllerTrainer",
    "EpochResult",
    "PrivateRng",
    "RetrainConfig",
    "Sampled",
    "SampledArchitecture",
    "SharedTrainer",
    "SharedTrainerLike",
    "derive",
    "evaluate_accuracy",
    "make_shared_trainer",
    "register_retrainer",
    "register_shared_trainer",
    "resolve_device",
    "retrain",
    "retrain_image",
    "run_search_epoch",
    "sgdr_lr",
    "subseed",
]


# --- one epoch, derivation ----------------------------------------------------------------------
@dataclass
class SampledArchitecture:
    """One architecture of an epoch. phase "train": trained on one minibatch (loss, accuracy);
    phase "sample": scored for the controller (reward, controller step). index: 0.. per phase."""

    phase: str
    index: int
    tokens: list[int]
    log_prob: float
    entropy: float
    reward: float | None = None
    loss: float | None = None
    accuracy: float | None = None
    step: int | None = None


@dataclass
class EpochResult:
    epoch: int
    metrics: dict[str, float]
    architectures: list[SampledArchitecture] = field(default_factory=list)


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
    archs = [
        SampledArchitecture(
            "train", i, s.tokens, s.log_prob, s.entropy, loss=pa.get("loss"), accuracy=pa.get("accuracy")
        )
        for i, (s, pa) in enumerate(zip(drawn, train["per_arch"], strict=True))
    ]
    shared_seconds = time.perf_counter() - start
    rewards: list[float] = []
    updates: list[dict[str, Any]] = []
    for step in range(ctrl_steps):
        batch = controller.sample(archs_per_step)
        got = shared.rewards([s.tokens for s in batch])
        updates.append(controller.update([s.tokens for s in batch], got))
        for s, r in zip(batch, got, strict=True):
            archs.append(
                SampledArchitecture(
                    "sample", len(rewards), s.tokens, s.log_prob, s.entropy, reward=r, step=step
                )
            )
            rewards.append(r)
    metrics: dict[str, float] = {"epoch": float(epoch)}
    metrics.update({f"train_{k}": float(v) for k, v in train.items() if isinstance(v, int | float)})
    sampled = [a for a in archs if a.phase == "sample"]
    if rewards:
        metrics.update(
            reward_mean=sum(rewards) / len(rewards),
            reward_max=max(rewards),
            reward_min=min(rewards),
            baseline=updates[-1]["baseline"],
            controller_loss=sum(u["loss"] for u in updates) / len(updates),
            entropy_mean=sum(a.entropy for a in sampled) / len(sampled),
            skip_penalty=sum(u["skip_penalty"] for u in updates) / len(updates),
        )
    metrics.update(
        shared_seconds=shared_seconds, controller_seconds=time.perf_counter() - start - shared_seconds
    )
    return EpochResult(epoch, metrics, archs)


def derive(
    shared: SharedTrainerLike, controller: ControllerTrainer, num_samples: int, top_k: int
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
