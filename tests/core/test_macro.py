"""Macro CNN space models: shapes, path-only execution, every op in the final child, from_shared."""

from __future__ import annotations

import random

import pytest
import torch

from enas_core.spaces import GenotypeError
from enas_core.zoo.macro.child import MacroChild, reduction_layers
from enas_core.zoo.macro.shared import SearchMacroChild, SharedMacroNet
from enas_core.zoo.macro.space import MacroSpace, num_macro_tokens, parse_macro_tokens

torch.set_num_threads(1)

L, C = 6, 8  # reductions after layers 1 and 3


def random_tokens(num_layers: int, seed: int, op: int | None = None) -> list[int]:
    rng = random.Random(seed)
    tokens: list[int] = []
    for i in range(num_layers):
        tokens.append(rng.randrange(6) if op is None else op)
        tokens.extend(rng.randrange(2) for _ in range(i))
    return tokens


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(0))  # (B, 3, H, W)


def test_token_layout_matches_the_space() -> None:
    assert num_macro_tokens(12) == MacroSpace(num_layers=12).num_tokens == 78
    assert num_macro_tokens(24) == 300
    assert reduction_layers(12) == (3, 7)
    assert reduction_layers(6) == (1, 3)
    assert reduction_layers(2) == ()
    layers = parse_macro_tokens([5, 2, 1, 4, 0, 1], 3)
    assert [(layer.op, layer.skips) for layer in layers] == [(5, ()), (2, (1,)), (4, (0, 1))]


@pytest.mark.parametrize(
    ("tokens", "position"),
    [([0, 6, 1, 0, 0, 0], 1), ([0, 1, 2, 0, 0, 0], 2), ([0, 1, 1, 0, 0, -1], 5)],
)
def test_invalid_tokens_name_the_position(tokens: list[int], position: int) -> None:
    with pytest.raises(GenotypeError) as err:
        parse_macro_tokens(tokens, 3)
    assert err.value.position == position
    with pytest.raises(GenotypeError, match="expected 6"):
        parse_macro_tokens(tokens[:-1], 3)


@pytest.mark.parametrize("seed", [0, 1])
def test_shared_forward_backward_runs_only_the_path(images: torch.Tensor, seed: int) -> None:
    torch.manual_seed(seed)
    net = SharedMacroNet(L, C, num_classes=10, in_channels=3)
    tokens = random_tokens(L, seed)
    logits = net(images, tokens)
    assert logits.shape == (4, 10)
    logits.logsumexp(dim=1).mean().backward()
    assert all(torch.isfinite(p.grad).all() for p in net.parameters() if p.grad is not None)
    for i, layer in enumerate(parse_macro_tokens(tokens, L)):
        for op, branch in enumerate(net.branches[i]):
            has_grad = any(p.grad is not None for p in branch.parameters())
            assert has_grad == (op == layer.op), f"layer {i} op {op}"


def test_num_ops_limits_the_candidates(images: torch.Tensor) -> None:
    net = SharedMacroNet(3, C, num_ops=4)
    assert all(len(branches) == 4 for branches in net.branches)
    with pytest.raises(GenotypeError):
        net(images, [4, 0, 0, 0, 0, 0])


@pytest.mark.parametrize("op", range(6))
def test_final_child_runs_every_op(images: torch.Tensor, op: int) -> None:
    torch.manual_seed(op)
    tokens = random_tokens(L, seed=10 + op, op=op)
    child = MacroChild(MacroSpace(num_layers=L).structured(tokens), L, C, num_classes=10)
    assert child.classifier.in_features == 4 * C  # two reductions double the width twice
    logits = child(images)
    assert logits.shape == (4, 10)
    logits.sum().backward()
    grads = [p.grad for p in child.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    child.eval()
    assert torch.isfinite(child(images)).all()


def test_final_child_skip_combination_is_concat(images: torch.Tensor) -> None:
    tokens = [0, 1, 1, 2, 1, 1]  # layer 1 skips from 0, layer 2 skips from 0 and 1
    child = MacroChild(MacroSpace(num_layers=3).structured(tokens), 3, C)
    assert child.combine[1].conv.in_channels == 2 * child.combine[1].conv.out_channels
    assert child.combine[2].conv.in_channels == 3 * child.combine[2].conv.out_channels
    assert child(images).shape == (4, 10)


@pytest.mark.parametrize("seed", [0, 3])
def test_from_shared_gives_identical_outputs(images: torch.Tensor, seed: int) -> None:
    torch.manual_seed(seed)
    shared = SharedMacroNet(L, C)
    tokens = random_tokens(L, seed)
    for _ in range(2):  # move the BN running statistics away from their initial values
        shared(images, tokens)
    child = SearchMacroChild.from_shared(shared, tokens)
    assert child.layout == "search"
    torch.manual_seed(7)
    expected = shared(images, tokens)
    torch.manual_seed(7)
    assert torch.equal(child(images), expected)
    shared.eval()
    child.eval()
    assert torch.equal(child(images), shared(images, tokens))
    assert child.num_parameters() < sum(p.numel() for p in shared.parameters())


def test_macro_plugs_into_the_image_shared_trainer() -> None:
    from enas_core.configs import ChildConfig
    from enas_core.data.synthetic import synthetic_cifar
    from enas_core.registry import make_shared_trainer

    data = synthetic_cifar(seed=0, num_train=32, num_valid=16, num_test=8, image_size=16)
    cfg = ChildConfig(channels=8, batch_size=8, reward_batch=8, steps_per_epoch=2, aux_weight=0.0)
    trainer = make_shared_trainer(MacroSpace(num_layers=L), cfg, data, seed=0, device="cpu")
    assert isinstance(trainer.model, SharedMacroNet)
    metrics = trainer.train([random_tokens(L, 0), random_tokens(L, 1)], epoch=0)
    assert len(metrics["per_arch"]) == 2 and torch.isfinite(torch.tensor(metrics["loss"]))
    assert all(0.0 <= r <= 1.0 for r in trainer.rewards([random_tokens(L, 2)]))
