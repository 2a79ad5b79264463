"""REINFORCE with an exponential-moving-average baseline, as in E.

For each sample i in order: r_i <- reward_i + entropy_weight * entropy_i (no grad);
b <- b - (1 - decay) * (b - r_i); advantage_i = r_i - b (the UPDATED baseline).
loss = mean_i(-log_prob_i * advantage_i) + skip_weight * mean_i(skip_penalty_i).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class EmaBaseline:
    """b <- b - (1 - decay) * (b - r), starting at `value` (0)."""

    decay: float = 0.99
    value: float = 0.0

    def update(self, reward: float) -> float:
        """Fold in one reward; return its advantage against the updated baseline."""
        self.value -= (1.0 - self.decay) * (self.value - reward)
        return reward - self.value

    def state_dict(self) -> dict[str, float]:
        return {"decay": self.decay, "value": self.value}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.decay, self.value = float(state["decay"]), float(state["value"])


@dataclass
class ReinforceResult:
    """loss (scalar, with grad), and per sample the shaped rewards and advantages (plain floats)."""

    loss: Tensor
    rewards: list[float]
    advantages: list[float]


def reinforce_loss(
    log_prob: Tensor,
    entropy: Tensor,
    skip_penalty: Tensor,
    rewards: Sequence[float],
    baseline: EmaBaseline,
    entropy_weight: float = 0.0,
    skip_weight: float = 0.0,
) -> ReinforceResult:
    """The controller loss of one batch; updates `baseline` sample by sample.

    Args:
        log_prob, entropy, skip_penalty: (n,) from `Controller.evaluate` (entropy is detached here).
        rewards: n raw rewards (e.g. validation accuracy).
    """
    n = log_prob.shape[0]
    if len(rewards) != n:
        raise ValueError(f"{len(rewards)} rewards for {n} architectures")
    bonus = (entropy_weight * entropy.detach()).tolist() if entropy_weight else [0.0] * n
    shaped = [float(r) + b for r, b in zip(rewards, bonus, strict=True)]
    advantages = [baseline.update(r) for r in shaped]
    adv = torch.tensor(advantages, dtype=log_prob.dtype, device=log_prob.device)  # (n,)
    loss = -(log_prob * adv).mean()
    if skip_weight:
        loss = loss + skip_weight * skip_penalty.mean()
    return ReinforceResult(loss, shaped, advantages)
