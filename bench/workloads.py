"""The torch side of the benchmarks: workloads at the paper's and the demo's sizes, the shared
trainer and controller ready to time, and static children of sampled architectures.

Only ``enas_core``'s public API is used (``enas_core.registry.make_shared_trainer``,
``ControllerTrainer``, the models' ``from_shared``), plus ``service.presets`` (plain dicts) and
``workers.config.build_plan``, which import neither Ray nor a database: this module runs on a CUDA
machine that has torch and nothing of the service's dependencies.

Sizes:
* ``paper``: the ``paper-*`` preset's child section (micro 6 layers C=20 batch 160; macro 12 layers
  C=36 batch 128; rnn 12 nodes hidden 720 BPTT 35 batch 64) on synthetic data of the real shapes
  (CIFAR-10 3x32x32, 10 classes; a 10,000-word vocabulary like PTB's);
* ``demo``: the ``demo-*`` preset as it is (8x8 digits; the rnn demo on synthetic-ptb);
* ``smoke``: the demo shrunk to seconds (tests).
"""

from __future__ import annotations

import copy
import dataclasses
import gc
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from enas_core.controller_trainer import ControllerTrainer
from enas_core.image_trainer import SharedTrainerLike
from enas_core.registry import make_shared_trainer
from service.presets import get_preset
from workers.config import SearchPlan, build_plan

SPACES = ("micro", "macro", "rnn")
SIZES = ("paper", "demo", "smoke")
PRESETS = {
    "paper": {"micro": "paper-cifar10-micro", "macro": "paper-cifar10-macro", "rnn": "paper-ptb"},
    "demo": {"micro": "demo-micro", "macro": "demo-macro", "rnn": "demo-rnn"},
    "smoke": {"micro": "demo-micro", "macro": "demo-macro", "rnn": "demo-rnn"},
}
DATASETS = {
    "paper": {"micro": "synthetic-cifar", "macro": "synthetic-cifar", "rnn": "synthetic-ptb"},
    "demo": {"micro": "digits", "macro": "digits", "rnn": "synthetic-ptb"},
    "smoke": {"micro": "digits", "macro": "digits", "rnn": "synthetic-ptb"},
}
# PTB's shape: a 10,000-word vocabulary (the softmax dominates the rnn step at hidden 720).
PAPER_PTB_OPTIONS = {"vocab_size": 10_000, "num_train": 120_000, "num_valid": 20_000, "num_test": 2_000}
SMOKE_CHILD: dict[str, dict[str, Any]] = {
    "micro": {"num_layers": 1, "channels": 4, "batch_size": 16, "reward_batch": 16},
    "macro": {"num_layers": 2, "channels": 4, "batch_size": 16, "reward_batch": 16},
    "rnn": {"num_nodes": 3, "hidden_size": 8, "bptt": 5, "batch_size": 4, "reward_batch": 4},
}
CIFAR_TRAIN_IMAGES = 45_000  # the paper's search split: steps per epoch = 45,000 / batch
PTB_TRAIN_WORDS = 929_589  # Penn Treebank (Mikolov) training words


def resolved_spec(space: str, size: str, device: str = "cpu") -> dict[str, Any]:
    """The resolved spec of a workload: the preset with the size's dataset and child overrides.

    Validated by ``service.spec.resolve_spec`` where pydantic is installed (not on a bare CUDA image).
    """
    child = dict(SMOKE_CHILD[space]) if size == "smoke" else {}
    dataset = DATASETS[size][space]
    resources: dict[str, Any] = {"device": device}
    try:
        from service.spec import SearchSpec, resolve_spec
    except ImportError:  # the CUDA image has no pydantic: merge the preset by hand
        spec = copy.deepcopy(get_preset(PRESETS[size][space]))
        spec["child"].update(child)
        spec["resources"].update(resources)
        spec.update(dataset=dataset, preset=PRESETS[size][space], name=None)
        return spec
    request = SearchSpec.model_validate(
        {"preset": PRESETS[size][space], "dataset": dataset, "child": child or None, "resources": resources}
    )
    return resolve_spec(request)


