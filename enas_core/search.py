"""The ENAS search loop as plain objects: the trainers the Ray actors wrap (also used in-process).

* `ControllerTrainer`: the LSTM policy, its Adam optimizer, the EMA baseline, a sampling
  generator. `sample(n)` / `update(tokens, rewards)`.
* `SharedTrainer` (image task): the shared model, SGD (Nesterov) with SGDR per epoch, L2 as
  lambda * sum w^2 over the parameters on the sampled path, gradient clipping; one minibatch
  per architecture (M = 1); reward = accuracy on ONE validation minibatch.
* `run_search_epoch`, `derive`, `retrain`.

Every random draw goes through a seeded generator owned by a trainer (dropout and drop path
use torch's global RNG, which each trainer swaps for its own saved state while it runs), so a
run is deterministic on CPU for a fixed seed, and `state_dict()` -> `load_state_dict()` ->
continue is bit-identical to an uninterrupted run.

Plug-in points (keyed by SPACE name, not by dataset type):
* `SHARED_IMAGE_MODELS[name](space, child_cfg, data) -> nn.Module` with `forward(x, tokens)`
  and optionally `forward_aux(x, tokens) -> (logits, aux | None)`.
* `FINAL_IMAGE_MODELS[name](space, tokens, retrain_cfg, data) -> nn.Module` with `forward(x)`,
  optionally `forward_aux(x)` and `set_drop_path_progress(fraction)`.
* `SHARED_TRAINERS[name](space, cfg, data, seed, device)` -> an object with the `SharedTrainer`
  methods (`SharedTrainerLike`); `RETRAINERS[name](space, tokens, cfg, data, seed, device,
  on_epoch)` -> dict. Values may be "module:attribute" strings, imported on first use; the
  language-model task ("rnn") lives in `enas_core.lm`.
"""

from __future__ import annotations

import hashlib
import importlib
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field, fields
from typing import Any, Protocol, TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from enas_core.controller import Controller, ControllerConfig
from enas_core.data.base import BatchStream, ImageDataset, augment_batch, iterate_in_order
from enas_core.ops import count_macs, count_parameters
from enas_core.reinforce import EmaBaseline, reinforce_loss
from enas_core.spaces import Space

_C = TypeVar("_C")


def _from_dict(cls: type[_C], d: Mapping[str, Any]) -> _C:
    names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    return cls(**{k: v for k, v in d.items() if k in names})


# --- configs (field names = keys of the resolved spec's sections) ------------------------------
@dataclass(frozen=True)
class ChildConfig:
    """Shared-model shape and training numbers (the spec's "child" section, CNN spaces).

    steps_per_epoch None: one pass over the train split. bn_mode: BatchNorm during the reward
    pass, "train" (batch statistics, running statistics untouched; E micro) or "eval".
    """

    num_layers: int = 6
    channels: int = 20
    num_nodes: int = 5
    batch_size: int = 160
    steps_per_epoch: int | None = None
    lr_max: float = 0.05
    lr_min: float = 0.0005
    sgdr_t0: int = 10
    sgdr_tmul: int = 2
    momentum: float = 0.9
    nesterov: bool = True
    l2: float = 1e-4
    grad_clip: float | None = 5.0
    keep_prob: float = 0.9
    aux_weight: float = 0.4
    cutout: int = 0
    reward_batch: int = 160
    bn_mode: str = "train"

    def __post_init__(self) -> None:
        if self.bn_mode not in ("train", "eval"):
            raise ValueError(f"bn_mode must be 'train' or 'eval', got {self.bn_mode!r}")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ChildConfig:
        """From the spec's "child" section; unknown keys are ignored."""
        return _from_dict(cls, d)


@dataclass(frozen=True)
class ControllerTrainConfig:
    """Controller optimisation (the spec's "controller" section minus ControllerConfig's keys)."""

    lr: float = 0.0035
    adam_beta1: float = 0.0
    adam_beta2: float = 0.999
    adam_eps: float = 1e-3
    entropy_weight: float = 1e-4
    baseline_decay: float = 0.99
    steps_per_epoch: int = 30
    archs_per_step: int = 10

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ControllerTrainConfig:
        return _from_dict(cls, d)


