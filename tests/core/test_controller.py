"""The controller: E's parameter counts, valid samples, evaluate == sample, initial policy."""

from __future__ import annotations

import pytest
import torch

from enas_core.controller import Controller, ControllerConfig
from enas_core.spaces import get_space, list_spaces

CONFIGS = {
    "micro": ({}, ControllerConfig()),
    "macro": ({"num_layers": 12}, ControllerConfig(tanh_constant=1.5)),
    "rnn": ({}, ControllerConfig(hidden=100, tanh_constant=2.5, temperature=5.0)),
}


def _controller(name: str, seed: int = 0) -> Controller:
    params, cfg = CONFIGS.get(name, ({}, ControllerConfig()))
    return Controller(get_space(name, **params), cfg, torch.Generator().manual_seed(seed))


def test_parameter_counts_match_e() -> None:
    counts = {name: sum(p.numel() for p in _controller(name).parameters()) for name in CONFIGS}
    assert counts == {"micro": 41_733, "macro": 41_856, "rnn": 101_000}


@pytest.mark.parametrize("name", list_spaces())
def test_samples_validate_and_evaluate_reproduces_log_prob(name: str) -> None:
    controller = _controller(name)
    batch = controller.sample(16, torch.Generator().manual_seed(3))
    assert batch.tokens.shape == (16, controller.space.num_tokens)
    for row in batch.tokens.tolist():
        controller.space.validate(row)
    result = controller.evaluate(batch.tokens)
    assert result.log_prob.requires_grad
    torch.testing.assert_close(result.log_prob, batch.log_prob, rtol=0, atol=1e-5)
    torch.testing.assert_close(result.entropy, batch.entropy, rtol=0, atol=1e-5)
    torch.testing.assert_close(result.skip_penalty, batch.skip_penalty, rtol=0, atol=1e-5)
    assert bool((batch.log_prob < 0).all()) and bool((batch.entropy > 0).all())
    if any(d.kind == "skip" for d in controller.space.decisions):  # the macro space
        assert bool((batch.skip_penalty > 0).all())
    else:
        assert bool((batch.skip_penalty == 0).all())


def test_sampling_is_seeded_and_batched() -> None:
    controller = _controller("micro")
    a = controller.sample(8, torch.Generator().manual_seed(5)).tokens
    b = controller.sample(8, torch.Generator().manual_seed(5)).tokens
    assert torch.equal(a, b)
    assert len({tuple(r) for r in a.tolist()}) > 1


def test_initial_micro_op_probabilities() -> None:
    controller = _controller("micro")
    tokens = controller.sample(32, torch.Generator().manual_seed(0)).tokens
    probs = controller.decision_probs(tokens)
    normal_op, reduce_op = probs[1].mean(0), probs[21].mean(0)  # node 0 first op of each cell
    assert normal_op[:2].tolist() == pytest.approx([0.315, 0.315], abs=0.005)
    assert reduce_op[:2].tolist() == pytest.approx([0.254, 0.254], abs=0.005)
    assert probs[0].shape == (32, 2)  # node 0 chooses among the two cell inputs


def test_initial_macro_skip_probability_is_half() -> None:
    controller = _controller("macro")
    tokens = controller.sample(32, torch.Generator().manual_seed(0)).tokens
    skip = controller.decision_probs(tokens)[2]  # layer 1's skip from layer 0
    assert skip.mean(0)[1].item() == pytest.approx(0.5, abs=0.02)


def test_evaluate_rejects_bad_tokens() -> None:
    controller = _controller("micro")
    with pytest.raises(ValueError, match="tokens must be"):
        controller.evaluate(torch.zeros(2, 3, dtype=torch.long))
    bad = torch.zeros(1, 40, dtype=torch.long)
    bad[0, 0] = 2  # node 0 has inputs 0..1
    with pytest.raises(ValueError, match="out of its decision's range"):
        controller.evaluate(bad)
