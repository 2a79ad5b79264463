"""The trainers' GPU path, exercised on the CPU: host-drawn batches uploaded once per call, no
host reads inside the inner loop, fused/foreach/loop SGD agreeing under path-only training,
bf16 autocast and channels_last variants, the language model's device-side skip of a diverged
window. tests/gpu/ runs the same paths on CUDA with torch's sync debug mode."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import torch
from torch import Tensor, nn

import enas_core.lm as lm
from enas_core.configs import ChildConfig, ControllerTrainConfig
from enas_core.controller import ControllerConfig
from enas_core.controller_trainer import ControllerTrainer
from enas_core.data.base import BatchStream, ImageDataset, apply_augment, augment_batch, draw_augment
from enas_core.data.synthetic import synthetic_ptb
from enas_core.image_trainer import SharedTrainer
from enas_core.lm import LMConfig, LMSharedTrainer
from enas_core.registry import make_shared_trainer
from enas_core.runtime import make_sgd
from enas_core.spaces import get_space
from enas_core.zoo.rnn.space import RnnSpace
from tests.core.conftest import space_cases

SPACES = space_cases({"micro": {"num_nodes": 2}, "macro": {"num_layers": 3}}, task="image")


def _shared(name: str, params: dict[str, int], digits: ImageDataset, **child: Any) -> SharedTrainer:
    space = get_space(name, **params)
    cfg = ChildConfig(**{"num_layers": 3, "channels": 8, "batch_size": 16, "reward_batch": 16,
                         "aux_weight": 0.0, "cutout": 2, **child})  # fmt: skip
    trainer = make_shared_trainer(space, cfg, digits, seed=0)
    assert isinstance(trainer, SharedTrainer)
    return trainer


def _archs(name: str, params: dict[str, int], n: int, seed: int = 0) -> list[list[int]]:
    space = get_space(name, **params)
    ccfg = ControllerConfig(tanh_constant=1.5 if name == "macro" else 1.1)
    return [s.tokens for s in ControllerTrainer(space, ccfg, ControllerTrainConfig(), seed).sample(n)]


@contextmanager
def no_host_reads() -> Iterator[None]:
    """Fail on every way Python code reads a tensor's value (what becomes a host sync on a GPU)."""
    names = ("item", "tolist", "__bool__", "__float__", "__int__")
    saved = {n: getattr(Tensor, n) for n in names}

    def refuse(*_: Any, **__: Any) -> Any:
        raise AssertionError("a tensor was read on the host inside the inner loop")

    for n in names:
        setattr(Tensor, n, refuse)
    try:
        yield
    finally:
        for n, fn in saved.items():
            setattr(Tensor, n, fn)


@pytest.mark.parametrize(("name", "params"), SPACES)
def test_image_inner_loop_reads_nothing_on_the_host(
    name: str, params: dict[str, int], digits: ImageDataset
) -> None:
    trainer = _shared(name, params, digits)
    plan = trainer.prepare_steps(_archs(name, params, 3), epoch=0)
    assert plan.idx.shape == (3, 16) and plan.augment.oy.shape == (3, 16)
    with no_host_reads():
        totals = trainer.run_steps(plan)
    assert totals.losses.shape == (3,) and bool(torch.isfinite(totals.losses).all())


def test_lm_inner_loop_reads_nothing_on_the_host() -> None:
    corpus = synthetic_ptb(seed=0, vocab_size=30, num_train=3000, num_valid=600, num_test=600)
    cfg = LMConfig(num_nodes=4, hidden_size=16, bptt=8, batch_size=8, reward_batch=8)
    trainer = LMSharedTrainer(RnnSpace(num_nodes=4), cfg, corpus, seed=0)
    trainer.model.train()
    with no_host_reads():
        losses, seen = trainer.run_steps([[0, 0, 1, 1, 2, 2, 3]] * 3)
    assert losses.shape == (3,) and seen == 3 * 8 * 8


def test_train_is_prepare_then_run_and_chunks_compose(digits: ImageDataset) -> None:
    archs = _archs("micro", {"num_nodes": 2}, 6, seed=1)
    whole = _shared("micro", {"num_nodes": 2}, digits, keep_prob=0.8).train(archs, 0)
    chunked = _shared("micro", {"num_nodes": 2}, digits, keep_prob=0.8)
    parts = chunked.train(archs[:2], 0)["per_arch"] + chunked.train(archs[2:], 0)["per_arch"]
    assert parts == whole["per_arch"]  # the streams and RNGs continue across calls


