"""The standalone micro (cell) child, final layout (copied into model.py; torch only).

Same computation and parameter names as `enas_core.models.micro.MicroChild(layout="final")`:
stem 3x3 conv to 3C + BN, num_layers + 2 cells with reductions at p and 2p + 1 (p = num_layers // 3)
where C doubles, each cell the concat of its loose ends; head ReLU -> global average pool ->
dropout -> FC (no bias); optional auxiliary head after cell 2p + 2 (training only).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from enas_core.export_templates.ops import (
    AuxHead,
    Calibrate,
    FactorizedReduce,
    Pool,
    ReLUConvBN,
    SepConv,
    bn,
    drop_path,
    he_init,
    image_example_input,
    image_train_step,
    reduced_size,
)

# --- model.py body ---
# ---------------------------------------------------------------------------------------------
# the micro child (final layout)

MICRO_OPS = ("sep_conv_3x3", "sep_conv_5x5", "avg_pool_3x3", "max_pool_3x3", "identity")
IDENTITY = 4
SEP_KERNELS = {0: 3, 1: 5}


@dataclass(frozen=True)
class MicroNetConfig:
    """Shape of the network; `drop_path_keep` is the last cell's keep probability at the end of
    training (None: no drop path), `keep_prob` the dropout keep probability before the classifier."""

    num_layers: int = 6
    channels: int = 20
    num_nodes: int = 5
    num_ops: int = 5
    in_channels: int = 3
    num_classes: int = 10
    image_size: int = 32
    keep_prob: float = 1.0
    aux_head: bool = False
    drop_path_keep: float | None = None


def loose_ends(cell: Sequence[int], num_nodes: int) -> list[int]:
    """Nodes (inputs included) that no computed node reads: the cell's output."""
    used = {cell[4 * k] for k in range(num_nodes)} | {cell[4 * k + 2] for k in range(num_nodes)}
    return [i for i in range(num_nodes + 2) if i not in used]


def reduction_layers(num_layers: int) -> tuple[int, int]:
    """Indices of the two reduction cells among num_layers + 2 cells."""
    p = num_layers // 3
    return p, 2 * p + 1


def aux_layer(num_layers: int) -> int:
    """Index of the cell after which the auxiliary head reads (2p + 2)."""
    return reduction_layers(num_layers)[1] + 1


def _final_op(op: int, c: int, stride: int) -> nn.Module:
    if op in SEP_KERNELS:
        return SepConv(c, c, SEP_KERNELS[op], stride)
    if op == IDENTITY:
        return FactorizedReduce(c, c) if stride == 2 else nn.Identity()
    return Pool(op, stride)


class FinalCell(nn.Module):
    """Calibrate the inputs, ReLU-1x1-BN on input 1, the nodes, concat of the loose ends."""

    def __init__(
        self,
        c_pp: int,
        c_p: int,
        c_out: int,
        reduce_pp: bool,
        reduction: bool,
        cell_tokens: Sequence[int],
        num_nodes: int,
    ) -> None:
        super().__init__()
        self.cell_tokens, self.num_nodes = tuple(cell_tokens), num_nodes
        self.calibrate = Calibrate(c_pp, c_p, c_out, reduce_pp)
        self.base = ReLUConvBN(c_out, c_out, 1)
        ops = []
        for k in range(num_nodes):
            for slot in (0, 1):
                idx, op = cell_tokens[4 * k + 2 * slot], cell_tokens[4 * k + 2 * slot + 1]
                ops.append(_final_op(op, c_out, 2 if reduction and idx < 2 else 1))
        self.ops = nn.ModuleList(ops)
        self.loose = loose_ends(cell_tokens, num_nodes)
        self.combine = nn.ModuleDict(
            {str(i): FactorizedReduce(c_out, c_out) for i in self.loose if reduction and i < 2}
        )
        self.out_channels = len(self.loose) * c_out

    def forward(self, s0: Tensor, s1: Tensor, keep_prob: float) -> Tensor:
        s0, s1 = self.calibrate(s0, s1)  # (B, C, H, W) each
        states = [s0, self.base(s1)]
        for k in range(self.num_nodes):
            total: Tensor | None = None
            for slot in (0, 1):
                idx, op = self.cell_tokens[4 * k + 2 * slot], self.cell_tokens[4 * k + 2 * slot + 1]
                y = self.ops[2 * k + slot](states[idx])  # (B, C, H / stride, W / stride)
                if op != IDENTITY and keep_prob < 1.0:
                    y = drop_path(y, keep_prob)
                total = y if total is None else total + y
            assert total is not None
            states.append(total)
        outs = [self.combine[str(i)](states[i]) if str(i) in self.combine else states[i] for i in self.loose]
        return torch.cat(outs, dim=1)  # (B, n_loose * C, H', W')