@dataclass(frozen=True)
class RetrainConfig:
    """Training a derived architecture from scratch (the spec's "retrain" section)."""

    enabled: bool = True
    top_k: int = 1
    epochs: int = 630
    batch_size: int = 144
    num_layers: int = 15
    channels: int = 36
    steps_per_epoch: int | None = None
    lr_max: float = 0.05
    lr_min: float = 0.0001
    sgdr_t0: int = 10
    sgdr_tmul: int = 2
    momentum: float = 0.9
    nesterov: bool = True
    l2: float = 0.0002
    grad_clip: float | None = 5.0
    keep_prob: float = 0.8
    drop_path_keep: float = 0.6
    aux_weight: float = 0.4
    cutout: int = 0

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RetrainConfig:
        return _from_dict(cls, d)


# --- small helpers ------------------------------------------------------------------------------
def sgdr_lr(epoch: int, lr_max: float, lr_min: float, t0: int = 10, tmul: int = 2) -> float:
    """Cosine annealing with warm restarts, constant within an epoch (0-based); with t0=10,
    tmul=2 the restarts are at epochs 10, 30, 70, 150, 310, 630."""
    start, period = 0, max(1, t0)
    while epoch >= start + period:
        start, period = start + period, period * max(1, tmul)
    return lr_min + 0.5 * (lr_max - lr_min) * (1.0 + math.cos(math.pi * (epoch - start) / period))


