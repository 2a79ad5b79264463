"""The final layout of the micro CNN (E's `_fixed_layer` child), one genotype per network.

Each cell: calibrate its two inputs (factorized reduction of a higher-resolution input, else
ReLU-1x1-BN on a channel mismatch), ReLU-1x1-BN on input 1 ("layer base"), the nodes (sep convs
(ReLU-dw-pw-BN) x 2, 3x3 pools, identity), output = concat of the loose ends (inputs included).
In a reduction cell the ops reading cell inputs 0/1 run at stride 2, an identity on them becomes a
factorized reduction, and a loose input is factorized-reduced before the concat. Drop path on
non-identity ops, keep 1 - ((l + 1) / (L + 2)) * progress * (1 - drop_path_keep).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from enas_core.models.micro_common import (
    IDENTITY,
    SEP_KERNELS,
    MicroNetConfig,
    aux_layer,
    head,
    reduction_layers,
    split_cells,
    stem,
)
from enas_core.ops import (
    AuxHead,
    Calibrate,
    FactorizedReduce,
    Pool,
    ReLUConvBN,
    SepConv,
    drop_path,
    he_init,
    reduced_size,
)
from enas_core.spaces.micro import loose_ends


def _final_op(op: int, c: int, stride: int) -> nn.Module:
    if op in SEP_KERNELS:
        return SepConv(c, c, SEP_KERNELS[op], stride)
    if op == IDENTITY:
        return FactorizedReduce(c, c) if stride == 2 else nn.Identity()
    return Pool(op, stride)


class FinalCell(nn.Module):
    """E's `_fixed_layer`: calibrate, ReLU-1x1-BN on input 1, nodes, concat of loose ends.

    Output channels: len(loose ends) * c_out.
    """

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
    """The standalone micro child of one genotype (E's final model)."""

    def __init__(self, config: MicroNetConfig, tokens: Sequence[int]) -> None:
        super().__init__()
        self.config = config
        normal, reduce = split_cells(tokens, config.num_nodes)
        self.stem = stem(config)
        reductions = reduction_layers(config.num_layers)
        c_pp = c_p = 3 * config.channels
        c, level_pp, level_p = config.channels, 0, 0
        self.cells = nn.ModuleList()
        self.aux: AuxHead | None = None
        for layer in range(config.num_layers + 2):
            reduction = layer in reductions
            c = 2 * c if reduction else c
            cell = FinalCell(
                c_pp,
                c_p,
                c,
                level_pp != level_p,
                reduction,
                reduce if reduction else normal,
                config.num_nodes,
            )
            self.cells.append(cell)
            c_pp, c_p = c_p, cell.out_channels
            level_pp, level_p = level_p, level_p + int(reduction)
            if config.aux_head and layer == aux_layer(config.num_layers):
                self.aux = AuxHead(c_p, reduced_size(config.image_size, level_p), config.num_classes)
        self.classifier = nn.Linear(c_p, config.num_classes, bias=False)
        self.drop_path_progress = 0.0  # fraction of training done, set by the trainer
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
        return head(self.config, self.classifier, s1, self.training), aux