class FinalMicroNet(nn.Module):
    """The network of one micro genotype (normal cell tokens, then reduction cell tokens)."""

    def __init__(self, config: MicroNetConfig, tokens: Sequence[int]) -> None:
        super().__init__()
        self.config = config
        half = 4 * config.num_nodes
        normal, reduce = tuple(tokens[:half]), tuple(tokens[half:])
        c = config.channels
        self.stem = nn.Sequential(nn.Conv2d(config.in_channels, 3 * c, 3, 1, 1, bias=False), bn(3 * c))
        reductions = reduction_layers(config.num_layers)
        c_pp = c_p = 3 * c
        level_pp = level_p = 0
        self.cells = nn.ModuleList()
        self.aux: AuxHead | None = None
        for layer in range(config.num_layers + 2):
            reduction = layer in reductions
            c = 2 * c if reduction else c
            cell_tokens = reduce if reduction else normal
            cell = FinalCell(c_pp, c_p, c, level_pp != level_p, reduction, cell_tokens, config.num_nodes)
            self.cells.append(cell)
            c_pp, c_p = c_p, cell.out_channels
            level_pp, level_p = level_p, level_p + int(reduction)
            if config.aux_head and layer == aux_layer(config.num_layers):
                self.aux = AuxHead(c_p, reduced_size(config.image_size, level_p), config.num_classes)
        self.classifier = nn.Linear(c_p, config.num_classes, bias=False)
        self.drop_path_progress = 0.0  # fraction of training done; drop path ramps up with it
        he_init(self)

    def _cell_keep(self, layer: int) -> float:
        keep = self.config.drop_path_keep
        if keep is None or not self.training:
            return 1.0
        layer_keep = 1.0 - (layer + 1) / (self.config.num_layers + 2) * (1.0 - keep)
        return 1.0 - min(1.0, self.drop_path_progress) * (1.0 - layer_keep)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_aux(x, with_aux=False)[0]

    def forward_aux(self, x: Tensor, with_aux: bool = True) -> tuple[Tensor, Tensor | None]:
        s0 = s1 = self.stem(x)  # (B, 3C, H, W)
        aux = None
        for layer, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1, self._cell_keep(layer))
            if (
                with_aux
                and self.aux is not None
                and self.training
                and layer == aux_layer(self.config.num_layers)
            ):
                aux = self.aux(s1)  # (B, num_classes)
        h = F.relu(s1).mean(dim=(2, 3))  # (B, C)
        h = F.dropout(h, 1.0 - self.config.keep_prob, self.training)
        return self.classifier(h), aux  # (B, num_classes)


class MicroChild(nn.Module):
    """The standalone network of one micro genotype. `forward(x)` -> logits (B, num_classes);
    `forward_aux(x)` -> (logits, aux logits or None)."""

    def __init__(self, tokens: Sequence[int], config: MicroNetConfig) -> None:
        super().__init__()
        if len(tokens) != 8 * config.num_nodes:
            raise ValueError(f"a micro genotype has {8 * config.num_nodes} tokens, got {len(tokens)}")
        self.tokens = tuple(int(t) for t in tokens)
        self.config = config
        self.net = FinalMicroNet(config, self.tokens)

    def set_drop_path_progress(self, fraction: float) -> None:
        """Fraction of training done (drop path ramps up with it)."""
        self.net.drop_path_progress = float(fraction)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

    def forward_aux(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        return self.net.forward_aux(x)


def build_model_from(tokens: Sequence[int], network: dict[str, Any]) -> nn.Module:
    """The micro child of `tokens` with the shape in `network` (keys: MicroNetConfig's fields)."""
    names = {f.name for f in fields(MicroNetConfig)}
    return MicroChild(tokens, MicroNetConfig(**{k: v for k, v in network.items() if k in names}))


example_input = image_example_input
train_step = image_train_step