def subseed(seed: int, tag: str) -> int:
    """An independent 63-bit seed for one purpose of a run."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{tag}".encode()).digest()[:8], "little") >> 1


def resolve_device(device: str | torch.device) -> torch.device:
    """ "auto" -> cuda when available, else cpu."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class PrivateRng:
    """A private copy of torch's global RNG state (CPU, and CUDA on a CUDA device); `scope()`
    swaps it in for the code that uses the global RNG (dropout, drop path, layer init)."""

    def __init__(self, seed: int, device: torch.device) -> None:
        self.device = device
        self.cpu = torch.Generator().manual_seed(seed).get_state()
        self.cuda: Tensor | None = None
        if device.type == "cuda":
            self.cuda = torch.Generator(device=device).manual_seed(seed).get_state()

    @contextmanager
    def scope(self) -> Iterator[None]:
        devices = [self.device] if self.cuda is not None else []
        with torch.random.fork_rng(devices=devices):
            torch.set_rng_state(self.cpu)
            if self.cuda is not None:
                torch.cuda.set_rng_state(self.cuda, self.device)
            try:
                yield
            finally:
                self.cpu = torch.get_rng_state()
                if self.cuda is not None:
                    self.cuda = torch.cuda.get_rng_state(self.device)

    def state_dict(self) -> dict[str, Any]:
        return {"cpu": self.cpu.clone(), "cuda": None if self.cuda is None else self.cuda.clone()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.cpu = state["cpu"].clone()
        if self.cuda is not None and state.get("cuda") is not None:
            self.cuda = state["cuda"].clone()


def _resolve(entry: Any) -> Any:
    """A registry value: the object itself, or a "module:attribute" string imported now."""
    if not isinstance(entry, str):
        return entry
    module, _, attr = entry.partition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as e:
        raise NotImplementedError(f"plug-in {entry!r} is not available ({e})") from e


def _registry_get(registry: Mapping[str, Any], space: Space, what: str) -> Any:
    if space.name not in registry:
        raise NotImplementedError(f"no {what} registered for space {space.name!r}")
    return _resolve(registry[space.name])


# --- controller ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Sampled:
    """One sampled architecture, plain Python."""

    tokens: list[int]
    log_prob: float
    entropy: float


class ControllerTrainer:
    """The controller, its Adam optimizer (lr does not decay), the EMA baseline and the sampling
    generator (CPU)."""

    def __init__(self, space: Space, ccfg: ControllerConfig, tcfg: ControllerTrainConfig, seed: int) -> None:
        self.space, self.ccfg, self.tcfg = space, ccfg, tcfg
        self.controller = Controller(
            space, ccfg, torch.Generator().manual_seed(subseed(seed, "controller-init"))
        )
        self.optimizer = torch.optim.Adam(
            self.controller.parameters(),
            lr=tcfg.lr,
            betas=(tcfg.adam_beta1, tcfg.adam_beta2),
            eps=tcfg.adam_eps,
        )
        self.baseline = EmaBaseline(tcfg.baseline_decay)
        self.generator = torch.Generator().manual_seed(subseed(seed, "controller-sample"))
        self.step = 0

    def sample(self, n: int) -> list[Sampled]:
        """n architectures from the current policy (one batched call)."""
        batch = self.controller.sample(n, self.generator)
        rows = zip(batch.tokens.tolist(), batch.log_prob.tolist(), batch.entropy.tolist(), strict=True)
        return [Sampled(t, lp, e) for t, lp, e in rows]

    def update(self, tokens: Sequence[Sequence[int]], rewards: Sequence[float]) -> dict[str, Any]:
        """One Adam step of REINFORCE over the batch (log-probs recomputed from the tokens).

        Returns {"loss", "baseline", "entropy", "reward_mean", "skip_penalty", "advantages": [...]}.
        """
        result = self.controller.evaluate(torch.tensor([list(t) for t in tokens], dtype=torch.long))
        rl = reinforce_loss(
            result.log_prob,
            result.entropy,
            result.skip_penalty,
            rewards,
            self.baseline,
            self.tcfg.entropy_weight,
            self.ccfg.skip_weight,
        )
        self.optimizer.zero_grad(set_to_none=True)
        rl.loss.backward()
        self.optimizer.step()
        self.step += 1
        return {
            "loss": rl.loss.item(),
            "baseline": self.baseline.value,
            "entropy": result.entropy.mean().item(),
            "reward_mean": sum(rewards) / max(1, len(rewards)),
            "skip_penalty": result.skip_penalty.mean().item(),
            "advantages": rl.advantages,
        }

    def state_dict(self) -> dict[str, Any]:
        return {
            "controller": self.controller.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "baseline": self.baseline.state_dict(),
            "generator": self.generator.get_state(),
            "step": self.step,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.controller.load_state_dict(state["controller"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.baseline.load_state_dict(state["baseline"])
        self.generator.set_state(state["generator"])
        self.step = int(state["step"])


# --- shared model (image task) ----------------------------------------------------------------
class SharedTrainerLike(Protocol):
    """What `run_search_epoch`, `derive` and the actors need from a shared trainer."""

    def train(self, tokens: list[list[int]], epoch: int) -> dict[str, Any]: ...
    def rewards(self, tokens: list[list[int]]) -> list[float]: ...
    def steps_per_epoch(self) -> int: ...
    def state_dict(self) -> dict[str, Any]: ...
    def load_state_dict(self, state: Mapping[str, Any]) -> None: ...


def _forward_aux(model: nn.Module, x: Tensor, *args: Any) -> tuple[Tensor, Tensor | None]:
    forward_aux = getattr(model, "forward_aux", None)
    if forward_aux is not None:
        return forward_aux(x, *args)  # type: ignore[no-any-return]
    return model(x, *args), None


def _sgd_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    logits_aux: tuple[Tensor, Tensor | None],
    y: Tensor,
    aux_weight: float,
    l2: float,
    grad_clip: float | None,
) -> Tensor:
    """Backward + L2 (lambda * sum w^2 over the parameters that got a gradient, i.e. the path)
    + clipping + step. Returns the main cross-entropy (detached)."""
    logits, aux = logits_aux
    loss = F.cross_entropy(logits, y)
    total = loss if aux is None else loss + aux_weight * F.cross_entropy(aux, y)
    total.backward()
    params = [p for p in model.parameters() if p.grad is not None]
    if l2:
        for p in params:
            p.grad.add_(p.detach(), alpha=2.0 * l2)  # type: ignore[union-attr]
    if grad_clip:
        nn.utils.clip_grad_norm_(params, grad_clip)
    optimizer.step()
    return loss.detach()


@contextmanager
def _batch_stat_bn(model: nn.Module) -> Iterator[None]:
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


class SharedTrainer:
    """The image task's shared-weight trainer (micro and macro spaces).

    Owns the shared model (built by `SHARED_IMAGE_MODELS[space.name]`), its SGD optimizer, the
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
        self._rng = PrivateRng(subseed(seed, "shared-global"), self.device)
        build = _registry_get(SHARED_IMAGE_MODELS, space, "shared image model")
        with self._rng.scope():
            self.model = build(space, self.cfg, data).to(self.device)
        self.optimizer = _sgd(self.model, self.cfg.lr_max, self.cfg.momentum, self.cfg.nesterov)
        self.train_stream = BatchStream(
            len(data.train_y), self.cfg.batch_size, subseed(seed, "train-batches")
        )
        self.valid_stream = BatchStream(
            len(data.valid_y), self.cfg.reward_batch, subseed(seed, "valid-batches")
        )
        self.augment_generator = torch.Generator().manual_seed(subseed(seed, "augment"))
        self.step = 0

    def steps_per_epoch(self) -> int:
        return self.cfg.steps_per_epoch or self.train_stream.batches_per_pass

    def lr(self, epoch: int) -> float:
        c = self.cfg
        return sgdr_lr(epoch, c.lr_max, c.lr_min, c.sgdr_t0, c.sgdr_tmul)

    def _train_batch(self) -> tuple[Tensor, Tensor]:
        idx = self.train_stream.next().to(self.device)
        x = augment_batch(
            self.data.train_x[idx], self.augment_generator, self.data.pad, self.data.flip, self.cfg.cutout
        )  # (B, C, H, W)
        return x, self.data.train_y[idx]

    def train(self, tokens: list[list[int]], epoch: int) -> dict[str, Any]:
        """One SGD step per architecture, each on the next training minibatch (M = 1).

        Returns {"loss", "accuracy", "lr", "images_per_s", "steps", "per_arch": [{"loss", "accuracy"}]}.
        """
        lr = self.lr(epoch)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.model.train()
        losses, correct = [], []
        start = time.perf_counter()
        with self._rng.scope():
            for arch in tokens:
                x, y = self._train_batch()
                self.optimizer.zero_grad(set_to_none=True)
                out = _forward_aux(self.model, x, arch)
                c = self.cfg
                losses.append(_sgd_step(self.model, self.optimizer, out, y, c.aux_weight, c.l2, c.grad_clip))
                correct.append((out[0].detach().argmax(dim=1) == y).sum())
                self.step += 1
        if not tokens:
            return {"loss": 0.0, "accuracy": 0.0, "lr": lr, "images_per_s": 0.0, "steps": 0, "per_arch": []}
        batch = self.train_stream.batch_size
        loss_list = torch.stack(losses).tolist()
        acc_list = (torch.stack(correct).float() / batch).tolist()
        elapsed = time.perf_counter() - start
        return {
            "loss": sum(loss_list) / len(loss_list),
            "accuracy": sum(acc_list) / len(acc_list),
            "lr": lr,
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
        self.model.eval()
        correct = []
        with _batch_stat_bn(self.model) if self.cfg.bn_mode == "train" else nullcontext():
            for arch in tokens:
                idx = self.valid_stream.next().to(self.device)
                logits = self.model(self.data.valid_x[idx], arch)  # (B, num_classes)
                correct.append((logits.argmax(dim=1) == self.data.valid_y[idx]).sum())
        return (torch.stack(correct).double() / self.valid_stream.batch_size).tolist()

    def state_dict(self) -> dict[str, Any]:
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
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.train_stream.load_state_dict(state["train_stream"])
        self.valid_stream.load_state_dict(state["valid_stream"])
        self.augment_generator.set_state(state["augment"])
        self._rng.load_state_dict(state["rng"])
        self.step = int(state["step"])


def _sgd(model: nn.Module, lr: float, momentum: float, nesterov: bool) -> torch.optim.SGD:
    return torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, nesterov=nesterov and momentum > 0)


# --- registries ---------------------------------------------------------------------------------
def _micro_shared(space: Any, cfg: ChildConfig, data: ImageDataset) -> nn.Module:
    from enas_core.models.micro import build_shared

    return build_shared(space, cfg, data)


def _macro_shared(space: Any, cfg: ChildConfig, data: ImageDataset) -> nn.Module:
    from enas_core.models.macro import SharedMacroNet

    return SharedMacroNet(
        num_layers=space.num_layers,
        channels=cfg.channels,
        num_classes=data.num_classes,
        in_channels=data.in_channels,
        keep_prob=cfg.keep_prob,
        num_ops=space.num_ops,
    )


def _micro_final(space: Any, tokens: Sequence[int], cfg: RetrainConfig, data: ImageDataset) -> nn.Module:
    from enas_core.models.micro import build_final

    return build_final(space, tokens, cfg, data)


def _macro_final(space: Any, tokens: Sequence[int], cfg: RetrainConfig, data: ImageDataset) -> nn.Module:
    from enas_core.models.macro import MacroChild

    return MacroChild(
        tokens,
        space.num_layers,
        cfg.channels,
        num_classes=data.num_classes,
        in_channels=data.in_channels,
        keep_prob=cfg.keep_prob,
        layout="final",
    )


SHARED_IMAGE_MODELS: dict[str, Any] = {"micro": _micro_shared, "macro": _macro_shared}
FINAL_IMAGE_MODELS: dict[str, Any] = {"micro": _micro_final, "macro": _macro_final}
SHARED_TRAINERS: dict[str, Any] = {
    "micro": SharedTrainer,
    "macro": SharedTrainer,
    "rnn": "enas_core.lm:LMSharedTrainer",
}
RETRAINERS: dict[str, Any] = {"rnn": "enas_core.lm:retrain_lm"}  # image spaces: retrain_image


def register_shared_trainer(space_name: str, factory: Any) -> None:
    """Plug in the shared trainer of a space: factory(space, cfg, data, seed, device)."""
    SHARED_TRAINERS[space_name] = factory


def register_retrainer(space_name: str, fn: Any) -> None:
    """Plug in the retraining of a space: fn(space, tokens, cfg, data, seed, device, on_epoch) -> dict."""
    RETRAINERS[space_name] = fn


def make_shared_trainer(
    space: Space, cfg: Any, data: Any, seed: int, device: str = "cpu"
) -> SharedTrainerLike:
    """The shared trainer for `space` (image task for micro/macro, language model for rnn).

    Raises:
        NotImplementedError: no trainer registered (or importable) for the space.
    """
    factory = _registry_get(SHARED_TRAINERS, space, "shared trainer")
    return factory(space, cfg, data, seed, device)  # type: ignore[no-any-return]


# --- one epoch, derivation ----------------------------------------------------------------------
@dataclass
class SampledArchitecture:
    """One architecture of an epoch. phase "train": trained on one minibatch (loss, accuracy);
    phase "sample": scored for the controller (reward, controller step). index: 0.. per phase."""

    phase: str
    index: int
    tokens: list[int]
    log_prob: float
    entropy: float
    reward: float | None = None
    loss: float | None = None
    accuracy: float | None = None
    step: int | None = None


@dataclass
class EpochResult:
    epoch: int
    metrics: dict[str, float]
    architectures: list[SampledArchitecture] = field(default_factory=list)


def run_search_epoch(
    shared: SharedTrainerLike,
    controller: ControllerTrainer,
    epoch: int,
    ctrl_steps: int | None = None,
    archs_per_step: int | None = None,
) -> EpochResult:
    """One ENAS epoch (0-based `epoch`): the shared phase (steps_per_epoch architectures sampled
    in one call, one minibatch each), then the controller phase (ctrl_steps x [sample
    archs_per_step -> rewards -> update]); defaults from the controller's train config."""
    ctrl_steps = controller.tcfg.steps_per_epoch if ctrl_steps is None else ctrl_steps
    archs_per_step = controller.tcfg.archs_per_step if archs_per_step is None else archs_per_step
    start = time.perf_counter()
    drawn = controller.sample(shared.steps_per_epoch())
    train = shared.train([s.tokens for s in drawn], epoch)
    archs = [
        SampledArchitecture(
            "train", i, s.tokens, s.log_prob, s.entropy, loss=pa.get("loss"), accuracy=pa.get("accuracy")
        )
        for i, (s, pa) in enumerate(zip(drawn, train["per_arch"], strict=True))
    ]
    shared_seconds = time.perf_counter() - start
    rewards: list[float] = []
    updates: list[dict[str, Any]] = []
    for step in range(ctrl_steps):
        batch = controller.sample(archs_per_step)
        got = shared.rewards([s.tokens for s in batch])
        updates.append(controller.update([s.tokens for s in batch], got))
        for s, r in zip(batch, got, strict=True):
            archs.append(
                SampledArchitecture(
                    "sample", len(rewards), s.tokens, s.log_prob, s.entropy, reward=r, step=step
                )
            )
            rewards.append(r)
    metrics: dict[str, float] = {"epoch": float(epoch)}
    metrics.update({f"train_{k}": float(v) for k, v in train.items() if isinstance(v, int | float)})
    sampled = [a for a in archs if a.phase == "sample"]
    if rewards:
        metrics.update(
            reward_mean=sum(rewards) / len(rewards),
            reward_max=max(rewards),
            reward_min=min(rewards),
            baseline=updates[-1]["baseline"],
            controller_loss=sum(u["loss"] for u in updates) / len(updates),
            entropy_mean=sum(a.entropy for a in sampled) / len(sampled),
            skip_penalty=sum(u["skip_penalty"] for u in updates) / len(updates),
        )
    metrics.update(
        shared_seconds=shared_seconds, controller_seconds=time.perf_counter() - start - shared_seconds
    )
    return EpochResult(epoch, metrics, archs)


def derive(
    shared: SharedTrainerLike, controller: ControllerTrainer, num_samples: int, top_k: int
) -> list[tuple[list[int], float]]:
    """Sample `num_samples` architectures, score each on one validation minibatch with the shared
    weights, and return the best `top_k` distinct ones (canonical form; duplicates averaged) as
    (tokens, score), best first (ties: first drawn first)."""
    drawn = controller.sample(num_samples)
    scores = shared.rewards([s.tokens for s in drawn])
    groups: dict[tuple[int, ...], tuple[list[int], list[float]]] = {}
    for s, score in zip(drawn, scores, strict=True):
        key = controller.space.canonical(s.tokens)
        groups.setdefault(key, (s.tokens, []))[1].append(score)
    ranked = [(tokens, sum(v) / len(v)) for tokens, v in groups.values()]
    ranked.sort(key=lambda item: -item[1])  # stable: first drawn wins ties
    return ranked[:top_k]


# --- retraining ---------------------------------------------------------------------------------
@torch.no_grad()
def evaluate_accuracy(model: nn.Module, x: Tensor, y: Tensor, batch_size: int = 500) -> float:
    """Accuracy of `model` (eval mode) on (x, y), in order."""
    model.eval()
    correct = 0
    for idx in iterate_in_order(len(y), batch_size):
        correct += int((model(x[idx]).argmax(dim=1) == y[idx]).sum())
    return correct / max(1, len(y))


def retrain(
    space: Space,
    tokens: Sequence[int],
    cfg: RetrainConfig,
    data: Any,
    seed: int,
    device: str = "cpu",
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Train the standalone child of `tokens` from scratch (dispatches on the space; image
    spaces: `retrain_image`)."""
    if space.name in RETRAINERS:
        fn = _registry_get(RETRAINERS, space, "retrainer")
        return fn(space, tokens, cfg, data, seed, device, on_epoch)  # type: ignore[no-any-return]
    return retrain_image(space, tokens, cfg, data, seed, device, on_epoch)


def retrain_image(
    space: Space,
    tokens: Sequence[int],
    cfg: RetrainConfig,
    data: ImageDataset,
    seed: int,
    device: str = "cpu",
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Final-layout child trained for cfg.epochs on the TRAIN split (SGDR, Nesterov, L2, clip,
    aux head, drop path); validation accuracy per epoch is reported, never used to select;
    the test split is evaluated once, at the end.

    Returns {"test_accuracy", "valid_accuracy", "params", "params_without_aux", "macs",
    "epochs", "seconds", "curve": [per-epoch dicts], "model": the trained nn.Module}.
    """
    dev = resolve_device(device)
    data = data.to(dev)
    rng = PrivateRng(subseed(seed, "retrain-global"), dev)
    with rng.scope():
        child = _registry_get(FINAL_IMAGE_MODELS, space, "final image model")(space, tokens, cfg, data).to(
            dev
        )
    optimizer = _sgd(child, cfg.lr_max, cfg.momentum, cfg.nesterov)
    stream = BatchStream(len(data.train_y), cfg.batch_size, subseed(seed, "retrain-batches"))
    augment_generator = torch.Generator().manual_seed(subseed(seed, "retrain-augment"))
    steps = cfg.steps_per_epoch or stream.batches_per_pass
    curve: list[dict[str, Any]] = []
    begin = time.perf_counter()
    for epoch in range(cfg.epochs):
        lr = sgdr_lr(epoch, cfg.lr_max, cfg.lr_min, cfg.sgdr_t0, cfg.sgdr_tmul)
        for group in optimizer.param_groups:
            group["lr"] = lr
        child.train()
        losses, correct = [], []
        with rng.scope():
            for step in range(steps):
                if hasattr(child, "set_drop_path_progress"):
                    child.set_drop_path_progress((epoch * steps + step + 1) / (cfg.epochs * steps))
                idx = stream.next().to(dev)
                x = augment_batch(data.train_x[idx], augment_generator, data.pad, data.flip, cfg.cutout)
                y = data.train_y[idx]
                optimizer.zero_grad(set_to_none=True)
                out = _forward_aux(child, x)
                losses.append(_sgd_step(child, optimizer, out, y, cfg.aux_weight, cfg.l2, cfg.grad_clip))
                correct.append((out[0].detach().argmax(dim=1) == y).sum())
        row = {
            "epoch": epoch,
            "lr": lr,
            "train_loss": torch.stack(losses).mean().item(),
            "train_accuracy": torch.stack(correct).sum().item() / (steps * stream.batch_size),
            "valid_accuracy": evaluate_accuracy(child, data.valid_x, data.valid_y),
            "seconds": time.perf_counter() - begin,
        }
        curve.append(row)
        if on_epoch is not None:
            on_epoch(row)
    return {
        "test_accuracy": evaluate_accuracy(child, data.test_x, data.test_y),
        "valid_accuracy": curve[-1]["valid_accuracy"] if curve else None,
        "params": count_parameters(child),
        "params_without_aux": sum(p.numel() for n, p in child.named_parameters() if ".aux." not in f".{n}"),
        "macs": count_macs(child, data.valid_x[:1]),
        "epochs": cfg.epochs,
        "seconds": time.perf_counter() - begin,
        "curve": curve,
        "model": child.eval(),
    }
