"""The image task's shared-weight trainer (micro and macro spaces).

* SGD (Nesterov) with SGDR per epoch; L2 as lambda * sum w^2 over the parameters that received a
  gradient this step (the sampled path), added before gradient clipping; one minibatch per
  architecture (ENAS's M = 1).
* Reward = accuracy on ONE validation minibatch per architecture, no augmentation, dropout off,
  BatchNorm per `bn_mode` ("train": batch statistics without touching the running ones, E micro).

The GPU path: the dataset lives on the trainer's device; the minibatch indices and augmentation
parameters of a whole `train()` call are drawn on the host and uploaded in one copy
(`prepare_steps`); `run_steps` (the inner loop) then runs without a single host synchronisation
(no `.item()`, no host-side indexing): per-step loss and accuracy stay on the device and are
read once per call. Optional bf16 autocast and channels_last (`ChildConfig.precision`,
`channels_last`); fused SGD where the device has it (`runtime.make_sgd`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from enas_core.configs import ChildConfig
from enas_core.data.base import AugmentDraw, BatchStream, ImageDataset, apply_augment, draw_augment
from enas_core.registry import shared_model
from enas_core.runtime import (
    PrivateRng,
    autocast,
    init_momentum,
    make_sgd,
    memory_format,
    resolve_device,
    sgdr_lr,
    subseed,
    upload,
)
from enas_core.spaces import Space


class SharedTrainerLike(Protocol):
    """What `run_search_epoch`, `derive` and the actors need from a shared trainer."""

    def train(self, tokens: list[list[int]], epoch: int) -> dict[str, Any]: ...
    def rewards(self, tokens: list[list[int]]) -> list[float]: ...
    def steps_per_epoch(self) -> int: ...
    def state_dict(self) -> dict[str, Any]: ...
    def load_state_dict(self, state: Mapping[str, Any]) -> None: ...


def forward_aux(model: nn.Module, x: Tensor, *args: Any) -> tuple[Tensor, Tensor | None]:
    """(logits, aux logits or None): `model.forward_aux` when the model has one, else `model`."""
    fn = getattr(model, "forward_aux", None)
    if fn is not None:
        out: tuple[Tensor, Tensor | None] = fn(x, *args)
        return out
    return model(x, *args), None


def sgd_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    logits_aux: tuple[Tensor, Tensor | None],
    y: Tensor,
    aux_weight: float,
    l2: float,
    grad_clip: float | None,
) -> Tensor:
    """Backward + L2 (lambda * sum w^2 over the parameters that got a gradient, i.e. the path)
    + global-norm clipping + step. Returns the main cross-entropy (detached, on the device).
    No host synchronisation: the L2 term is one foreach kernel, clipping scales on the device."""
    logits, aux = logits_aux
    loss = F.cross_entropy(logits.float(), y)
    total = loss if aux is None else loss + aux_weight * F.cross_entropy(aux.float(), y)
    total.backward()
    params = [p for p in model.parameters() if p.grad is not None]
    if params and l2:
        grads = [g for g in (p.grad for p in params) if g is not None]  # all of them: params have one
        torch._foreach_add_(grads, [p.detach() for p in params], alpha=2.0 * l2)
    if params and grad_clip:
        nn.utils.clip_grad_norm_(params, grad_clip)
    optimizer.step()
    return loss.detach()


@contextmanager
def batch_stat_bn(model: nn.Module) -> Iterator[None]:
    """BatchNorm on batch statistics without touching the running statistics."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [(m.training, m.track_running_stats) for m in norms]
    for m in norms:
        m.train(True)
        m.track_running_stats = False
    try:
        yield
    finally:
        for m, (training, track) in zip(norms, saved, strict=True):
            m.train(training)
            m.track_running_stats = track


@dataclass(frozen=True)
class StepPlan:
    """One run of training steps, its data already on the device: the architectures, the lr,
    minibatch indices `idx` (S, B) and augmentation parameters (S, B)."""

    tokens: list[list[int]]
    lr: float
    idx: Tensor
    augment: AugmentDraw


@dataclass(frozen=True)
class StepTotals:
    """Per-step results left on the device: `losses` (S,) float, `correct` (S,) int64."""

    losses: Tensor
    correct: Tensor


