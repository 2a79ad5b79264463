"""Building blocks of the image spaces' networks (torch only; copied into the exported model.py).

The one definition of the CNN ops: every image space's final child (`enas_core.zoo.<name>.child`)
and shared model build on these. `codegen` copies the text below the `BODY_MARKER` line into the
standalone model.py, so nothing here may import anything but torch and the standard library.

Ops are built BY NAME from a space's registry (`create_op(registry, name, channels, stride)`), in
the spirit of timm's `create_model` and DARTS' `OPS`: a registry maps each op name of the space to a
constructor ``(channels, stride) -> nn.Module``. All convolutions have no bias (a BatchNorm follows),
BN momentum 0.1 / eps 1e-5 (PyTorch convention), He-normal (fan-in) init as in E's `create_weight`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# --- model.py body ---
# ---------------------------------------------------------------------------------------------
# building blocks (convs have no bias: a BatchNorm follows; He-normal fan-in init)

BN_MOMENTUM = 0.1
BN_EPS = 1e-5


def bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, momentum=BN_MOMENTUM, eps=BN_EPS)


def he_init(module: nn.Module) -> None:
    """He-normal (fan-in, ReLU gain) for every conv / linear weight; BN to (1, 0)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.Linear):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class ReLUConvBN(nn.Module):
    """ReLU -> kxk conv (stride, same padding) -> BN."""

    def __init__(self, c_in: int, c_out: int, kernel: int = 1, stride: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, bias=False)
        self.bn = bn(c_out)

    def forward(self, x: Tensor) -> Tensor:
        return self.bn(self.conv(F.relu(x)))  # (B, c_out, H/stride, W/stride)