# Speed options of the image trainer (`enas_core` ChildConfig.precision / channels_last).
VARIANTS: dict[str, dict[str, Any]] = {
    "fp32": {},
    "bf16": {"precision": "bf16"},
    "cl": {"channels_last": True},
    "bf16-cl": {"precision": "bf16", "channels_last": True},
}


def plan_for(space: str, size: str, device: str = "cpu", variant: str = "fp32") -> SearchPlan:
    """``workers.config.build_plan`` of the workload's resolved spec, with a `VARIANTS` entry
    applied to the child config (image spaces; raises TypeError where the core lacks the option)."""
    plan = build_plan(resolved_spec(space, size, device))
    if device == "cpu":  # a paper preset asks Ray for a GPU (the spec keeps it positive)
        plan = dataclasses.replace(plan, resources=dataclasses.replace(plan.resources, num_gpus=0.0))
    overrides = VARIANTS[variant]
    if overrides:
        if space == "rnn":
            raise ValueError(f"variant {variant!r} applies to the image spaces only")
        plan = dataclasses.replace(plan, child=dataclasses.replace(plan.child, **overrides))
    return plan


def load_data(plan: SearchPlan, size: str) -> Any:
    """The plan's dataset; paper-size rnn data gets PTB's vocabulary size."""
    from enas_core.data.loading import load_dataset

    options = PAPER_PTB_OPTIONS if size == "paper" and plan.space_name == "rnn" else {}
    return load_dataset(plan.dataset.name, plan.dataset.data_dir, plan.dataset.seed, **options)


def device_sync(device: str) -> Callable[[], None] | None:
    """``torch.cuda.synchronize`` on a CUDA device (so timings include queued kernels), else None."""
    if torch.device(device).type == "cuda":
        return torch.cuda.synchronize
    return None


def device_name(device: str) -> str:
    """``"cpu"`` or the GPU's name."""
    dev = torch.device(device)
    if dev.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(dev)}"
    return dev.type


@dataclass
class Workload:
    """A shared trainer and a controller trainer of one space and size, on one device."""

    space: str
    size: str
    device: str
    plan: SearchPlan
    data: Any
    shared: SharedTrainerLike
    controller: ControllerTrainer
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def unit(self) -> str:
        return "tokens" if self.space == "rnn" else "images"

    @property
    def items_per_step(self) -> int:
        """Images (or tokens) one training step consumes."""
        child = self.plan.child
        return int(child.batch_size * (child.bptt if self.space == "rnn" else 1))

    @property
    def sync(self) -> Callable[[], None] | None:
        return device_sync(self.device)

    def sample(self, n: int) -> list[list[int]]:
        return [list(s.tokens) for s in self.controller.sample(n)]

    def model(self) -> nn.Module:
        """The shared model inside the trainer."""
        return getattr(self.shared, "model")  # noqa: B009 - not in SharedTrainerLike, by design

    def config(self) -> dict[str, Any]:
        """What the result lines say about the workload."""
        child = {k: v for k, v in vars(self.plan.child).items() if not k.startswith("_")}
        return {
            "space": self.space,
            "size": self.size,
            "preset": PRESETS[self.size][self.space],
            "dataset": self.plan.dataset.name,
            "child": child,
            "space_params": dict(self.plan.space_params),
            "unit": self.unit,
            "items_per_step": self.items_per_step,
            "torch_threads": torch.get_num_threads(),
            **self.meta,
        }


