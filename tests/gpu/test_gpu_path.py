"""The GPU path on CUDA (skipped without a GPU; tests/core/test_trainer_paths.py covers the same
code on the CPU).

For each space a shared-weight training run at the paper's search sizes: the dataset resident on
the GPU, fused SGD, and NOT ONE host synchronisation inside the inner loop, checked with
``torch.cuda.set_sync_debug_mode("error")`` around ``run_steps`` (after a warm-up call: the first
steps allocate memory and pick kernels); then the bf16 autocast and channels_last variants, the
reward pass, and retraining on the GPU.

Run on the device machine:  python -m pytest -q tests/gpu
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import torch

from enas_core.configs import ChildConfig, ControllerTrainConfig, RetrainConfig
from enas_core.controller import ControllerConfig
from enas_core.controller_trainer import ControllerTrainer
from enas_core.data.synthetic import synthetic_cifar, synthetic_ptb
from enas_core.image_trainer import SharedTrainer
from enas_core.lm import LMConfig, LMRetrainConfig, LMSharedTrainer
from enas_core.registry import make_shared_trainer
from enas_core.retrain import retrain
from enas_core.spaces import get_space

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

# the paper's search sizes (ENAS_SPEC 3) at a smaller batch
IMAGE_CASES = [
    ("micro", {"num_nodes": 5}, {"num_layers": 6, "channels": 20, "aux_weight": 0.4}, 1.1),
    ("macro", {"num_layers": 12}, {"num_layers": 12, "channels": 36, "aux_weight": 0.0}, 1.5),
]
VARIANTS = [("fp32", False), ("bf16", False), ("fp32", True), ("bf16", True)]


@contextmanager
def sync_is_an_error() -> Iterator[None]:
    """Inside: any host synchronisation raises (torch's CUDA sync debug mode)."""
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        yield
    finally:
        torch.cuda.set_sync_debug_mode("default")


@pytest.fixture(scope="module")
def images() -> Any:
    return synthetic_cifar(seed=0, num_train=640, num_valid=160, num_test=160)


def _archs(name: str, params: dict[str, int], tanh: float, n: int) -> list[list[int]]:
    space = get_space(name, **params)
    trainer = ControllerTrainer(space, ControllerConfig(tanh_constant=tanh), ControllerTrainConfig(), 0)
    return [s.tokens for s in trainer.sample(n)]


@pytest.mark.parametrize(("name", "params", "child", "tanh"), IMAGE_CASES)
@pytest.mark.parametrize(("precision", "channels_last"), VARIANTS)
def test_image_shared_steps_run_without_host_sync(
    name: str,
    params: dict[str, int],
    child: dict[str, Any],
    tanh: float,
    precision: str,
    channels_last: bool,
    images: Any,
) -> None:
    cfg = ChildConfig(
        **child, batch_size=32, reward_batch=32, cutout=8, precision=precision, channels_last=channels_last
    )
    trainer = make_shared_trainer(get_space(name, **params), cfg, images, seed=0, device="cuda")
    assert isinstance(trainer, SharedTrainer)
    assert trainer.data.train_x.is_cuda and trainer.optimizer.defaults["fused"] is True
    archs = _archs(name, params, tanh, 8)
    trainer.run_steps(trainer.prepare_steps(archs[:2], epoch=0))  # warm-up
    plan = trainer.prepare_steps(archs[2:], epoch=0)
    with sync_is_an_error():
        totals = trainer.run_steps(plan)
    assert totals.losses.shape == (6,) and bool(torch.isfinite(totals.losses).all())
    metrics = trainer.train(archs, epoch=1)
    assert math.isfinite(metrics["loss"]) and metrics["images_per_s"] > 0
    print(f"{name} {precision} channels_last={channels_last}: {metrics['images_per_s']:.0f} images/s")
    assert all(0.0 <= r <= 1.0 for r in trainer.rewards(archs))


def test_lm_shared_steps_run_without_host_sync() -> None:
    corpus = synthetic_ptb(seed=0, vocab_size=200, num_train=20_000, num_valid=4_000, num_test=4_000)
    cfg = LMConfig(num_nodes=12, hidden_size=200, bptt=35, batch_size=32, reward_batch=32)
    trainer = LMSharedTrainer(get_space("rnn", num_nodes=12), cfg, corpus, seed=0, device="cuda")
    archs = _archs("rnn", {"num_nodes": 12}, 2.5, 6)
    trainer.model.train()
    trainer.run_steps(archs[:2])  # warm-up
    with sync_is_an_error():
        losses, _ = trainer.run_steps(archs[2:])
    assert bool(torch.isfinite(losses).all())
    assert all(0.0 < r <= 80.0 for r in trainer.rewards(archs))


def test_cpu_and_cuda_trainers_draw_the_same_batches(images: Any) -> None:
    cfg = ChildConfig(num_layers=3, channels=8, batch_size=16, reward_batch=16, aux_weight=0.0)
    space = get_space("micro", num_nodes=2)
    archs = _archs("micro", {"num_nodes": 2}, 1.1, 3)
    plans = [
        make_shared_trainer(space, cfg, images, 0, device).prepare_steps(archs, 0)
        for device in ("cpu", "cuda")
    ]
    assert torch.equal(plans[0].idx, plans[1].idx.cpu())
    assert all(
        torch.equal(a, b.cpu())
        for a, b in zip(plans[0].augment.tensors(), plans[1].augment.tensors(), strict=True)
    )


def test_retraining_runs_on_cuda(images: Any) -> None:
    micro = get_space("micro", num_nodes=5)
    tokens = _archs("micro", {"num_nodes": 5}, 1.1, 1)[0]
    cfg = RetrainConfig(
        epochs=1, batch_size=32, num_layers=3, channels=16, steps_per_epoch=3, precision="bf16"
    )
    result = retrain(micro, tokens, cfg, images, seed=0, device="cuda")
    assert 0.0 <= result["test_accuracy"] <= 1.0 and next(result["model"].parameters()).is_cuda
    corpus = synthetic_ptb(seed=0, vocab_size=100, num_train=6000, num_valid=1500, num_test=1500)
    rnn = get_space("rnn", num_nodes=4)
    lm_cfg = LMRetrainConfig(epochs=1, hidden_size=32, bptt=10, batch_size=16, steps_per_epoch=5)
    lm_result = retrain(
        rnn, _archs("rnn", {"num_nodes": 4}, 2.5, 1)[0], lm_cfg, corpus, seed=0, device="cuda"
    )
    assert math.isfinite(lm_result["test_perplexity"])
