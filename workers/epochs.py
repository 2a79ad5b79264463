"""The rows and metrics of one search epoch, built from what the actors returned."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

GenotypeOf = Callable[[Sequence[int]], tuple[dict[str, Any], str]]
"""``tokens -> (genotype dict, hash)`` (memoised by the runner)."""


def architecture_rows(
    genotype: GenotypeOf,
    samples: Mapping[str, list[Any]],
    train_parts: Sequence[Mapping[str, Any]],
    steps_out: Sequence[Sequence[Any]],
) -> list[dict[str, Any]]:
    """The epoch's ``architectures`` rows: phase 'train' (minibatch loss/accuracy) then phase
    'sample' (reward), each with tokens, genotype, hash, entropy and log-prob."""
    per_arch = [pa for part in train_parts for pa in part.get("per_arch", [])]
    rows = []
    for i, tokens in enumerate(samples["tokens"]):
        stats = per_arch[i] if i < len(per_arch) else {}
        rows.append(
            _row(
                genotype,
                "train",
                i,
                tokens,
                samples,
                i,
                loss=stats.get("loss"),
                accuracy=stats.get("accuracy"),
            )
        )
    index = 0
    for batch, rewards, _update in steps_out:
        for j, (tokens, reward) in enumerate(zip(batch["tokens"], rewards, strict=True)):
            rows.append(_row(genotype, "sample", index, tokens, batch, j, reward=reward))
            index += 1
    return rows


def _row(
    genotype: GenotypeOf,
    phase: str,
    index: int,
    tokens: list[int],
    batch: Mapping[str, list[Any]],
    j: int,
    **values: Any,
) -> dict[str, Any]:
    genotype_dict, digest = genotype(tokens)
    return {
        "phase": phase,
        "index": index,
        "tokens": list(tokens),
        "genotype": genotype_dict,
        "hash": digest,
        "entropy": batch["entropy"][j],
        "log_prob": batch["log_prob"][j],
        **values,
    }


def _weighted(parts: Sequence[Mapping[str, Any]], key: str) -> float | None:
    """Mean of ``key`` over training chunks, weighted by their number of steps."""
    pairs = [(len(p.get("per_arch", [])) or 1, p[key]) for p in parts if p.get(key) is not None]
    total = sum(n for n, _ in pairs)
    return sum(n * v for n, v in pairs) / total if total else None


def epoch_metrics(
    train_parts: Sequence[Mapping[str, Any]],
    steps_out: Sequence[Sequence[Any]],
    shared_seconds: float,
    duration: float,
    num_archs: int,
) -> dict[str, Any]:
    """The epoch's metrics: shared loss/accuracy (or perplexity), lr, throughput, rewards,
    baseline, entropy, controller loss, timings."""
    metrics: dict[str, Any] = {
        "shared_loss": _weighted(train_parts, "loss"),
        "lr": train_parts[-1].get("lr") if train_parts else None,
        "images_per_s": _weighted(train_parts, "images_per_s"),
    }
    for key in ("accuracy", "perplexity"):
        if any(key in p for p in train_parts):
            metrics[f"shared_{key}"] = _weighted(train_parts, key)
    rewards = [float(r) for _, rs, _ in steps_out for r in rs]
    updates = [u for _, _, u in steps_out]
    entropies = [float(e) for b, _, _ in steps_out for e in b["entropy"]]
    if rewards:
        metrics.update(
            reward_mean=sum(rewards) / len(rewards),
            reward_max=max(rewards),
            reward_min=min(rewards),
            baseline=updates[-1].get("baseline"),
            entropy=sum(entropies) / len(entropies),
            controller_loss=sum(u["loss"] for u in updates) / len(updates),
            skip_penalty=sum(u.get("skip_penalty", 0.0) for u in updates) / len(updates),
        )
    metrics.update(
        archs_per_s=num_archs / duration if duration > 0 else None,
        shared_seconds=shared_seconds,
        controller_seconds=duration - shared_seconds,
        duration_s=duration,
    )
    return metrics
