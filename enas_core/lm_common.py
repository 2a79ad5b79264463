"""Pieces shared by the language model's shared trainer (`enas_core.lm`) and its retraining
(`enas_core.lm_retrain`): the lr schedule, the path L2 term, perplexity, the BPTT stream, and the
guarded SGD step that skips a diverged window without a host synchronisation."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, is_dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from enas_core.configs import from_mapping
from enas_core.data.ptb import bptt_window
from enas_core.zoo.rnn.child import RnnChild
from enas_core.zoo.rnn.shared import SharedRnnModel

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

_C = TypeVar("_C", bound="DataclassInstance")
_M = TypeVar("_M", bound=nn.Module)


def coerce(cls: type[_C], cfg: Any) -> _C:
    """``cfg`` as ``cls``: itself, or built from a mapping or another dataclass (shared field names)."""
    if isinstance(cfg, cls):
        return cfg
    if is_dataclass(cfg) and not isinstance(cfg, type):
        return from_mapping(cls, asdict(cfg))
    return from_mapping(cls, dict(cfg))


def lr_at(epoch: int, lr_max: float, decay: float, decay_start: int) -> float:
    """The lr of ``epoch`` (0-based): ``lr_max``, then x ``decay`` per epoch from epoch ``decay_start``."""
    return lr_max * decay ** max(0, epoch - decay_start + 1)


def path_l2(model: SharedRnnModel | RnnChild, arch_tokens: Sequence[int] | None = None) -> Tensor:
    """``sum w^2`` over the weights one architecture uses (the decoder bias excluded)."""
    total = model.embedding.weight.pow(2).sum() + model.w_x.pow(2).sum() + model.w_h.pow(2).sum()
    if isinstance(model, SharedRnnModel):
        assert arch_tokens is not None
        node_weights = model.cell.path_weights(model.plan(arch_tokens))
    else:
        node_weights = list(model.node_weights)
    return total + sum(w.pow(2).sum() for w in node_weights)


def perplexity(cross_entropy: float) -> float:
    """``exp(cross_entropy)``, capped at ``exp(50)``; infinite for a non-finite loss (a diverged model)."""
    return math.exp(min(cross_entropy, 50.0)) if math.isfinite(cross_entropy) else math.inf


def lm_loss(logits: Tensor, targets: Tensor) -> Tensor:
    """Mean next-token cross-entropy of logits ``(T, B, V)`` against targets ``(T, B)``."""
    return F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), targets.reshape(-1))


def guarded_step(
    params: list[nn.Parameter], optimizer: torch.optim.Optimizer, clip: float, finite: Tensor
) -> None:
    """Global-norm clipping and one optimizer step over the parameters that received a gradient,
    with every gradient zeroed when ``finite`` (a 0-d bool tensor) is False: a window whose loss
    blew up changes nothing (plain SGD without momentum or weight decay). No host sync."""
    with_grad = [p for p in params if p.grad is not None]
    for p in with_grad:
        grad = p.grad
        assert grad is not None
        p.grad = torch.where(finite, grad, 0.0)
    if clip > 0 and with_grad:
        torch.nn.utils.clip_grad_norm_(with_grad, clip)
    optimizer.step()


def cpu_copy(obj: Any) -> Any:
    """A deep copy with every tensor moved to the CPU (checkpoints must not alias live state)."""
    if isinstance(obj, Tensor):
        return obj.detach().cpu().clone()
    if isinstance(obj, dict):
        return {k: cpu_copy(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(cpu_copy(v) for v in obj)
    return obj


def seeded(seed: int, build: Callable[[], _M]) -> _M:
    """``build()`` with torch's global RNG seeded privately (the caller's RNG state is untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


class TokenStream:
    """Consecutive BPTT windows of a batchified stream ``(N, B)``, wrapping at the end.

    ``next()`` returns ``(x, y, wrapped)``; ``wrapped`` tells the caller to restart its hidden state.
    """

    def __init__(self, batched: Tensor, bptt: int) -> None:
        if batched.size(0) < 2:
            raise ValueError("a stream needs at least two rows")
        self.batched, self.bptt, self.pos = batched, bptt, 0

    @property
    def windows_per_pass(self) -> int:
        return (self.batched.size(0) - 2) // self.bptt + 1

    def next(self) -> tuple[Tensor, Tensor, bool]:
        wrapped = self.pos >= self.batched.size(0) - 1
        if wrapped:
            self.pos = 0
        x, y = bptt_window(self.batched, self.pos, self.bptt)  # (T, B), (T, B)
        self.pos += x.size(0)
        return x, y, wrapped