@pytest.mark.parametrize(("name", "params"), SPACES)
@pytest.mark.parametrize(("precision", "channels_last"), [("bf16", False), ("fp32", True), ("bf16", True)])
def test_precision_and_memory_format_variants_train(
    name: str, params: dict[str, int], precision: str, channels_last: bool, digits: ImageDataset
) -> None:
    trainer = _shared(name, params, digits, precision=precision, channels_last=channels_last)
    archs = _archs(name, params, 4)
    before = [p.detach().clone() for p in trainer.model.parameters()]
    out = trainer.train(archs, 0)
    assert all(math.isfinite(a["loss"]) for a in out["per_arch"])
    assert any(not torch.equal(b, p) for b, p in zip(before, trainer.model.parameters(), strict=True))
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())  # autocast, not a cast
    assert all(0.0 <= r <= 1.0 for r in trainer.rewards(archs))
    if channels_last:
        conv = next(m for m in trainer.model.modules() if isinstance(m, nn.Conv2d) and m.kernel_size[0] > 1)
        assert conv.weight.is_contiguous(memory_format=torch.channels_last)


def test_sgd_implementations_agree_under_path_only_training() -> None:
    """Parameters join the path at different steps (fused SGD needs every momentum buffer or none:
    they start as zeros, which equals PyTorch's lazy first step)."""
    results = []
    for impl in ("loop", "foreach", "fused"):
        torch.manual_seed(0)
        params = [nn.Parameter(torch.randn(5)) for _ in range(3)]
        opt = make_sgd(params, 0.1, 0.9, True, torch.device("cpu"), impl=impl)
        for step in range(4):
            opt.zero_grad(set_to_none=True)
            on_path = params[: 1 + step % 3]  # 1, 2, 3, 1 parameters get a gradient
            sum((p**2).sum() * (i + 1) for i, p in enumerate(on_path)).backward()
            opt.step()
        results.append(torch.cat([p.detach() for p in params]))
    torch.manual_seed(0)
    lazy = [nn.Parameter(torch.randn(5)) for _ in range(3)]
    reference = torch.optim.SGD(lazy, lr=0.1, momentum=0.9, nesterov=True)  # PyTorch's own lazy buffers
    for step in range(4):
        reference.zero_grad(set_to_none=True)
        sum((p**2).sum() * (i + 1) for i, p in enumerate(lazy[: 1 + step % 3])).backward()
        reference.step()
    expected = torch.cat([p.detach() for p in lazy])
    for got in results:
        torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError, match="unknown SGD implementation"):
        make_sgd(params, 0.1, 0.9, True, torch.device("cpu"), impl="other")


def test_host_drawn_augmentation_equals_per_batch_augmentation() -> None:
    x = torch.randn(3, 4, 2, 8, 8)  # three batches of four
    draw = draw_augment(torch.Generator().manual_seed(5), 3, 4, (8, 8), pad=2, flip=True, cutout=3)
    one_by_one = torch.Generator().manual_seed(5)
    for i in range(3):
        expected = augment_batch(x[i], one_by_one, pad=2, flip=True, cutout=3)
        assert torch.equal(apply_augment(x[i], draw.row(i), pad=2, flip=True, cutout=3), expected)
    stream, again = BatchStream(10, 3, seed=2), BatchStream(10, 3, seed=2)
    assert torch.equal(stream.take(5), torch.stack([again.next() for _ in range(5)]))


def test_lm_skips_a_diverged_window_on_the_device(monkeypatch: pytest.MonkeyPatch) -> None:
    corpus = synthetic_ptb(seed=0, vocab_size=30, num_train=3000, num_valid=600, num_test=600)
    cfg = LMConfig(num_nodes=3, hidden_size=16, bptt=8, batch_size=8, reward_batch=8, l2=1e-3)
    trainer = LMSharedTrainer(RnnSpace(num_nodes=3), cfg, corpus, seed=0)
    arch = [0, 0, 1, 1, 2]
    trainer.train([arch], 0)
    assert bool(trainer.hidden.abs().sum() > 0)
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    real_loss = lm.lm_loss
    monkeypatch.setattr(lm, "lm_loss", lambda logits, y: real_loss(logits, y) * math.nan)
    out = trainer.train([arch], 0)
    assert math.isnan(out["per_arch"][0]["loss"]) and out["skipped_steps"] == 1
    after = trainer.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # no weight moved
    assert bool((trainer.hidden == 0).all())  # the carried state restarts
    monkeypatch.setattr(lm, "lm_loss", real_loss)
    assert math.isfinite(trainer.train([arch], 0)["loss"]) and trainer.skipped_steps == 1
