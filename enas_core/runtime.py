"""Device, precision, optimizer, RNG and schedule helpers shared by the trainers.

The GPU path of the trainers rests on these: `upload` moves a CPU tensor to the device without a
host synchronisation (pinned memory, non_blocking), `autocast` is the optional bf16 forward pass,
`make_sgd` picks PyTorch's fused SGD where the device has it (one kernel for every parameter,
also on the CPU, so CPU tests run the same optimizer code as a GPU), `PrivateRng` keeps each
trainer's dropout/drop-path randomness its own.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

import torch
from torch import Tensor, nn

try:  # the devices with fused optimizer kernels (CPU and CUDA in current PyTorch)
    from torch.utils._foreach_utils import _get_fused_kernels_supported_devices

    FUSED_DEVICES: frozenset[str] = frozenset(_get_fused_kernels_supported_devices())
except ImportError:  # an older PyTorch: CUDA only
    FUSED_DEVICES = frozenset({"cuda"})


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


def upload(t: Tensor, device: torch.device) -> Tensor:
    """`t` (CPU) on `device`; to a GPU through pinned memory with non_blocking=True, so the copy
    is queued on the stream instead of synchronising the host."""
    if device.type != "cuda":
        return t.to(device)
    return t.pin_memory().to(device, non_blocking=True)


def autocast(device: torch.device, precision: str) -> AbstractContextManager[Any]:
    """bfloat16 autocast for `precision == "bf16"` (CPU or CUDA), else a no-op context."""
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return nullcontext()


def memory_format(channels_last: bool) -> torch.memory_format:
    """torch.channels_last when asked, else torch.contiguous_format."""
    return torch.channels_last if channels_last else torch.contiguous_format


def make_sgd(
    params: Iterable[nn.Parameter],
    lr: float,
    momentum: float,
    nesterov: bool,
    device: torch.device,
    impl: str = "auto",
) -> torch.optim.SGD:
    """SGD (Nesterov when momentum > 0 and asked). impl "auto": fused where the device supports
    it (CPU and CUDA in current PyTorch), else foreach; "fused" | "foreach" | "loop" force one.
    Parameters without a gradient are skipped by every implementation (path-only training).

    The momentum buffers start as zeros for every parameter (`init_momentum`): the first update
    of a buffer is then m * 0 + grad = grad, what PyTorch's lazy first step does, and the fused
    kernel, which needs all buffers or none, works when parameters join the path at different
    steps."""
    options: dict[str, Any] = {"lr": lr, "momentum": momentum, "nesterov": nesterov and momentum > 0}
    if impl == "auto":
        impl = "fused" if device.type in FUSED_DEVICES else "foreach"
    if impl == "fused":
        options["fused"] = True
    elif impl == "foreach":
        options["foreach"] = True
    elif impl != "loop":
        raise ValueError(f"unknown SGD implementation {impl!r} (auto | fused | foreach | loop)")
    optimizer = torch.optim.SGD(params, **options)
    init_momentum(optimizer)
    return optimizer


def init_momentum(optimizer: torch.optim.Optimizer) -> None:
    """Give every parameter of an SGD optimizer with momentum a zero momentum buffer where it has
    none (after construction, and after loading a state saved without them)."""
    for group in optimizer.param_groups:
        if group.get("momentum", 0) and group.get("dampening", 0) == 0:
            for p in group["params"]:
                state = optimizer.state[p]
                if state.get("momentum_buffer") is None:
                    state["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.preserve_format)


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
