"""Micro models: shapes, path-only execution, from_shared equivalence, the final child."""

from __future__ import annotations

import random

import pytest
import torch

from enas_core.spaces import get_space
from enas_core.zoo.cell_stack import stack_aux_layer as aux_layer
from enas_core.zoo.cell_stack import stack_reductions as reduction_layers
from enas_core.zoo.micro.child import MicroChild, MicroNetConfig
from enas_core.zoo.micro.shared import SearchMicroChild, SharedMicroNet


def _final(tokens: list[int], config: MicroNetConfig) -> MicroChild:
    """The final child of `tokens` (the micro space with the config's node count decodes them)."""
    return MicroChild(get_space("micro", num_nodes=config.num_nodes).structured(tokens), config)


def _random_tokens(seed: int, num_nodes: int = 5) -> list[int]:
    rng = random.Random(seed)
    return [rng.randrange(d.choices) for d in get_space("micro", num_nodes=num_nodes).decisions]


def test_layout_constants() -> None:
    assert reduction_layers(6) == (2, 5) and aux_layer(6) == 6  # N N R N N R N N
    assert reduction_layers(15) == (5, 11) and aux_layer(15) == 12  # 5N R 5N R 5N


@pytest.mark.parametrize("image_size,in_channels", [(8, 1), (5, 3), (4, 3)])
def test_shared_forward_any_image_size(image_size: int, in_channels: int, published_micro: list[int]) -> None:
    config = MicroNetConfig(
        num_layers=3, channels=8, in_channels=in_channels, image_size=image_size, aux_head=True
    )
    net = SharedMicroNet(config)
    x = torch.randn(4, in_channels, image_size, image_size)
    logits, aux = net.forward_aux(x, published_micro)
    assert logits.shape == (4, 10) and aux is not None and aux.shape == (4, 10)
    net.eval()
    assert net(x, _random_tokens(1)).shape == (4, 10)
    assert net.forward_aux(x, published_micro)[1] is None  # aux only while training


def test_shared_is_path_only(published_micro: list[int]) -> None:
    net = SharedMicroNet(MicroNetConfig(num_layers=3, channels=8, in_channels=1, image_size=8))
    net(torch.randn(4, 1, 8, 8), published_micro).sum().backward()
    used = [n for n, p in net.named_parameters() if p.grad is not None]
    unused = [n for n, p in net.named_parameters() if p.grad is None]
    child = SearchMicroChild(published_micro, net.config)
    assert sorted(used) == sorted(n.removeprefix("net.") for n, _ in child.named_parameters())
    assert len(unused) > len(used)  # most candidates did not run


@pytest.mark.parametrize("train_mode", [False, True])
def test_from_shared_reproduces_shared_outputs(train_mode: bool) -> None:
    config = MicroNetConfig(
        num_layers=3, channels=8, in_channels=3, image_size=8, keep_prob=0.7, aux_head=True
    )
    torch.manual_seed(0)
    shared = SharedMicroNet(config)
    x = torch.randn(6, 3, 8, 8)
    for seed in range(3):  # move BN statistics away from their initial values
        shared.train()
        shared(x, _random_tokens(seed))
    for seed in (10, 11):
        tokens = _random_tokens(seed)
        child = SearchMicroChild.from_shared(shared, tokens)
        shared.train(train_mode)
        child.train(train_mode)
        torch.manual_seed(123)
        expected, expected_aux = shared.forward_aux(x, tokens)
        torch.manual_seed(123)
        got, got_aux = child.forward_aux(x)
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)
        if train_mode:
            torch.testing.assert_close(got_aux, expected_aux, rtol=0, atol=1e-6)
        assert child.num_parameters() < sum(p.numel() for p in shared.parameters())


def test_final_child_trains_on_digit_shapes(published_micro: list[int]) -> None:
    config = MicroNetConfig(
        num_layers=3,
        channels=8,
        in_channels=1,
        image_size=8,
        aux_head=True,
        drop_path_keep=0.6,
        keep_prob=0.8,
    )
    child = _final(published_micro, config)
    child.set_drop_path_progress(0.5)
    logits, aux = child.forward_aux(torch.randn(4, 1, 8, 8))
    assert logits.shape == (4, 10) and aux is not None
    (logits.sum() + aux.sum()).backward()
    child.eval()
    assert child(torch.randn(2, 1, 8, 8)).shape == (2, 10)


def test_published_arc_final_child_parameter_count(published_micro: list[int]) -> None:
    """E's published micro arc at num_layers=15, C=36 on CIFAR shapes (the paper reports 4.6M)."""
    config = MicroNetConfig(num_layers=15, channels=36, aux_head=True, drop_path_keep=0.6, keep_prob=0.8)
    child = _final(published_micro, config)
    total, without_aux = child.num_parameters(), child.num_parameters(include_aux=False)
    print(f"published micro arc, L=15 C=36: {total:,} parameters ({without_aux:,} without the aux head)")
    assert 3.5e6 < without_aux < 5.5e6
    child.eval()
    assert child(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_child_rejects_invalid_tokens(published_micro: list[int]) -> None:
    from enas_core.spaces import GenotypeError

    bad = list(published_micro)
    bad[0] = 2
    with pytest.raises(GenotypeError, match="normal cell node 0: input index 2"):
        SearchMicroChild(bad, MicroNetConfig(num_layers=3, channels=8))
    with pytest.raises(GenotypeError, match="normal cell node 0: input index 2"):
        _final(bad, MicroNetConfig(num_layers=3, channels=8))
    structured = get_space("micro", num_nodes=5).structured(published_micro)
    with pytest.raises(ValueError, match="nodes"):
        MicroChild(structured, MicroNetConfig(num_layers=3, channels=8, num_nodes=4))
