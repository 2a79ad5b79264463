"""The shared-weight NASNet search network (path-only) and the builders the trainers call.

In the spirit of ENAS micro's `SharedMicroNet` (search layout): stem, num_layers + 2 cells with
reductions at p and 2p + 1, head. A reduction layer first factorized-reduces the previous output
and then runs its cell at stride 1. Every cell position owns its weights; inside a cell an op with
weights is indexed by (block, input slot, input state, op name), so a sampled genotype selects one
module per slot; parameter-free ops (identity, pools) are shared. A concat block owns one 2C -> C
projection. The cell output is concat(unused states) -> ReLU -> 1x1 conv whose weight is assembled
from per-state slices -> BN, back to C channels. `forward(x, tokens)` runs only the sampled ops, so
only they get gradients.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from enas_core.zoo.cell_network import trainer_network
from enas_core.zoo.cell_stack import CellStack
from enas_core.zoo.image_ops import (
    Calibrate,
    FactorizedReduce,
    ReLUConvBN,
    bn,
    create_op,
)
from enas_core.zoo.nasnet.child import (
    NASNET_OP_REGISTRY,
    NasnetNet,
    NasnetNetConfig,
    combine,
)
from enas_core.zoo.nasnet.space import (
    COMBINE_METHODS,
    NASNET_OPS,
    Block,
    NasnetSpace,
    loose_ends,
    network_config,
    split_cells,
)
from enas_core.zoo.search_ops import search_step


def _has_weights(name: str) -> bool:
    return any(True for _ in NASNET_OP_REGISTRY[name](2, 1).parameters())


WEIGHTED_OPS: tuple[str, ...] = tuple(name for name in NASNET_OPS if _has_weights(name))


class SharedCell(nn.Module):
    """One search-layout cell holding every candidate op of its position."""

    def __init__(self, c_pp: int, c_p: int, c: int, reduction: bool, num_blocks: int) -> None:
        super().__init__()
        self.reduction = reduction
        self.pre_reduce = FactorizedReduce(c_p, c) if reduction else None
        # a reduction cell's inputs are (previous output, its factorized reduction)
        self.calibrate = Calibrate(c_p, c, c, True) if reduction else Calibrate(c_pp, c_p, c, False)
        self.ops = nn.ModuleDict(
            {
                _key(k, slot, idx, name): create_op(NASNET_OP_REGISTRY, name, c, 1)
                for k in range(num_blocks)
                for slot in (0, 1)
                for idx in range(k + 2)
                for name in WEIGHTED_OPS
            }
        )
        self.free = {
            name: create_op(NASNET_OP_REGISTRY, name, c, 1) for name in NASNET_OPS if name not in WEIGHTED_OPS
        }
        self.project = nn.ModuleDict({str(k): ReLUConvBN(2 * c, c, 1) for k in range(num_blocks)})
        self.out_w = nn.ParameterDict(
            {str(i): nn.Parameter(torch.empty(c, c)) for i in range(num_blocks + 2)}
        )
        self.out_bn = bn(c)
        for w in self.out_w.values():
            nn.init.normal_(w, 0.0, math.sqrt(2.0 / c))

    def forward(self, s0: Tensor, s1: Tensor, blocks: Sequence[Block]) -> Tensor:
        states = list(self.calibrate(s0, s1))  # (B, C, H, W) each
        for k, block in enumerate(blocks):
            ys = []
            for slot, (idx, op) in enumerate(zip(block.inputs, block.ops, strict=True)):
                name = NASNET_OPS[op]
                module = self.free[name] if name in self.free else self.ops[_key(k, slot, idx, name)]
                ys.append(module(states[idx]))  # (B, C, H, W)
            how = COMBINE_METHODS[block.combine]
            states.append(combine(ys, how, self.project[str(k)] if how == "concat" else None))
        loose = loose_ends(blocks)
        out = torch.cat([states[i] for i in loose], dim=1)  # (B, n_loose * C, H, W)
        w = torch.cat([self.out_w[str(i)] for i in loose], dim=1)  # (C, n_loose * C)
        return self.out_bn(F.conv2d(F.relu(out), w[:, :, None, None]))  # (B, C, H, W)


def _key(block: int, slot: int, idx: int, name: str) -> str:
    return f"b{block}_s{slot}_i{idx}_{name}"


class SharedNasnetNet(CellStack[NasnetNetConfig]):
    """The shared-weight NASNet search network; `forward(x, tokens)` runs one genotype's path."""

    def __init__(self, config: NasnetNetConfig) -> None:
        super().__init__(config)
        c_pp = c_p = 3 * config.channels
        for slot in self.slots:
            c = slot.channels
            self._add(SharedCell(c_pp, c_p, c, slot.reduction, config.num_blocks), slot, c)
            c_pp, c_p = (c, c) if slot.reduction else (c_p, c)
        self._finish(c_p)

    def forward(self, x: Tensor, tokens: Sequence[int]) -> Tensor:
        """x (B, in_channels, H, W), tokens: one nasnet genotype -> logits (B, num_classes)."""
        return self.forward_aux(x, tokens, with_aux=False)[0]

    def forward_aux(
        self, x: Tensor, tokens: Sequence[int], with_aux: bool = True
    ) -> tuple[Tensor, Tensor | None]:
        """(logits, aux logits); aux is None unless training with an aux head."""
        normal, reduce = split_cells([int(t) for t in tokens], self.config.num_blocks)
        return self._stack(x, with_aux, lambda _, cell, s0, s1: search_step(cell, s0, s1, normal, reduce))


# --- builders (duck-typed configs: ChildConfig / RetrainConfig; data: ImageDataset) ------------
def _config(space: NasnetSpace, cfg: Any, data: Any, drop_path_keep: float = 1.0) -> NasnetNetConfig:
    return NasnetNetConfig(**trainer_network(network_config, space.params, cfg, data, drop_path_keep))


def build_shared(space: NasnetSpace, cfg: Any, data: Any) -> SharedNasnetNet:
    """The shared model for `space` from a ChildConfig-like `cfg` and an ImageDataset-like `data`."""
    return SharedNasnetNet(_config(space, cfg, data))


def build_final(space: NasnetSpace, tokens: Sequence[int], cfg: Any, data: Any) -> NasnetNet:
    """The final-layout child of `tokens` from a RetrainConfig-like `cfg`."""
    return NasnetNet(space.structured(tokens), _config(space, cfg, data, cfg.drop_path_keep))
