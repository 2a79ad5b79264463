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
from dataclasses import dataclass, fields
from typing import Any, Generic, TypeVar

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


ConfigT = TypeVar("ConfigT", bound="ImageNetConfig")


@dataclass(frozen=True)
class ImageNetConfig:
    """Shape of a cell-stacking image network (a space's config adds its cell's own fields).
    `keep_prob` is the dropout keep probability before the classifier; `drop_path_keep` (final
    layout only) the drop-path keep probability of the last cell at the end of training (None: no
    drop path)."""

    num_layers: int = 6
    channels: int = 20
    in_channels: int = 3
    num_classes: int = 10
    image_size: int = 32
    keep_prob: float = 1.0
    aux_head: bool = False
    drop_path_keep: float | None = None

    @classmethod
    def from_network(cls: type[ConfigT], network: Mapping[str, Any]) -> ConfigT:
        """The config of a network dict (its keys that are fields of `cls`; the others ignored)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in network.items() if k in names})


def stack_reductions(num_layers: int) -> tuple[int, int]:
    """Indices of the two reduction cells among num_layers + 2 cells (p and 2p + 1, p = L // 3)."""
    p = num_layers // 3
    return p, 2 * p + 1


def stack_aux_layer(num_layers: int) -> int:
    """Index of the cell after which the auxiliary head reads (2p + 2: after the second reduction)."""
    return stack_reductions(num_layers)[1] + 1


@dataclass(frozen=True)
class CellSlot:
    """Where a cell stands: its index, whether it reduces, its channels and how many reductions
    lie at or before it."""

    layer: int
    reduction: bool
    channels: int
    level: int


def cell_slots(config: ImageNetConfig) -> list[CellSlot]:
    """num_layers + 2 cells, reductions at `stack_reductions`, C doubling at each."""
    reductions = stack_reductions(config.num_layers)
    slots, c, level = [], config.channels, 0
    for layer in range(config.num_layers + 2):
        reduction = layer in reductions
        c, level = (2 * c, level + 1) if reduction else (c, level)
        slots.append(CellSlot(layer, reduction, c, level))
    return slots


def cell_keep(layer: int, num_cells: int, keep: float, progress: float) -> float:
    """Drop-path keep probability of cell `layer`: 1 - (layer + 1) / num_cells * (1 - keep) at the
    end of training, ramped in linearly with `progress` (the fraction of training done)."""
    layer_keep = 1.0 - (layer + 1) / num_cells * (1.0 - keep)
    return 1.0 - min(1.0, progress) * (1.0 - layer_keep)


CellStep = Callable[[int, nn.Module, Tensor, Tensor], tuple[Tensor, Tensor]]
"""One cell's run in `CellStack._stack`: (layer, cell, s0, s1) -> the next (s0, s1)."""


class CellStack(nn.Module, Generic[ConfigT]):
    """What every cell-stacking image network shares (final and search layouts): the stem (3x3
    conv to 3C + BN), the cell slots, the aux head after the cell following the second reduction,
    the head (ReLU -> global average pool -> dropout -> classifier) and the drop-path ramp. A
    subclass appends its cells with `_add` and ends its constructor with `_finish`."""

    def __init__(self, config: ConfigT) -> None:
        super().__init__()
        self.config = config
        c3 = 3 * config.channels
        self.stem = nn.Sequential(nn.Conv2d(config.in_channels, c3, 3, 1, 1, bias=False), bn(c3))
        self.slots = cell_slots(config)
        self.aux_after = stack_aux_layer(config.num_layers)
        self.cells = nn.ModuleList()
        self.aux: AuxHead | None = None
        self.drop_path_progress = 0.0  # fraction of training done; drop path ramps up with it

    def _add(self, cell: nn.Module, slot: CellSlot, out_channels: int) -> None:
        self.cells.append(cell)
        if self.config.aux_head and slot.layer == self.aux_after:
            size = reduced_size(self.config.image_size, slot.level)
            self.aux = AuxHead(out_channels, size, self.config.num_classes)

    def _finish(self, out_channels: int) -> None:
        self.classifier = nn.Linear(out_channels, self.config.num_classes, bias=False)
        self._init_weights()

    def _init_weights(self) -> None:
        he_init(self)

    def set_drop_path_progress(self, fraction: float) -> None:
        """Fraction of training done (drop path ramps up with it)."""
        self.drop_path_progress = float(fraction)

    def _cell_keep(self, layer: int) -> float:
        """Drop-path keep probability of cell `layer` now (1 in eval mode or without drop path)."""
        keep = self.config.drop_path_keep
        if keep is None or not self.training:
            return 1.0
        return cell_keep(layer, len(self.slots), keep, self.drop_path_progress)

    def _stack(self, x: Tensor, with_aux: bool, step: CellStep) -> tuple[Tensor, Tensor | None]:
        """(logits (B, num_classes), aux logits or None) of images `x`, each cell run by `step`."""
        s0 = s1 = self.stem(x)  # (B, 3C, H, W)
        aux = None
        for layer, cell in enumerate(self.cells):
            s0, s1 = step(layer, cell, s0, s1)
            if with_aux and self.aux is not None and self.training and layer == self.aux_after:
                aux = self.aux(s1)  # (B, num_classes)
        return self._head(s1), aux

    def _head(self, x: Tensor) -> Tensor:
        """ReLU -> global average pool -> dropout -> classifier: (B, num_classes)."""
        h = F.dropout(F.relu(x).mean(dim=(2, 3)), 1.0 - self.config.keep_prob, self.training)  # (B, C)
        return self.classifier(h)


FinalCellFactory = Callable[[int, int, int, bool, bool, Mapping[str, Any]], nn.Module]
"""A final-layout cell's constructor: (c_pp, c_p, c, reduce_pp, reduction, decoded cell) -> the
cell; it concatenates the decoded cell's ``"concat"`` states of c channels each."""


class FinalCellStack(CellStack[ConfigT]):
    """The final layout of a cell-stacking network of one decoded genotype ``{"normal": cell,
    "reduce": cell}``: each slot's cell built by `make_cell`, run with the drop-path ramp.
    `forward(x)` -> logits (B, num_classes); `forward_aux(x)` -> (logits, aux logits or None)."""

    def __init__(self, config: ConfigT, structured: Mapping[str, Any], make_cell: FinalCellFactory) -> None:
        super().__init__(config)
        c_pp = c_p = 3 * config.channels
        level_pp = level_p = 0
        for slot in self.slots:
            part = structured["reduce" if slot.reduction else "normal"]
            cell = make_cell(c_pp, c_p, slot.channels, level_pp != level_p, slot.reduction, part)
            c_pp, c_p = c_p, len(part["concat"]) * slot.channels
            level_pp, level_p = level_p, slot.level
            self._add(cell, slot, c_p)
        self._finish(c_p)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_aux(x, with_aux=False)[0]

    def forward_aux(self, x: Tensor, with_aux: bool = True) -> tuple[Tensor, Tensor | None]:
        return self._stack(
            x, with_aux, lambda layer, cell, s0, s1: (s1, cell(s0, s1, self._cell_keep(layer)))
        )


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
