"""CNN building blocks shared by the micro (and macro) models.

All convolutions have no bias (a BatchNorm follows), BN momentum 0.1 / eps 1e-5 (PyTorch
convention), He-normal (fan-in) init as in E's `create_weight`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

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
    """ENAS separable conv: (ReLU -> depthwise kxk -> pointwise 1x1 -> BN) twice.

    The first depthwise conv carries the stride (final reduction cells); the first pointwise
    maps c_in -> c_out, the second c_out -> c_out.
    """

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
    """ReLU -> FactorizedReduce (E's calibration of a higher-resolution input)."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.reduce = FactorizedReduce(c_in, c_out)

    def forward(self, x: Tensor) -> Tensor:
        return self.reduce(F.relu(x))


def pool3x3(kind: int, x: Tensor, stride: int = 1) -> Tensor:
    """kind 2: average pool (padding excluded from the mean), kind 3: max pool; 3x3, same padding."""
    if kind == 2:
        return F.avg_pool2d(x, 3, stride, 1, count_include_pad=False)
    return F.max_pool2d(x, 3, stride, 1)


class Pool(nn.Module):
    """3x3 average (kind 2) or max (kind 3) pooling as a module."""

    def __init__(self, kind: int, stride: int = 1) -> None:
        super().__init__()
        self.kind, self.stride = kind, stride

    def forward(self, x: Tensor) -> Tensor:
        return pool3x3(self.kind, x, self.stride)


class Calibrate(nn.Module):
    """E's `_maybe_calibrate_size`: bring a cell's two inputs to (c_out, same H, W).

    Input 0: higher resolution -> ReLU + factorized reduction; else channel mismatch -> ReLU-1x1-BN.
    Input 1: channel mismatch -> ReLU-1x1-BN.
    """

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
    """ReLU -> avgpool 5 stride 3 valid -> 1x1 conv 128 + BN + ReLU -> full-spatial conv 768 + BN
    + ReLU -> GAP -> FC (no bias). `spatial` is the input's H (= W)."""

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


def count_parameters(module: nn.Module, exclude: str | None = None) -> int:
    """Number of parameters, optionally excluding those whose name starts with `exclude`."""
    return sum(
        p.numel() for name, p in module.named_parameters() if exclude is None or not name.startswith(exclude)
    )


@torch.no_grad()
def count_macs(module: nn.Module, example: Tensor) -> int:
    """Multiply-accumulates of one forward of `example` through the conv and linear layers,
    per input sample (hooks; the module is run in eval mode and restored)."""
    total = 0

    def hook(m: nn.Module, inputs: tuple[Tensor, ...], out: Tensor) -> None:
        nonlocal total
        if isinstance(m, nn.Conv2d):
            per_out = (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]
            total += out[0].numel() * per_out
        elif isinstance(m, nn.Linear):
            total += out[0].numel() * m.in_features

    handles = [
        m.register_forward_hook(hook) for m in module.modules() if isinstance(m, nn.Conv2d | nn.Linear)
    ]
    was_training = module.training
    module.eval()
    try:
        module(example[:1])
    finally:
        module.train(was_training)
        for h in handles:
            h.remove()
    return total