def prepare(space: str, size: str, device: str = "cpu", seed: int = 0, variant: str = "fp32") -> Workload:
    """Build the workload (data on the device, shared trainer, controller trainer)."""
    plan = plan_for(space, size, device, variant)
    data = load_data(plan, size)
    shared = make_shared_trainer(plan.space(), plan.child, data, seed, device)
    controller = ControllerTrainer(plan.space(), plan.controller, plan.controller_train, seed)
    work = Workload(space, size, device, plan, data, shared, controller, {"variant": variant})
    work.meta["shared_parameters"] = sum(p.numel() for p in work.model().parameters())
    if space == "rnn":
        work.meta["vocab_size"] = int(data.vocab_size)
    return work


def warm_up(work: Workload, steps: int = 2) -> None:
    """A few training steps and one reward pass (allocator, kernel selection, lazy init)."""
    work.shared.train(work.sample(steps), 0)
    work.shared.rewards(work.sample(1))
    sync = work.sync
    if sync is not None:
        sync()


def train_seconds(work: Workload, archs: Sequence[list[int]], chunk: int = 64) -> float:
    """Seconds to train one minibatch per architecture, in chunks like the runner's."""
    import time

    sync = work.sync
    if sync is not None:
        sync()
    start = time.perf_counter()
    for i in range(0, len(archs), chunk):
        work.shared.train([list(a) for a in archs[i : i + chunk]], 0)
    if sync is not None:
        sync()
    return time.perf_counter() - start


def free(*objects: Any) -> None:
    """Drop references and return cached device memory."""
    del objects
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


# --- static children --------------------------------------------------------------------------------
def static_child(work: Workload, tokens: Sequence[int]) -> nn.Module:
    """The search-layout child of ``tokens`` with copies of the shared weights on its path."""
    model = work.model()
    if work.space == "micro":
        from enas_core.zoo.micro.shared import SearchMicroChild as MicroChild

        child: nn.Module = MicroChild.from_shared(model, tokens)  # type: ignore[arg-type]
    elif work.space == "macro":
        from enas_core.zoo.macro.shared import SearchMacroChild as MacroChild

        child = MacroChild.from_shared(model, tokens)  # type: ignore[arg-type]
    else:
        from enas_core.zoo.rnn.shared import SearchRnnChild as RnnChild

        child = RnnChild.from_shared(model, tokens)  # type: ignore[arg-type]
    return child.to(work.device).train()


class ImageChildTrainer:
    """SGD steps on a static image child with the shared trainer's own recipe and parts: the
    minibatches and augmentation of a run drawn at once and uploaded (``draw_augment``), applied on
    the device (``apply_augment``), ``runtime.make_sgd`` (fused where possible), autocast and
    channels_last per the config, ``image_trainer.sgd_step`` (loss + aux, path L2, clipping)."""

    def __init__(
        self, child: nn.Module, work: Workload, seed: int = 0, compile_mode: str | None = None
    ) -> None:
        from enas_core.data.base import BatchStream
        from enas_core.runtime import make_sgd, memory_format

        self.child, self.cfg, self.device = (child, work.plan.child, torch.device(work.device))
        self.data = work.data.to(self.device)
        self.optimizer = make_sgd(
            child.parameters(), self.cfg.lr_max, self.cfg.momentum, self.cfg.nesterov, self.device
        )
        self.stream = BatchStream(len(self.data.train_y), self.cfg.batch_size, seed)
        self.generator = torch.Generator().manual_seed(seed)
        self.memory_format = memory_format(getattr(self.cfg, "channels_last", False))
        child.to(memory_format=self.memory_format)  # type: ignore[call-overload]
        forward = getattr(child, "forward_aux", None) or (lambda x: (child(x), None))
        self.forward = maybe_compile(forward, compile_mode)

    def run(self, steps: int) -> None:
        """``steps`` SGD steps, each on the next minibatch."""
        from enas_core.data.base import apply_augment, draw_augment
        from enas_core.image_trainer import sgd_step
        from enas_core.runtime import autocast, upload

        d, c = self.data, self.cfg
        idx = upload(self.stream.take(steps), self.device)  # (S, B)
        draw = draw_augment(
            self.generator, steps, idx.shape[1], (d.image_size, d.image_size), d.pad, d.flip, c.cutout
        )
        draw = draw.to(self.device, upload)
        self.child.train()
        for i in range(steps):
            x = apply_augment(d.train_x[idx[i]], draw.row(i), d.pad, d.flip, c.cutout)
            x = x.contiguous(memory_format=self.memory_format)  # (B, C, H, W)
            self.optimizer.zero_grad(set_to_none=True)
            with autocast(self.device, getattr(c, "precision", "fp32")):
                out = self.forward(x)
            sgd_step(self.child, self.optimizer, out, d.train_y[idx[i]], c.aux_weight, c.l2, c.grad_clip)

    def step(self) -> None:
        self.run(1)


