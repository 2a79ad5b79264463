"""The language-model side of the search: the shared-weight trainer of the rnn space and retraining.

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

A window whose loss is not finite (an architecture whose state blew up) skips its update and
resets the carried hidden state; its reward is 0 (perplexity taken as infinite).

Everything random (the dropout masks) comes from the trainer's own generator, saved in
``state_dict`` with the stream positions and the carried hidden state, so a resumed trainer
continues exactly as an uninterrupted one.

``retrain_lm`` trains the standalone ``RnnChild`` of one cell from scratch. Both plug into
``enas_core.search`` (``SHARED_TRAINERS["rnn"]``, ``RETRAINERS["rnn"]``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields, is_dataclass
from typing import Any, TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from enas_core.data.ptb import CorpusDataset, bptt_window, bptt_windows
from enas_core.models.rnn import RnnChild, SharedRnnModel, parse_rnn_tokens


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
        return _from_mapping(cls, d)


_C = TypeVar("_C")
_M = TypeVar("_M", bound=nn.Module)


def _from_mapping(cls: type[_C], d: Mapping[str, Any]) -> _C:
    names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    return cls(**{k: v for k, v in d.items() if k in names})


def _coerce(cls: type[_C], cfg: Any) -> _C:
    """``cfg`` as ``cls``: itself, or built from a mapping or another dataclass (shared field names)."""
    if isinstance(cfg, cls):
        return cfg
    if is_dataclass(cfg) and not isinstance(cfg, type):
        return _from_mapping(cls, asdict(cfg))
    return _from_mapping(cls, dict(cfg))


def _device(device: str | torch.device) -> torch.device:
    """``"auto"``: cuda when available, else cpu."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def lr_at(epoch: int, lr_max: float, decay: float, decay_start: int) -> float:
    """The lr of ``epoch`` (0-based): ``lr_max``, then x ``decay`` per epoch from epoch ``decay_start``."""
    return lr_max * decay ** max(0, epoch - decay_start + 1)


def path_l2(model: SharedRnnModel | RnnChild, arch_tokens: Sequence[int] | None = None) -> Tensor:
    """``sum w^2`` over the weights one architecture uses (the decoder bias excluded)."""
    total = model.embedding.weight.pow(2).sum() + model.w_x.pow(2).sum() + model.w_h.pow(2).sum()
    if isinstance(model, SharedRnnModel):
        assert arch_tokens is not None
        node_weights = model.cell.path_weights(model.parse(arch_tokens))
    else:
        node_weights = list(model.node_weights)
    return total + sum(w.pow(2).sum() for w in node_weights)


def perplexity(cross_entropy: float) -> float:
    """``exp(cross_entropy)``, capped at ``exp(50)``; infinite for a non-finite loss (a diverged model)."""
    return math.exp(min(cross_entropy, 50.0)) if math.isfinite(cross_entropy) else math.inf


def lm_loss(logits: Tensor, targets: Tensor) -> Tensor:
    """Mean next-token cross-entropy of logits ``(T, B, V)`` against targets ``(T, B)``."""
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1))


def _clip_and_step(params: list[nn.Parameter], optimizer: torch.optim.Optimizer, clip: float) -> float:
    """Global-norm clipping over the parameters that received a gradient, then one step; the norm."""
    with_grad = [p for p in params if p.grad is not None]
    norm = torch.nn.utils.clip_grad_norm_(with_grad, clip) if clip > 0 else torch.zeros(())
    optimizer.step()
    return float(norm)


