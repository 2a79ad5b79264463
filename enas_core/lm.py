"""The language-model side of the search: the shared-weight trainer of the rnn space.

``LMSharedTrainer`` follows the ``SharedTrainer`` contract of docs/INTERNALS.md:

- ``train(tokens, epoch)``: one BPTT window of the training stream per architecture (ENAS's M=1);
  the windows follow each other through the stream and the hidden state is carried from one to the
  next (detached), whichever architecture ran before; at the end of the stream both wrap to the start.
  SGD at ``lr_max * lr_decay ** max(0, epoch - lr_decay_start + 1)`` (epochs 0-based), the L2 term
  ``l2 * sum w^2`` over the weights on the sampled path (embedding, node 0's matrices, the chosen
  ``W_{l, j}``), then global-norm clipping at ``grad_clip`` (0.25).
- ``rewards(tokens)``: ``reward_c / perplexity`` of each architecture on ONE validation window
  (``reward_batch`` columns x ``bptt`` steps), the next window of the validation stream for each
  architecture, starting from a zero hidden state, with dropout off (eval mode).

A window whose loss is not finite (an architecture whose state blew up) changes no weight and
resets the carried hidden state; its reward is 0 (perplexity taken as infinite). That decision is
taken on the device (`lm_common.guarded_step`): the inner loop (`run_steps`) never synchronises
with the host; the losses are read once per ``train`` call.

Everything random (the dropout masks) comes from the trainer's own generator, saved in
``state_dict`` with the stream positions and the carried hidden state, so a resumed trainer
continues exactly as an uninterrupted one.

``retrain_lm`` (``enas_core.lm_retrain``, re-exported here) trains the standalone ``RnnChild`` of
one cell from scratch. Both are the rnn space's plugin entries (``trainer`` and ``retrainer`` in
``enas_core/zoo/rnn/__init__.py``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor

from enas_core.configs import from_mapping
from enas_core.data.ptb import CorpusDataset
from enas_core.lm_common import (
    TokenStream,
    coerce,
    cpu_copy,
    guarded_step,
    lm_loss,
    lr_at,
    path_l2,
    perplexity,
    seeded,
)
from enas_core.lm_retrain import LMRetrainConfig, evaluate_perplexity, retrain_lm
from enas_core.runtime import make_sgd, resolve_device
from enas_core.zoo.rnn.shared import SharedRnnModel
from enas_core.zoo.rnn.space import parse_rnn_tokens

__all__ = [
    "LMConfig",
    "LMRetrainConfig",
    "LMSharedTrainer",
    "TokenStream",
    "evaluate_perplexity",
    "lm_loss",
    "lr_at",
    "path_l2",
    "perplexity",
    "retrain_lm",
]


@dataclass(frozen=True)
class LMConfig:
    """Shared-model numbers of the rnn space (the ``child`` section of an rnn spec)."""

    num_nodes: int = 12
    hidden_size: int = 200
    bptt: int = 35
    batch_size: int = 64
    steps_per_epoch: int | None = None  # None: one pass over the training stream
    lr_max: float = 20.0
    lr_decay: float = 0.96
    lr_decay_start: int = 15
    grad_clip: float = 0.25
    l2: float = 1e-7
    dropout_input: float = 0.2
    dropout_hidden: float = 0.2
    dropout_output: float = 0.2
    init_range: float = 0.05
    reward_c: float = 80.0
    reward_batch: int = 64

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> LMConfig:
        """From the spec's "child" section of an rnn search; keys of other sections are ignored."""
        return from_mapping(cls, d)


