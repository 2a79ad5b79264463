"""The controller's side of the search: the LSTM policy, Adam, the EMA baseline, the sampler RNG.

`ControllerTrainer.sample(n)` draws n architectures in one batched pass (CPU: sampling is a chain
of tiny steps, faster on the host than on a GPU); `update(tokens, rewards)` is one REINFORCE step
(log-probabilities recomputed from the tokens, so samples may come from another process).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from enas_core.configs import ControllerTrainConfig
from enas_core.controller import Controller, ControllerConfig
from enas_core.epoch import Sampled
from enas_core.reinforce import EmaBaseline, reinforce_loss
from enas_core.runtime import subseed
from enas_core.spaces import Space


class ControllerTrainer:
    """The controller, its Adam optimizer (lr does not decay), the EMA baseline and the sampling
    generator (CPU). Seeds: `subseed(seed, "controller-init")` for the weights,
    `subseed(seed, "controller-sample")` for sampling."""

    def __init__(self, space: Space, ccfg: ControllerConfig, tcfg: ControllerTrainConfig, seed: int) -> None:
        self.space, self.ccfg, self.tcfg = space, ccfg, tcfg
        self.controller = Controller(
            space, ccfg, torch.Generator().manual_seed(subseed(seed, "controller-init"))
        )
        self.optimizer = torch.optim.Adam(
            self.controller.parameters(),
            lr=tcfg.lr,
            betas=(tcfg.adam_beta1, tcfg.adam_beta2),
            eps=tcfg.adam_eps,
        )
        self.baseline = EmaBaseline(tcfg.baseline_decay)
        self.generator = torch.Generator().manual_seed(subseed(seed, "controller-sample"))
        self.step = 0

    def sample(self, n: int) -> list[Sampled]:
        """n architectures from the current policy (one batched call, one host copy)."""
        batch = self.controller.sample(n, self.generator)
        rows = zip(batch.tokens.tolist(), batch.log_prob.tolist(), batch.entropy.tolist(), strict=True)
        return [Sampled(t, lp, e) for t, lp, e in rows]

    def update(self, tokens: Sequence[Sequence[int]], rewards: Sequence[float]) -> dict[str, Any]:
        """One Adam step of REINFORCE over the batch (log-probs recomputed from the tokens).

        Returns {"loss", "baseline", "entropy", "reward_mean", "skip_penalty", "advantages": [...]}.
        The same as ``apply_update(forward(tokens), rewards)``.
        """
        return self.apply_update(self.forward(tokens), rewards)

    def forward(self, tokens: Sequence[Sequence[int]]) -> Any:
        """The first half of `update`: the policy's teacher-forced pass over ``tokens`` (log-probs,
        entropies, skip penalties, with their graph). It needs no reward, so a caller may run it
        while the rewards are being computed elsewhere; draws no random numbers."""
        return self.controller.evaluate(torch.tensor([list(t) for t in tokens], dtype=torch.long))

    def apply_update(self, result: Any, rewards: Sequence[float]) -> dict[str, Any]:
        """The second half of `update`: the REINFORCE loss of `forward`'s ``result`` with
        ``rewards``, backward, one Adam step. ``result`` must come from the current weights."""
        rl = reinforce_loss(
            result.log_prob,
            result.entropy,
            result.skip_penalty,
            rewards,
            self.baseline,
            self.tcfg.entropy_weight,
            self.ccfg.skip_weight,
        )
        self.optimizer.zero_grad(set_to_none=True)
        rl.loss.backward()
        self.optimizer.step()
        self.step += 1
        return {
            "loss": rl.loss.item(),
            "baseline": self.baseline.value,
            "entropy": result.entropy.mean().item(),
            "reward_mean": sum(rewards) / max(1, len(rewards)),
            "skip_penalty": result.skip_penalty.mean().item(),
            "advantages": rl.advantages,
        }

    def state_dict(self) -> dict[str, Any]:
        """Policy, optimizer, baseline, sampler state and step (CPU tensors)."""
        return {
            "controller": self.controller.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "baseline": self.baseline.state_dict(),
            "generator": self.generator.get_state(),
            "step": self.step,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what `state_dict` saved."""
        self.controller.load_state_dict(state["controller"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.baseline.load_state_dict(state["baseline"])
        self.generator.set_state(state["generator"])
        self.step = int(state["step"])