class SepConv(nn.Module):
    """(ReLU -> depthwise kxk -> pointwise 1x1 -> BN) twice; the first depthwise carries the stride."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1) -> None:
        super().__init__()
        pad = kernel // 2
        self.dw1 = nn.Conv2d(c_in, c_in, kernel, stride, pad, groups=c_in, bias=False)
        self.pw1 = nn.Conv2d(c_in, c_out, 1, bias=False)
        self.bn1 = bn(c_out)
        self.dw2 = nn.Conv2d(c_out, c_out, kernel, 1, pad, groups=c_out, bias=False)
        self.pw2 = nn.Conv2d(c_out, c_out, 1, bias=False)
        self.bn2 = bn(c_out)

    def forward(self, x: Tensor) -> Tensor:
        x = self.bn1(self.pw1(self.dw1(F.relu(x))))  # (B, c_out, H/stride, W/stride)
        return self.bn2(self.pw2(self.dw2(F.relu(x))))  # (B, c_out, H/stride, W/stride)


class FactorizedReduce(nn.Module):
    """Halve H and W without dropping pixels: two 1x1 stride-2 convs, one on x and one on x
    shifted by one pixel (zero pad right/bottom), concatenated to c_out channels, then BN.
    No ReLU inside (callers add one where E does). Odd sizes give ceil(H/2)."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        if c_out % 2:
            raise ValueError(f"factorized reduction needs an even channel count, got {c_out}")
        self.conv1 = nn.Conv2d(c_in, c_out // 2, 1, 2, bias=False)
        self.conv2 = nn.Conv2d(c_in, c_out // 2, 1, 2, bias=False)
        self.bn = bn(c_out)

    def forward(self, x: Tensor) -> Tensor:
        shifted = F.pad(x, (0, 1, 0, 1))[:, :, 1:, 1:]  # (B, C, H, W) moved up-left by one pixel
        out = torch.cat([self.conv1(x), self.conv2(shifted)], dim=1)  # (B, c_out, ceil(H/2), ceil(W/2))
        return self.bn(out)


class ReLUFactorizedReduce(nn.Module):
    """ReLU -> FactorizedReduce."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.reduce = FactorizedReduce(c_in, c_out)

    def forward(self, x: Tensor) -> Tensor:
        return self.reduce(F.relu(x))


POOL_KINDS = ("avg", "max")


def pool(kind: str, x: Tensor, stride: int = 1, kernel: int = 3) -> Tensor:
    """``kind`` "avg" (padding excluded from the mean) or "max" pooling, kxk, same padding."""
    if kind == "avg":
        return F.avg_pool2d(x, kernel, stride, kernel // 2, count_include_pad=False)
    return F.max_pool2d(x, kernel, stride, kernel // 2)


class Pool(nn.Module):
    """kxk average or max pooling (``kind`` "avg" | "max") as a module, same padding."""

    def __init__(self, kind: str, stride: int = 1, kernel: int = 3) -> None:
        super().__init__()
        if kind not in POOL_KINDS:
            raise ValueError(f"pool kind must be one of {POOL_KINDS}, not {kind!r}")
        self.kind, self.stride, self.kernel = kind, stride, kernel

    def forward(self, x: Tensor) -> Tensor:
        return pool(self.kind, x, self.stride, self.kernel)


class Calibrate(nn.Module):
    """Bring a cell's two inputs to (c_out, same H, W): reduce or 1x1-project them where needed."""

    def __init__(self, c_pp: int, c_p: int, c_out: int, reduce_pp: bool) -> None:
        super().__init__()
        self.pp: nn.Module
        if reduce_pp:
            self.pp = ReLUFactorizedReduce(c_pp, c_out)
        elif c_pp != c_out:
            self.pp = ReLUConvBN(c_pp, c_out, 1)
        else:
            self.pp = nn.Identity()
        self.p: nn.Module = ReLUConvBN(c_p, c_out, 1) if c_p != c_out else nn.Identity()

    def forward(self, s0: Tensor, s1: Tensor) -> tuple[Tensor, Tensor]:
        return self.pp(s0), self.p(s1)  # both (B, c_out, H, W)


def aux_pool_geometry(spatial: int) -> tuple[int, int, int]:
    """(pool kernel, pool stride, pooled size) of the aux head for a `spatial` x `spatial` input:
    E's 5x5 stride-3 valid average pool, shrunk to fit inputs smaller than 5."""
    kernel = min(5, spatial)
    stride = 3
    return kernel, stride, (spatial - kernel) // stride + 1


class AuxHead(nn.Module):
    """Auxiliary classifier (training only): ReLU -> avgpool -> 1x1 conv 128 -> conv 768 -> FC."""

    def __init__(self, c_in: int, spatial: int, num_classes: int) -> None:
        super().__init__()
        kernel, stride, pooled = aux_pool_geometry(spatial)
        self.pool = nn.AvgPool2d(kernel, stride)
        self.proj = nn.Conv2d(c_in, 128, 1, bias=False)
        self.bn1 = bn(128)
        self.conv = nn.Conv2d(128, 768, pooled, bias=False)
        self.bn2 = bn(768)
        self.fc = nn.Linear(768, num_classes, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        x = self.pool(F.relu(x))  # (B, c_in, p, p)
        x = F.relu(self.bn1(self.proj(x)))  # (B, 128, p, p)
        x = F.relu(self.bn2(self.conv(x)))  # (B, 768, 1, 1)
        return self.fc(x.mean(dim=(2, 3)))  # (B, num_classes)


def drop_path(x: Tensor, keep_prob: float) -> Tensor:
    """Zero whole samples with probability 1 - keep_prob, scale the rest by 1 / keep_prob."""
    if keep_prob >= 1.0:
        return x
    mask = torch.rand(x.shape[0], 1, 1, 1, device=x.device, dtype=x.dtype) < keep_prob  # (B, 1, 1, 1)
    return x * mask / keep_prob


def reduced_size(size: int, times: int) -> int:
    """Spatial size after `times` stride-2 reductions (ceil division each time)."""
    for _ in range(times):
        size = math.ceil(size / 2)
    return size


OpFactory = Callable[[int, int], nn.Module]
"""An op constructor of a space's registry: (channels, stride) -> the op's module."""


def create_op(registry: Mapping[str, OpFactory], name: str, channels: int, stride: int = 1) -> nn.Module:
    """The op `name` of a space's op registry, built for `channels` channels at `stride`.

    Raises:
        KeyError: the registry has no op of that name (names the known ones).
    """
    factory = registry.get(name)
    if factory is None:
        raise KeyError(f"unknown op {name!r} (known: {', '.join(registry)})")
    return factory(channels, stride)


def image_example_input(network: Mapping[str, Any], batch_size: int = 2) -> tuple[Tensor, ...]:
    """A random image batch ``(B, in_channels, S, S)`` of the network's input shape."""
    size = network["image_size"]
    return (torch.randn(batch_size, network["in_channels"], size, size),)


def image_train_step(
    model: nn.Module, network: Mapping[str, Any], inputs: tuple[Tensor, ...], lr: float = 0.05
) -> float:
    """One SGD step of cross-entropy on random labels; returns the loss before the step."""
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    labels = torch.randint(0, network["num_classes"], (inputs[0].shape[0],))  # (B,)
    loss = F.cross_entropy(model(*inputs), labels)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return float(loss.detach())