class SharedTrainer:
    """The image task's shared-weight trainer (micro and macro spaces).

    Owns the shared model (built by its plugin's `shared_model`), its SGD optimizer, the
    data (moved to `device`), the train/validation batch streams and the RNG states.
    """

    def __init__(
        self,
        space: Space,
        cfg: ChildConfig | Mapping[str, Any],
        data: ImageDataset,
        seed: int,
        device: str = "cpu",
    ) -> None:
        self.space = space
        self.cfg = cfg if isinstance(cfg, ChildConfig) else ChildConfig.from_dict(cfg)
        self.device = resolve_device(device)
        self.data = data.to(self.device)
        self.memory_format = memory_format(self.cfg.channels_last)
        self._rng = PrivateRng(subseed(seed, "shared-global"), self.device)
        build = shared_model(space)
        with self._rng.scope():
            model = build(space, self.cfg, data)
        self.model: nn.Module = model.to(self.device, memory_format=self.memory_format)
        c = self.cfg
        self.optimizer = make_sgd(self.model.parameters(), c.lr_max, c.momentum, c.nesterov, self.device)
        self.train_stream = BatchStream(len(data.train_y), c.batch_size, subseed(seed, "train-batches"))
        self.valid_stream = BatchStream(len(data.valid_y), c.reward_batch, subseed(seed, "valid-batches"))
        self.augment_generator = torch.Generator().manual_seed(subseed(seed, "augment"))
        self.step = 0

    def steps_per_epoch(self) -> int:
        """Architectures (minibatches) per epoch: cfg.steps_per_epoch or one pass over train."""
        return self.cfg.steps_per_epoch or self.train_stream.batches_per_pass

    def lr(self, epoch: int) -> float:
        c = self.cfg
        return sgdr_lr(epoch, c.lr_max, c.lr_min, c.sgdr_t0, c.sgdr_tmul)

    def prepare_steps(self, tokens: list[list[int]], epoch: int) -> StepPlan:
        """Draw (host) and upload (one copy each) the minibatches and augmentation of `tokens`."""
        d = self.data
        idx = self.train_stream.take(len(tokens))  # (S, B)
        size = (d.image_size, d.image_size)
        draw = draw_augment(
            self.augment_generator, len(tokens), idx.shape[1], size, d.pad, d.flip, self.cfg.cutout
        )
        return StepPlan(
            [list(t) for t in tokens], self.lr(epoch), upload(idx, self.device), draw.to(self.device, upload)
        )

    def run_steps(self, plan: StepPlan) -> StepTotals:
        """The inner loop: one SGD step per architecture on its minibatch. No host
        synchronisation (tests/gpu check it with torch.cuda.set_sync_debug_mode("error"))."""
        for group in self.optimizer.param_groups:
            group["lr"] = plan.lr
        self.model.train()
        d, c = self.data, self.cfg
        losses, correct = [], []
        for i, arch in enumerate(plan.tokens):
            x = apply_augment(d.train_x[plan.idx[i]], plan.augment.row(i), d.pad, d.flip, c.cutout)
            x = x.contiguous(memory_format=self.memory_format)  # (B, C, H, W)
            y = d.train_y[plan.idx[i]]  # (B,)
            self.optimizer.zero_grad(set_to_none=True)
            with autocast(self.device, c.precision):
                out = forward_aux(self.model, x, arch)
            losses.append(sgd_step(self.model, self.optimizer, out, y, c.aux_weight, c.l2, c.grad_clip))
            correct.append((out[0].detach().argmax(dim=1) == y).sum())
            self.step += 1
        if not losses:
            return StepTotals(torch.zeros(0, device=self.device), torch.zeros(0, dtype=torch.long))
        return StepTotals(torch.stack(losses), torch.stack(correct))

    def train(self, tokens: list[list[int]], epoch: int) -> dict[str, Any]:
        """One SGD step per architecture, each on the next training minibatch (M = 1).

        Returns {"loss", "accuracy", "lr", "images_per_s", "steps", "per_arch": [{"loss", "accuracy"}]}.
        """
        if not tokens:
            return {"loss": 0.0, "accuracy": 0.0, "lr": self.lr(epoch), "images_per_s": 0.0, "steps": 0,
                    "per_arch": []}  # fmt: skip
        start = time.perf_counter()
        plan = self.prepare_steps(tokens, epoch)
        with self._rng.scope():
            totals = self.run_steps(plan)
        batch = self.train_stream.batch_size
        loss_list = totals.losses.tolist()  # the one host synchronisation of the call
        acc_list = (totals.correct.double() / batch).tolist()
        elapsed = time.perf_counter() - start
        return {
            "loss": sum(loss_list) / len(loss_list),
            "accuracy": sum(acc_list) / len(acc_list),
            "lr": plan.lr,
            "images_per_s": len(tokens) * batch / max(elapsed, 1e-9),
            "steps": len(tokens),
            "per_arch": [{"loss": lo, "accuracy": a} for lo, a in zip(loss_list, acc_list, strict=True)],
        }

    @torch.no_grad()
    def rewards(self, tokens: list[list[int]]) -> list[float]:
        """Accuracy of each architecture on its own validation minibatch of reward_batch images
        (no augmentation, dropout off, BN per `bn_mode`): values in [0, 1] in steps of 1/batch."""
        if not tokens:
            return []
        idx = upload(self.valid_stream.take(len(tokens)), self.device)  # (S, B)
        d, c = self.data, self.cfg
        self.model.eval()
        correct = []
        with batch_stat_bn(self.model) if c.bn_mode == "train" else nullcontext():
            for i, arch in enumerate(tokens):
                x = d.valid_x[idx[i]].contiguous(memory_format=self.memory_format)  # (B, C, H, W)
                with autocast(self.device, c.precision):
                    logits = self.model(x, arch)  # (B, num_classes)
                correct.append((logits.argmax(dim=1) == d.valid_y[idx[i]]).sum())
        return (torch.stack(correct).double() / self.valid_stream.batch_size).tolist()

    def state_dict(self) -> dict[str, Any]:
        """Weights, optimizer, streams, augmentation and private RNG states, step."""
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "train_stream": self.train_stream.state_dict(),
            "valid_stream": self.valid_stream.state_dict(),
            "augment": self.augment_generator.get_state(),
            "rng": self._rng.state_dict(),
            "step": self.step,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what `state_dict` saved."""
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        init_momentum(self.optimizer)
        self.train_stream.load_state_dict(state["train_stream"])
        self.valid_stream.load_state_dict(state["valid_stream"])
        self.augment_generator.set_state(state["augment"])
        self._rng.load_state_dict(state["rng"])
        self.step = int(state["step"])
