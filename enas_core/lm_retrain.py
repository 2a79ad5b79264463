"""Retraining one recurrent cell from scratch: the standalone ``RnnChild`` on the training split,
the epoch with the best VALIDATION perplexity kept, the test split evaluated once at the end.

The same sync-free step as the shared trainer (`lm_common.guarded_step`); per-epoch losses and
perplexities are read from the device once per epoch.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from enas_core.data.ptb import CorpusDataset, bptt_windows
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
from enas_core.runtime import make_sgd, resolve_device
from enas_core.zoo.rnn.child import RnnChild
from enas_core.zoo.rnn.space import RnnSpace


@dataclass(frozen=True)
class LMRetrainConfig:
    """Standalone training of one recurrent cell (the ``retrain`` section of an rnn spec)."""

    epochs: int = 40
    hidden_size: int = 200
    bptt: int = 35
    batch_size: int = 64
    eval_batch_size: int = 10
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


@torch.no_grad()
def evaluate_perplexity(child: RnnChild, stream: Tensor, bptt: int) -> float:
    """Perplexity of ``child`` over a whole batchified stream ``(N, B)``, hidden state carried, eval
    mode; the summed loss stays on the device until the end (one host synchronisation)."""
    was_training = child.training
    child.eval()
    hidden = child.init_hidden(stream.size(1))
    total, count = torch.zeros((), device=stream.device), 0
    for x, y in bptt_windows(stream, bptt):  # (T, B), (T, B)
        logits, hidden = child(x, hidden)  # (T, B, V)
        total += lm_loss(logits, y) * y.numel()
        count += y.numel()
    child.train(was_training)
    return perplexity(float(total) / max(1, count))


class _ChildTrainer:
    """SGD on one standalone child over a carried training stream (retraining)."""

    def __init__(self, child: RnnChild, cfg: LMRetrainConfig, stream: TokenStream, seed: int) -> None:
        self.child, self.cfg, self.stream = child, cfg, stream
        device = child.w_x.device
        self.optimizer = make_sgd(child.parameters(), cfg.lr_max, 0.0, False, device)
        self.generator = torch.Generator(device=device).manual_seed(seed)
        self.hidden = child.init_hidden(stream.batched.size(1))  # (B, H)

    def epoch(self, epoch: int, steps: int) -> float:
        """``steps`` windows at this epoch's lr; the mean finite training cross-entropy (read from
        the device once)."""
        for group in self.optimizer.param_groups:
            group["lr"] = lr_at(epoch, self.cfg.lr_max, self.cfg.lr_decay, self.cfg.lr_decay_start)
        self.child.train()
        params = list(self.child.parameters())
        losses = torch.stack([self._step(params) for _ in range(steps)])  # (steps,)
        finite = torch.isfinite(losses)
        count = int(finite.sum())
        return float(torch.where(finite, losses, 0.0).sum()) / count if count else math.nan

    def _step(self, params: list[torch.nn.Parameter]) -> Tensor:
        x, y, wrapped = self.stream.next()  # (T, B), (T, B)
        if wrapped:
            self.hidden = self.child.init_hidden(x.size(1))
        self.optimizer.zero_grad(set_to_none=True)
        logits, hidden = self.child(x, self.hidden, generator=self.generator)  # (T, B, V), (B, H)
        ce = lm_loss(logits, y)
        finite = torch.isfinite(ce)
        (ce + self.cfg.l2 * path_l2(self.child)).backward()
        guarded_step(params, self.optimizer, self.cfg.grad_clip, finite)
        self.hidden = torch.where(finite, hidden.detach(), 0.0)  # (B, H)
        return ce.detach()


def retrain_lm(
    space: RnnSpace,
    tokens: Sequence[int],
    cfg: LMRetrainConfig | Mapping[str, Any],
    data: CorpusDataset,
    seed: int,
    device: str = "cpu",
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Train the standalone child of one cell from scratch (the rnn plugin's ``retrainer``).

    The weights of the epoch with the best VALIDATION perplexity are kept; the test split is
    evaluated once, at the end, with them.

    Returns:
        ``{"valid_perplexity", "test_perplexity", "best_epoch", "params", "epochs", "seconds",
        "curve": [{"epoch", "lr", "train_loss", "valid_perplexity", "seconds"}], "model"}``.
    """
    c = coerce(LMRetrainConfig, cfg)
    num_nodes = space.num_nodes
    dev = resolve_device(device)
    structured = space.structured(tokens)
    child = seeded(
        seed,
        lambda: RnnChild(
            structured,
            data.vocab_size,
            hidden_size=c.hidden_size,
            num_nodes=num_nodes,
            dropout_input=c.dropout_input,
            dropout_hidden=c.dropout_hidden,
            dropout_output=c.dropout_output,
            init_range=c.init_range,
        ),
    ).to(dev)
    trainer = _ChildTrainer(child, c, TokenStream(data.batchify("train", c.batch_size, dev), c.bptt), seed)
    valid = data.batchify("valid", c.eval_batch_size, dev)  # (N / Be, Be)
    steps = int(c.steps_per_epoch or trainer.stream.windows_per_pass)
    best: tuple[float, int, dict[str, Tensor] | None] = (math.inf, -1, None)
    curve: list[dict[str, Any]] = []
    begin = time.perf_counter()
    for epoch in range(c.epochs):
        train_ce = trainer.epoch(epoch, steps)
        row = {
            "epoch": epoch,
            "lr": trainer.optimizer.param_groups[0]["lr"],
            "train_loss": train_ce,
            "valid_perplexity": evaluate_perplexity(child, valid, c.bptt),
            "seconds": time.perf_counter() - begin,
        }
        curve.append(row)
        if on_epoch is not None:
            on_epoch(row)
        if row["valid_perplexity"] < best[0]:
            best = (row["valid_perplexity"], epoch, cpu_copy(child.state_dict()))
    if best[2] is not None:
        child.load_state_dict(best[2])
    return {
        "valid_perplexity": best[0],
        "test_perplexity": evaluate_perplexity(child, data.batchify("test", c.eval_batch_size, dev), c.bptt),
        "best_epoch": best[1],
        "params": sum(p.numel() for p in child.parameters()),
        "epochs": c.epochs,
        "seconds": time.perf_counter() - begin,
        "curve": curve,
        "model": child.eval(),
    }