def _cpu_copy(obj: Any) -> Any:
    """A deep copy with every tensor moved to the CPU (checkpoints must not alias live state)."""
    if isinstance(obj, Tensor):
        return obj.detach().cpu().clone()
    if isinstance(obj, dict):
        return {k: _cpu_copy(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(_cpu_copy(v) for v in obj)
    return obj


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
        self.cfg = _coerce(LMConfig, cfg)
        self.space = space
        self.num_nodes = int(getattr(space, "params", {}).get("num_nodes", self.cfg.num_nodes))
        self.device = _device(device)
        self.data = data
        self.model = _seeded(seed, lambda: SharedRnnModel(data.vocab_size, **self._model_kwargs())).to(
            self.device
        )
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=self.cfg.lr_max)
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

    def _train_one(self, arch_tokens: Sequence[int]) -> tuple[float, int]:
        """One SGD step of one architecture on the next window; its cross-entropy and token count.

        A non-finite loss (an architecture whose state blew up) skips the update and resets the
        carried hidden state, so one bad sample cannot poison the shared weights.
        """
        x, y, wrapped = self.train_stream.next()  # (T, B), (T, B)
        if wrapped:
            self.hidden = self.model.init_hidden(self.cfg.batch_size)
        self.optimizer.zero_grad(set_to_none=True)
        logits, hidden = self.model(x, self.hidden, arch_tokens, self.generator)  # (T, B, V), (B, H)
        ce = lm_loss(logits, y)
        value = float(ce.detach())
        self.step += 1
        if not math.isfinite(value):
            self.skipped_steps += 1
            self.hidden = self.model.init_hidden(self.cfg.batch_size)
            return value, y.numel()
        loss = ce + self.cfg.l2 * path_l2(self.model, arch_tokens) if self.cfg.l2 > 0 else ce
        loss.backward()
        _clip_and_step(list(self.model.parameters()), self.optimizer, self.cfg.grad_clip)
        self.hidden = hidden.detach()
        return value, y.numel()

    def train(self, tokens: list[list[int]], epoch: int) -> dict[str, Any]:
        """One window (one SGD step) per architecture, in order.

        Returns:
            ``{"loss", "perplexity", "tokens_per_s", "lr", "steps", "skipped_steps",
            "per_arch": [{"loss", "perplexity"}]}`` (losses: cross-entropy without the L2 term).
        """
        for arch in tokens:
            parse_rnn_tokens(arch, self.num_nodes)
        lr = lr_at(epoch, self.cfg.lr_max, self.cfg.lr_decay, self.cfg.lr_decay_start)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.model.train()
        start, per_arch, seen = time.perf_counter(), [], 0
        for arch in tokens:
            ce, n = self._train_one(arch)
            per_arch.append({"loss": ce, "perplexity": perplexity(ce)})
            seen += n
        finite = [p["loss"] for p in per_arch if math.isfinite(p["loss"])]
        mean_loss = sum(finite) / len(finite) if finite else (math.nan if per_arch else 0.0)
        return {
            "loss": mean_loss,
            "perplexity": perplexity(mean_loss) if per_arch else 0.0,
            "tokens_per_s": seen / max(time.perf_counter() - start, 1e-9),
            "lr": lr,
            "steps": len(per_arch),
            "skipped_steps": len(per_arch) - len(finite),
            "per_arch": per_arch,
        }

    @torch.no_grad()
    def valid_perplexity(self, arch_tokens: Sequence[int]) -> float:
        """Perplexity of one architecture on the next validation window (eval mode, zero hidden state)."""
        x, y, _ = self.valid_stream.next()  # (T, Bv), (T, Bv)
        self.model.eval()
        logits, _ = self.model(x, self.model.init_hidden(x.size(1)), arch_tokens)  # (T, Bv, V)
        self.model.train()
        return perplexity(float(lm_loss(logits, y)))

    def rewards(self, tokens: list[list[int]]) -> list[float]:
        """``reward_c / perplexity`` per architecture, each on its own validation window (0 if diverged)."""
        return [self.cfg.reward_c / self.valid_perplexity(arch) for arch in tokens]

    def state_dict(self) -> dict[str, Any]:
        """A snapshot (CPU copies): weights, optimizer, generator, stream positions, carried hidden state."""
        return {
            "model": _cpu_copy(self.model.state_dict()),
            "optimizer": _cpu_copy(self.optimizer.state_dict()),
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


def _seeded(seed: int, build: Callable[[], _M]) -> _M:
    """``build()`` with torch's global RNG seeded privately (the caller's RNG state is untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


# ---------------------------------------------------------------------------------------------------
# retraining one cell from scratch


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
    """Perplexity of ``child`` over a whole batchified stream ``(N, B)``, hidden state carried, eval mode."""
    was_training = child.training
    child.eval()
    hidden = child.init_hidden(stream.size(1))
    total, count = 0.0, 0
    for x, y in bptt_windows(stream, bptt):  # (T, B), (T, B)
        logits, hidden = child(x, hidden)  # (T, B, V)
        total += float(lm_loss(logits, y)) * y.numel()
        count += y.numel()
    child.train(was_training)
    return perplexity(total / max(1, count))


class _ChildTrainer:
    """SGD on one standalone child over a carried training stream (retraining)."""

    def __init__(self, child: RnnChild, cfg: LMRetrainConfig, stream: TokenStream, seed: int) -> None:
        self.child, self.cfg, self.stream = child, cfg, stream
        self.optimizer = torch.optim.SGD(child.parameters(), lr=cfg.lr_max)
        self.generator = torch.Generator(device=child.w_x.device).manual_seed(seed)
        self.hidden = child.init_hidden(stream.batched.size(1))  # (B, H)

    def epoch(self, epoch: int, steps: int) -> float:
        """``steps`` windows at this epoch's lr; the mean finite training cross-entropy."""
        for group in self.optimizer.param_groups:
            group["lr"] = lr_at(epoch, self.cfg.lr_max, self.cfg.lr_decay, self.cfg.lr_decay_start)
        self.child.train()
        losses = [self._step() for _ in range(steps)]
        finite = [v for v in losses if math.isfinite(v)]
        return sum(finite) / len(finite) if finite else math.nan

    def _step(self) -> float:
        x, y, wrapped = self.stream.next()  # (T, B), (T, B)
        if wrapped:
            self.hidden = self.child.init_hidden(x.size(1))
        self.optimizer.zero_grad(set_to_none=True)
        logits, hidden = self.child(x, self.hidden, generator=self.generator)  # (T, B, V), (B, H)
        ce = lm_loss(logits, y)
        value = float(ce.detach())
        if not math.isfinite(value):
            self.hidden = self.child.init_hidden(x.size(1))
            return value
        (ce + self.cfg.l2 * path_l2(self.child)).backward()
        _clip_and_step(list(self.child.parameters()), self.optimizer, self.cfg.grad_clip)
        self.hidden = hidden.detach()
        return value


def retrain_lm(
    space: Any,
    tokens: Sequence[int],
    cfg: LMRetrainConfig | Mapping[str, Any],
    data: CorpusDataset,
    seed: int,
    device: str = "cpu",
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Train the standalone child of one cell from scratch (the ``RETRAINERS["rnn"]`` plug-in).

    The weights of the epoch with the best VALIDATION perplexity are kept; the test split is
    evaluated once, at the end, with them.

    Returns:
        ``{"valid_perplexity", "test_perplexity", "best_epoch", "params", "epochs", "seconds",
        "curve": [{"epoch", "lr", "train_loss", "valid_perplexity", "seconds"}], "model"}``.
    """
    c = _coerce(LMRetrainConfig, cfg)
    num_nodes = int(getattr(space, "params", {}).get("num_nodes", (len(tokens) + 1) // 2))
    dev = _device(device)
    child = _seeded(seed, lambda: RnnChild(
        tokens, data.vocab_size, c.hidden_size, num_nodes,
        c.dropout_input, c.dropout_hidden, c.dropout_output, c.init_range,
    )).to(dev)  # fmt: skip
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
            best = (row["valid_perplexity"], epoch, _cpu_copy(child.state_dict()))
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
