"""The standalone NASNet child, final layout (copied into model.py; torch only).

Built from the decoded genotype (`NasnetSpace.structured`: per cell the blocks' input states, op
names and combine method, and the concatenated states), so model.py decodes no tokens.

Ops are built by name from `NASNET_OP_REGISTRY` {name -> constructor(channels, stride)}; each maps C
channels to C. In a reduction cell the ops that read a cell input have stride 2 (identity becomes a
factorized reduction), as in NASNet and ENAS's final child.

Network (ENAS micro's final layout): stem 3x3 conv to 3C + BN, num_layers + 2 cells with reductions
at p and 2p + 1 (p = num_layers // 3) where C doubles. A cell brings its inputs to C channels
(factorized reduction when h_{i-1} is twice as large, 1x1 ReLU-conv-BN when the channels differ),
applies a 1x1 ReLU-conv-BN to h_i, runs its blocks (drop path on every non-identity op's output;
an add block sums the two results, a concat block concatenates them and projects the 2C channels
back to C with a 1x1 ReLU-conv-BN) and concatenates its unused states (a reduction cell
factorized-reduces an unused cell input first). Head: ReLU -> global average pool -> dropout ->
FC (no bias); optional auxiliary head after cell 2p + 2 (training only).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from enas_core.zoo.cell_stack import FinalCellFrame, FinalCellStack, ImageNetConfig
from enas_core.zoo.image_ops import (
    FactorizedReduce,
    OpFactory,
    Pool,
    ReLUConvBN,
    SepConv,
    bn,
    image_example_input,
    image_train_step,
)

# --- model.py body ---
# ---------------------------------------------------------------------------------------------
# the NASNet ops and child (final layout)


class ConvPair(nn.Module):
    """ReLU -> 1xk conv (stride 1, s) -> kx1 conv (stride s, 1) -> BN: NASNet's "1xk then kx1"."""

    def __init__(self, channels: int, kernel: int, stride: int) -> None:
        super().__init__()
        pad = kernel // 2
        self.conv1 = nn.Conv2d(channels, channels, (1, kernel), (1, stride), (0, pad), bias=False)
        self.conv2 = nn.Conv2d(channels, channels, (kernel, 1), (stride, 1), (pad, 0), bias=False)
        self.bn = bn(channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.bn(self.conv2(self.conv1(F.relu(x))))  # (B, C, H/stride, W/stride)


class DilConv(nn.Module):
    """ReLU -> 3x3 conv with dilation 2 (padding 2) -> BN: NASNet's "3x3 dilated convolution"."""

    def __init__(self, channels: int, stride: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride, 2, dilation=2, bias=False)
        self.bn = bn(channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.bn(self.conv(F.relu(x)))  # (B, C, H/stride, W/stride)


def _identity(channels: int, stride: int) -> nn.Module:
    return FactorizedReduce(channels, channels) if stride == 2 else nn.Identity()


NASNET_OP_REGISTRY: dict[str, OpFactory] = {
    "identity": _identity,
    "conv_1x3_3x1": lambda c, s: ConvPair(c, 3, s),
    "conv_1x7_7x1": lambda c, s: ConvPair(c, 7, s),
    "dil_conv_3x3": DilConv,
    "avg_pool_3x3": lambda c, s: Pool("avg", s, 3),
    "max_pool_3x3": lambda c, s: Pool("max", s, 3),
    "max_pool_5x5": lambda c, s: Pool("max", s, 5),
    "max_pool_7x7": lambda c, s: Pool("max", s, 7),
    "conv_1x1": lambda c, s: ReLUConvBN(c, c, 1, s),
    "conv_3x3": lambda c, s: ReLUConvBN(c, c, 3, s),
    "sep_conv_3x3": lambda c, s: SepConv(c, c, 3, s),
    "sep_conv_5x5": lambda c, s: SepConv(c, c, 5, s),
    "sep_conv_7x7": lambda c, s: SepConv(c, c, 7, s),
}


def combine(ys: list[Tensor], how: str, project: nn.Module | None) -> Tensor:
    """A block's two results: their sum ("add"), or their concatenation projected back to C."""
    if how == "concat":
        assert project is not None
        return project(torch.cat(ys, dim=1))  # (B, 2C, H, W) -> (B, C, H, W)
    return ys[0] + ys[1]


@dataclass(frozen=True)
class NasnetNetConfig(ImageNetConfig):
    """Shape of the network (`ImageNetConfig`'s fields) and the cell's block count."""

    num_blocks: int = 5


class NasnetCell(FinalCellFrame):
    """One final-layout cell of a decoded cell {"blocks": [{"inputs", "ops", "combine"}], "concat"}."""

    def __init__(
        self, c_pp: int, c_p: int, c: int, reduce_pp: bool, reduction: bool, cell: Mapping[str, Any]
    ) -> None:
        blocks = [(tuple(b["inputs"]), tuple(b["ops"]), b["combine"]) for b in cell["blocks"]]
        super().__init__(c_pp, c_p, c, reduce_pp, reduction, NASNET_OP_REGISTRY, [b[:2] for b in blocks])
        self.blocks = blocks
        self.concat = [int(i) for i in cell["concat"]]
        self.project = nn.ModuleDict(
            {str(k): ReLUConvBN(2 * c, c, 1) for k, (_, _, how) in enumerate(self.blocks) if how == "concat"}
        )
        self.shrink = self._loose_reducers(self.concat, c, reduction)
        self.out_channels = len(self.concat) * c

    def forward(self, s0: Tensor, s1: Tensor, keep_prob: float) -> Tensor:
        states = self._inputs(s0, s1)
        for k, (inputs, ops, how) in enumerate(self.blocks):
            ys = self._node_results(k, inputs, ops, states, keep_prob)
            states.append(combine(ys, how, self.project[str(k)] if how == "concat" else None))
        return self._concat_loose(states, self.concat, self.shrink)


class NasnetNet(FinalCellStack[NasnetNetConfig]):
    """The final network of one decoded NASNet genotype ({"normal": cell, "reduce": cell}).
    `forward(x)` -> logits (B, num_classes); `forward_aux(x)` -> (logits, aux logits or None)."""

    def __init__(self, structured: Mapping[str, Any], config: NasnetNetConfig) -> None:
        super().__init__(config, structured, NasnetCell)


def build_model_from(genotype: Mapping[str, Any], network: Mapping[str, Any]) -> nn.Module:
    """The NASNet child of a genotype dict (its "structured" form) with the shape in `network`
    (keys: NasnetNetConfig's fields)."""
    return NasnetNet(genotype["structured"], NasnetNetConfig.from_network(network))


example_input = image_example_input
train_step = image_train_step
