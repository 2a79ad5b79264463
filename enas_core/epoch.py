"""One search epoch as data: what was sampled, trained and rewarded, and the epoch's metrics.

`epoch_result` is the one definition of an epoch's architecture rows and its metrics
(`EpochMetrics`). The in-process loop (`enas_core.search.run_search_epoch`) and the Ray runner
(`workers.runner`) both hand it what their two phases produced, so the stored rows, the API, the
page, ``/metrics`` and TensorBoard read one set of names. Standard library only: the API imports it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, TypedDict


class EpochMetrics(TypedDict, total=False):
    """The metrics of one epoch: the one set of names that the stored ``epochs`` rows, the API, the
    page, ``/metrics`` and TensorBoard use. A value the epoch has none for is None or left out."""

    # the shared phase (accuracy for image spaces, perplexity and tokens/s for rnn)
    shared_loss: float | None
    shared_accuracy: float | None
    shared_perplexity: float | None
    lr: float | None
    images_per_s: float | None
    tokens_per_s: float | None
    # the controller phase (present when it sampled anything)
    reward_mean: float
    reward_max: float
    reward_min: float
    baseline: float | None
    entropy: float
    controller_loss: float
    skip_penalty: float
    # wall-clock figures: they differ between two runs of the same seed
    archs_per_s: float | None
    shared_seconds: float
    controller_seconds: float
    duration_s: float


METRICS: tuple[str, ...] = tuple(EpochMetrics.__annotations__)
"""Every epoch metric name, in the order of `EpochMetrics`."""
TIMING_METRICS = (
    "images_per_s",
    "tokens_per_s",
    "archs_per_s",
    "shared_seconds",
    "controller_seconds",
    "duration_s",
)
"""The metrics that measure speed, not learning."""


@dataclass(frozen=True)
class Sampled:
    """One architecture drawn from the controller's policy, plain Python."""

    tokens: list[int]
    log_prob: float
    entropy: float


@dataclass(frozen=True)
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

    def row(self) -> dict[str, Any]:
        """The architecture as a plain dict (the store's row fields, without genotype and hash)."""
        return asdict(self)


@dataclass(frozen=True)
class ControllerStep:
    """One step of the controller phase: the sampled batch, its rewards (in order) and what
    `ControllerTrainer.update` returned (``loss``, ``baseline``, ``skip_penalty``, ...)."""

    samples: list[Sampled]
    rewards: list[float]
    update: Mapping[str, Any]


@dataclass
class EpochResult:
    """An epoch's architectures (phase "train" first, then "sample") and its metrics."""

    epoch: int
    metrics: EpochMetrics
    architectures: list[SampledArchitecture] = field(default_factory=list)


def epoch_result(
    epoch: int,
    trained: Sequence[Sampled],
    train_parts: Sequence[Mapping[str, Any]],
    steps: Sequence[ControllerStep],
    *,
    shared_seconds: float,
    duration: float,
) -> EpochResult:
    """The rows and metrics of one epoch.

    Args:
        epoch: 0-based.
        trained: the architectures of the shared phase, one per minibatch, in order.
        train_parts: what the shared trainer's ``train`` returned, one dict per call over
            consecutive slices of ``trained`` (``per_arch``, ``loss``, ``accuracy`` or
            ``perplexity``, ``lr``, ``images_per_s`` or ``tokens_per_s``).
        steps: the controller phase, step by step.
        shared_seconds, duration: wall-clock seconds of the shared phase and of the whole epoch.
    Returns:
        The architectures and the metrics named in `METRICS` (a metric the epoch has no value for
        is None or left out).
    """
    per_arch = [pa for part in train_parts for pa in part.get("per_arch", [])]
    archs = []
    for i, s in enumerate(trained):
        stats = per_arch[i] if i < len(per_arch) else {}
        archs.append(
            SampledArchitecture(
                "train",
                i,
                list(s.tokens),
                s.log_prob,
                s.entropy,
                loss=stats.get("loss"),
                accuracy=stats.get("accuracy"),
            )
        )
    for number, step in enumerate(steps):
        for s, reward in zip(step.samples, step.rewards, strict=True):
            index = len(archs) - len(trained)
            archs.append(
                SampledArchitecture(
                    "sample", index, list(s.tokens), s.log_prob, s.entropy, reward=reward, step=number
                )
            )
    metrics: EpochMetrics = {
        **shared_metrics(train_parts),
        **controller_metrics(steps),
        "archs_per_s": len(archs) / duration if duration > 0 else None,
        "shared_seconds": shared_seconds,
        "controller_seconds": duration - shared_seconds,
        "duration_s": duration,
    }
    return EpochResult(epoch, metrics, archs)


def _weighted(parts: Sequence[Mapping[str, Any]], key: str) -> float | None:
    """Mean of ``key`` over training calls, weighted by their number of architectures."""
    pairs = [(len(p.get("per_arch", [])) or 1, p[key]) for p in parts if p.get(key) is not None]
    total = sum(n for n, _ in pairs)
    return sum(n * v for n, v in pairs) / total if total else None


def _reported(parts: Sequence[Mapping[str, Any]], key: str) -> bool:
    return any(key in p for p in parts)


def shared_metrics(train_parts: Sequence[Mapping[str, Any]]) -> EpochMetrics:
    """``shared_loss``, ``shared_accuracy`` or ``shared_perplexity``, ``lr`` (the last call's) and
    the throughput the trainer reports (``images_per_s`` or ``tokens_per_s``)."""
    metrics: EpochMetrics = {
        "shared_loss": _weighted(train_parts, "loss"),
        "lr": train_parts[-1].get("lr") if train_parts else None,
    }
    if _reported(train_parts, "accuracy"):
        metrics["shared_accuracy"] = _weighted(train_parts, "accuracy")
    if _reported(train_parts, "perplexity"):
        metrics["shared_perplexity"] = _weighted(train_parts, "perplexity")
    if _reported(train_parts, "images_per_s"):
        metrics["images_per_s"] = _weighted(train_parts, "images_per_s")
    if _reported(train_parts, "tokens_per_s"):
        metrics["tokens_per_s"] = _weighted(train_parts, "tokens_per_s")
    return metrics


def controller_metrics(steps: Sequence[ControllerStep]) -> EpochMetrics:
    """Rewards (mean, max, min), the baseline after the last step, the mean entropy of the
    sampled architectures, the mean controller loss and skip penalty; empty without rewards."""
    rewards = [float(r) for step in steps for r in step.rewards]
    if not rewards:
        return {}
    updates = [step.update for step in steps]
    entropies = [float(s.entropy) for step in steps for s in step.samples]
    return {
        "reward_mean": sum(rewards) / len(rewards),
        "reward_max": max(rewards),
        "reward_min": min(rewards),
        "baseline": updates[-1].get("baseline"),
        "entropy": sum(entropies) / len(entropies),
        "controller_loss": sum(u["loss"] for u in updates) / len(updates),
        "skip_penalty": sum(u.get("skip_penalty", 0.0) for u in updates) / len(updates),
    }