class LMSharedTrainer:
    """Owns the shared language model, its optimizer, the batchified streams and the RNG.

    Args:
        space: the rnn space (its ``params["num_nodes"]`` wins over ``cfg.num_nodes``).
        cfg: ``LMConfig`` (or a mapping / dataclass with its field names).
        data: a ``CorpusDataset`` (ptb or synthetic-ptb).
        seed: seeds the weights and the dropout masks.
        device: where the model and the streams live (``"auto"``: cuda when available).
    """

    def __init__(
        self,
        space: Any,
        cfg: LMConfig | Mapping[str, Any],
        data: CorpusDataset,
        seed: int,
        device: str = "cpu",
    ) -> None:
        self.cfg = coerce(LMConfig, cfg)
        self.space = space
        self.num_nodes = int(getattr(space, "params", {}).get("num_nodes", self.cfg.num_nodes))
        self.device = resolve_device(device)
        self.data = data
        self.model = seeded(seed, lambda: SharedRnnModel(data.vocab_size, **self._model_kwargs())).to(
            self.device
        )
        self.optimizer = make_sgd(self.model.parameters(), self.cfg.lr_max, 0.0, False, self.device)
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        self.train_stream = TokenStream(
            data.batchify("train", self.cfg.batch_size, self.device), self.cfg.bptt
        )
        self.valid_stream = TokenStream(
            data.batchify("valid", self.cfg.reward_batch, self.device), self.cfg.bptt
        )
        self.step, self.skipped_steps = 0, 0
        self.hidden = self.model.init_hidden(self.cfg.batch_size)  # (B, H)

    def _model_kwargs(self) -> dict[str, Any]:
        c = self.cfg
        return {
            "hidden_size": c.hidden_size,
            "num_nodes": self.num_nodes,
            "dropout_input": c.dropout_input,
            "dropout_hidden": c.dropout_hidden,
            "dropout_output": c.dropout_output,
            "init_range": c.init_range,
        }

    def steps_per_epoch(self) -> int:
        """Training windows per epoch: ``cfg.steps_per_epoch`` or one pass over the stream."""
        return int(self.cfg.steps_per_epoch or self.train_stream.windows_per_pass)

    def run_steps(self, tokens: Sequence[Sequence[int]]) -> tuple[Tensor, int]:
        """The inner loop: one SGD step per architecture on the next window. No host
        synchronisation: a non-finite loss zeroes the step's gradients and resets the carried
        hidden state on the device (`guarded_step`). Returns the per-step cross-entropies ``(S,)``
        (device) and the number of target tokens seen."""
        params = list(self.model.parameters())
        losses, seen = [], 0
        for arch in tokens:
            x, y, wrapped = self.train_stream.next()  # (T, B), (T, B)
            if wrapped:
                self.hidden = self.model.init_hidden(self.cfg.batch_size)
            self.optimizer.zero_grad(set_to_none=True)
            logits, hidden = self.model(x, self.hidden, arch, self.generator)  # (T, B, V), (B, H)
            ce = lm_loss(logits, y)
            finite = torch.isfinite(ce)  # 0-d bool, stays on the device
            loss = ce + self.cfg.l2 * path_l2(self.model, arch) if self.cfg.l2 > 0 else ce
            loss.backward()
            guarded_step(params, self.optimizer, self.cfg.grad_clip, finite)
            self.hidden = torch.where(finite, hidden.detach(), 0.0)  # (B, H)
            losses.append(ce.detach())
            seen += y.numel()
            self.step += 1
        if not losses:
            return torch.zeros(0, device=self.device), 0
        return torch.stack(losses), seen

    def train(self, tokens: list[list[int]], epoch: int) -> dict[str, Any]:
        """One window (one SGD step) per architecture, in order.

        Returns:
            ``{"loss", "perplexity", "tokens_per_s", "lr", "steps", "skipped_steps",
            "per_arch": [{"loss", "perplexity"}]}`` (losses: cross-entropy without the L2 term;
            "loss" is the mean over the finite ones).
        """
        for arch in tokens:
            parse_rnn_tokens(arch, self.num_nodes)
        lr = lr_at(epoch, self.cfg.lr_max, self.cfg.lr_decay, self.cfg.lr_decay_start)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.model.train()
        start = time.perf_counter()
        step_losses, seen = self.run_steps(tokens)
        values = step_losses.tolist()  # the one host synchronisation of the call
        elapsed = time.perf_counter() - start
        finite = [v for v in values if math.isfinite(v)]
        self.skipped_steps += len(values) - len(finite)
        mean_loss = sum(finite) / len(finite) if finite else (math.nan if values else 0.0)
        return {
            "loss": mean_loss,
            "perplexity": perplexity(mean_loss) if values else 0.0,
            "tokens_per_s": seen / max(elapsed, 1e-9),
            "lr": lr,
            "steps": len(values),
            "skipped_steps": len(values) - len(finite),
            "per_arch": [{"loss": v, "perplexity": perplexity(v)} for v in values],
        }

    @torch.no_grad()
    def valid_losses(self, tokens: Sequence[Sequence[int]]) -> Tensor:
        """Cross-entropy ``(S,)`` (device) of each architecture on the next validation window
        (eval mode, zero hidden state)."""
        self.model.eval()
        losses = []
        for arch in tokens:
            x, y, _ = self.valid_stream.next()  # (T, Bv), (T, Bv)
            logits, _ = self.model(x, self.model.init_hidden(x.size(1)), arch)  # (T, Bv, V)
            losses.append(lm_loss(logits, y))
        self.model.train()
        return torch.stack(losses) if losses else torch.zeros(0, device=self.device)

    def valid_perplexity(self, arch_tokens: Sequence[int]) -> float:
        """Perplexity of one architecture on the next validation window."""
        return perplexity(float(self.valid_losses([arch_tokens])[0]))

    def rewards(self, tokens: list[list[int]]) -> list[float]:
        """``reward_c / perplexity`` per architecture, each on its own validation window (0 if
        diverged); one host synchronisation."""
        return [self.cfg.reward_c / perplexity(v) for v in self.valid_losses(tokens).tolist()]

    def state_dict(self) -> dict[str, Any]:
        """A snapshot (CPU copies): weights, optimizer, generator, stream positions, carried hidden state."""
        return {
            "model": cpu_copy(self.model.state_dict()),
            "optimizer": cpu_copy(self.optimizer.state_dict()),
            "generator": self.generator.get_state().clone(),
            "train_pos": self.train_stream.pos,
            "valid_pos": self.valid_stream.pos,
            "step": self.step,
            "skipped_steps": self.skipped_steps,
            "hidden": self.hidden.detach().cpu().clone(),
            "config": asdict(self.cfg),
        }

    def load_state_dict(self, d: Mapping[str, Any]) -> None:
        """Restore what ``state_dict`` saved (onto this trainer's device)."""
        self.model.load_state_dict(d["model"])
        self.optimizer.load_state_dict(d["optimizer"])
        self.generator.set_state(d["generator"].cpu())  # a CPU byte tensor for every device
        self.train_stream.pos, self.valid_stream.pos = int(d["train_pos"]), int(d["valid_pos"])
        self.step, self.skipped_steps = int(d["step"]), int(d.get("skipped_steps", 0))
        self.hidden = d["hidden"].to(self.device)