class LMChildTrainer:
    """One SGD step per call on a static rnn child (one BPTT window, hidden state carried), the
    shared LM trainer's recipe minus its per-step host sync."""

    def __init__(
        self, child: nn.Module, work: Workload, seed: int = 0, compile_mode: str | None = None
    ) -> None:
        from enas_core.lm import TokenStream

        self.child, self.cfg, self.device = (child, work.plan.child, torch.device(work.device))
        self.optimizer = torch.optim.SGD(child.parameters(), lr=self.cfg.lr_max)
        batched = work.data.batchify("train", self.cfg.batch_size, self.device)
        self.stream = TokenStream(batched, self.cfg.bptt)
        self.hidden: Tensor = child.init_hidden(self.cfg.batch_size)  # type: ignore[operator]
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        self.forward = maybe_compile(child, compile_mode)

    def step(self) -> None:
        from enas_core.lm import lm_loss, path_l2

        x, y, wrapped = self.stream.next()  # (T, B), (T, B)
        if wrapped:
            self.hidden = self.child.init_hidden(self.cfg.batch_size)  # type: ignore[operator]
        self.optimizer.zero_grad(set_to_none=True)
        logits, hidden = self.forward(x, self.hidden, self.generator)  # (T, B, V), (B, H)
        loss = lm_loss(logits, y)
        if self.cfg.l2 > 0:
            loss = loss + self.cfg.l2 * path_l2(self.child)  # type: ignore[arg-type]
        loss.backward()
        if self.cfg.grad_clip > 0:
            nn.utils.clip_grad_norm_(list(self.child.parameters()), self.cfg.grad_clip)
        self.optimizer.step()
        self.hidden = hidden.detach()

    def run(self, steps: int) -> None:
        for _ in range(steps):
            self.step()


def child_trainer(
    work: Workload, tokens: Sequence[int], compile_mode: str | None = None
) -> ImageChildTrainer | LMChildTrainer:
    """A static child of ``tokens`` and its one-step trainer (``compile_mode``: None eager,
    "default" or another ``torch.compile`` mode such as "reduce-overhead")."""
    child = static_child(work, tokens)
    if work.space == "rnn":
        return LMChildTrainer(child, work, compile_mode=compile_mode)
    return ImageChildTrainer(child, work, compile_mode=compile_mode)


def maybe_compile(fn: Callable[..., Any], compile_mode: str | None) -> Callable[..., Any]:
    """``fn`` itself (None) or ``torch.compile(fn)`` with the mode ("default": torch's default)."""
    if compile_mode is None:
        return fn
    return torch.compile(fn, mode=None if compile_mode == "default" else compile_mode)  # type: ignore[no-any-return]


def steps_seconds(run: Callable[[int], None], steps: int, sync: Callable[[], None] | None) -> float:
    """Seconds for ``run(steps)`` (device work included)."""
    import time

    if sync is not None:
        sync()
    start = time.perf_counter()
    run(steps)
    if sync is not None:
        sync()
    return time.perf_counter() - start


def config_of(obj: Any) -> dict[str, Any]:
    """A dataclass config as a plain dict (for result lines)."""
    if isinstance(obj, Mapping):
        return dict(obj)
    return {k: v for k, v in vars(obj).items() if not k.startswith("_")}
