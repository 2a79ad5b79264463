"""REINFORCE: E's sample-by-sample EMA baseline, the loss, and learning a toy reward."""

from __future__ import annotations

import pytest
import torch

from enas_core.configs import ControllerTrainConfig
from enas_core.controller import ControllerConfig
from enas_core.controller_trainer import ControllerTrainer
from enas_core.reinforce import EmaBaseline, reinforce_loss
from enas_core.spaces import get_space


def test_baseline_updates_sample_by_sample() -> None:
    b = EmaBaseline(decay=0.9)
    adv = [b.update(r) for r in (1.0, 0.0)]
    assert b.value == pytest.approx(0.1 * 0.9)  # 0.1 after the first reward, then 0.9 * 0.1
    assert adv == pytest.approx([1.0 - 0.1, 0.0 - 0.09])


def test_loss_uses_updated_baseline_entropy_bonus_and_skip_penalty() -> None:
    log_prob = torch.tensor([-1.0, -2.0], requires_grad=True)
    entropy = torch.tensor([10.0, 20.0])
    skip = torch.tensor([0.5, 1.5])
    baseline = EmaBaseline(decay=0.5)
    out = reinforce_loss(log_prob, entropy, skip, [1.0, 0.0], baseline, entropy_weight=0.1, skip_weight=2.0)
    assert out.rewards == pytest.approx([2.0, 2.0])
    assert out.advantages == pytest.approx([1.0, 0.5])  # b: 0 -> 1.0 -> 1.5
    expected = -(-1.0 * 1.0 + -2.0 * 0.5) / 2 + 2.0 * 1.0
    assert out.loss.item() == pytest.approx(expected)
    out.loss.backward()
    assert log_prob.grad is not None


@pytest.mark.parametrize(
    "name,params,config,position",
    [
        ("micro", {"num_nodes": 2}, ControllerConfig(op_bias=False, op_tanh_reduce=1.0), 1),
        ("macro", {"num_layers": 3}, ControllerConfig(tanh_constant=1.5), 0),
    ],
)
def test_toy_reward_is_learned(
    name: str, params: dict[str, int], config: ControllerConfig, position: int
) -> None:
    """Reward 1 when the first op decision is 3, else 0: 50 updates raise P(op = 3) clearly.

    (With E's micro op shaping, 0.44 * tanh(z + [10, 10, 0, 0, 0]) + fixed bias, P(op = 3) in the
    normal cell cannot exceed about 0.2: see test_default_micro_op_shaping_caps_non_sep_ops.)
    """
    trainer = ControllerTrainer(
        get_space(name, **params), config, ControllerTrainConfig(entropy_weight=0.0), seed=0
    )
    probe = trainer.controller.sample(64, torch.Generator().manual_seed(9)).tokens

    def p_op3() -> float:
        return trainer.controller.decision_probs(probe)[position][:, 3].mean().item()

    before = p_op3()
    for _ in range(50):
        batch = trainer.sample(10)
        trainer.update([s.tokens for s in batch], [1.0 if s.tokens[position] == 3 else 0.0 for s in batch])
    assert before < 0.25
    assert p_op3() > before + 0.3


def test_default_micro_op_shaping_caps_non_sep_ops() -> None:
    """E's trainable bias starts at 10 inside the tanh: the sep-conv logits are saturated at
    0.44 + 0.25, so a non-sep op can reach at most e^0.19 / (2 e^0.69 + e^0.19 + 2 e^-0.69)."""
    trainer = ControllerTrainer(
        get_space("micro", num_nodes=2), ControllerConfig(), ControllerTrainConfig(), seed=0
    )
    probe = trainer.controller.sample(64, torch.Generator().manual_seed(9)).tokens
    for _ in range(20):
        batch = trainer.sample(10)
        trainer.update([s.tokens for s in batch], [1.0 if s.tokens[1] == 3 else 0.0 for s in batch])
    assert trainer.controller.decision_probs(probe)[1][:, 3].mean().item() < 0.2
