"""The micro (cell) CNN's shared-weight search network (E's `_enas_layer`) and its builders.

Stacking, stem, head, config and the final child come from `enas_core.zoo.micro.child` (the one
definition of the final child); tokens are decoded by `enas_core.zoo.micro.space`.

* `SharedMicroNet` (search layout): path-only, only the sampled ops run. A reduction layer first
  factorized-reduces the previous output and then runs the cell at stride 1. Separable-conv
  weights are indexed by (node, input slot, input index, kernel) as in E; the cell output is
  concat(loose ends) -> ReLU -> 1x1 conv whose weight is assembled from per-node slices -> BN,
  back to C channels.
* `SearchMicroChild` (one genotype, search layout): the same computation as the shared net, built
  with only the path's modules and the same parameter names, so `from_shared` copies exactly the
  path's weights.
* `build_shared` / `build_final`: the plugin's model builders.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from enas_core.measure import count_parameters
from enas_core.zoo.cell_network import trainer_network
from enas_core.zoo.cell_stack import CellStack
from enas_core.zoo.image_ops import (
    Calibrate,
    FactorizedReduce,
    SepConv,
    bn,
    he_init,
    pool,
)
from enas_core.zoo.micro.child import IDENTITY, MicroChild, MicroNetConfig
from enas_core.zoo.micro.space import MicroSpace, cell_nodes, loose_ends, network_config, split_cells
from enas_core.zoo.search_ops import search_step

SEP_KERNELS = {"sep_conv_3x3": 3, "sep_conv_5x5": 5}
"""The search layout's separable convs by op name: their kernel (part of the parameter names)."""
SEARCH_POOLS = {"avg_pool_3x3": "avg", "max_pool_3x3": "max"}


# --- search layout ---------------------------------------------------------------------------
class SearchCell(nn.Module):
    """One search-layout cell. `cell_tokens` None: every candidate op (the shared model);
    given: only that cell's path (a child with the same parameter names)."""

    def __init__(
        self,
        c_pp: int,
        c_p: int,
        c_out: int,
        reduction: bool,
        num_nodes: int,
        cell_tokens: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        self.reduction, self.num_nodes, self.c_out = reduction, num_nodes, c_out
        self.pre_reduce = FactorizedReduce(c_p, c_out) if reduction else None
        if reduction:  # inputs become (previous output, its factorized reduction)
            self.calibrate = Calibrate(c_p, c_out, c_out, reduce_pp=True)
        else:
            self.calibrate = Calibrate(c_pp, c_p, c_out, reduce_pp=False)
        self.convs = nn.ModuleDict(
            {
                _conv_key(*key): SepConv(c_out, c_out, SEP_KERNELS[key[3]])
                for key in self._conv_keys(cell_tokens)
            }
        )
        outputs = range(num_nodes + 2) if cell_tokens is None else loose_ends(cell_tokens, num_nodes)
        self.out_w = nn.ParameterDict({str(i): nn.Parameter(torch.empty(c_out, c_out)) for i in outputs})
        self.out_bn = bn(c_out)
        for w in self.out_w.values():
            nn.init.normal_(w, 0.0, math.sqrt(2.0 / c_out))

    def _conv_keys(self, cell_tokens: Sequence[int] | None) -> list[tuple[int, int, int, str]]:
        if cell_tokens is None:
            return [
                (k, slot, i, op)
                for k in range(self.num_nodes)
                for slot in (0, 1)
                for i in range(k + 2)
                for op in SEP_KERNELS
            ]
        return [
            (k, slot, idx, op)
            for k, node in enumerate(cell_nodes(cell_tokens, self.num_nodes))
            for slot, (idx, op) in enumerate(node)
            if op in SEP_KERNELS
        ]

    def _op(self, x: Tensor, node: int, slot: int, idx: int, op: str) -> Tensor:
        if op in SEP_KERNELS:
            return self.convs[_conv_key(node, slot, idx, op)](x)
        if op == IDENTITY:
            return x
        return pool(SEARCH_POOLS[op], x)

    def forward(self, s0: Tensor, s1: Tensor, cell_tokens: Sequence[int]) -> Tensor:
        s0, s1 = self.calibrate(s0, s1)  # (B, C, H, W) each
        states = [s0, s1]
        for k, ((i1, o1), (i2, o2)) in enumerate(cell_nodes(cell_tokens, self.num_nodes)):
            states.append(self._op(states[i1], k, 0, i1, o1) + self._op(states[i2], k, 1, i2, o2))
        loose = loose_ends(cell_tokens, self.num_nodes)
        out = torch.cat([states[i] for i in loose], dim=1)  # (B, n_loose * C, H, W)
        w = torch.cat([self.out_w[str(i)] for i in loose], dim=1)  # (C, n_loose * C)
        out = F.conv2d(F.relu(out), w[:, :, None, None])  # (B, C, H, W)
        return self.out_bn(out)


def _conv_key(node: int, slot: int, idx: int, op: str) -> str:
    return f"n{node}_s{slot}_i{idx}_k{SEP_KERNELS[op]}"


class SharedMicroNet(CellStack[MicroNetConfig]):
    """The shared-weight micro search network (path-only).

    `tokens` None builds every candidate (the shared model); a genotype builds only its path
    (used by `SearchMicroChild`; parameter names match the shared model's).
    `forward(x, tokens)` runs only the ops the genotype selects.
    """

    def __init__(self, config: MicroNetConfig, tokens: Sequence[int] | None = None) -> None:
        super().__init__(config)
        normal, reduce = split_cells(tokens, config.num_nodes) if tokens is not None else (None, None)
        c_pp = c_p = 3 * config.channels
        for slot in self.slots:
            c = slot.channels
            cell = SearchCell(
                c_pp, c_p, c, slot.reduction, config.num_nodes, reduce if slot.reduction else normal
            )
            self._add(cell, slot, c)
            c_pp, c_p = (c, c) if slot.reduction else (c_p, c)
        self._finish(c_p)

    def _init_weights(self) -> None:
        """E's order: stem, cells, classifier, then the aux head."""
        for part in (self.stem, self.cells, self.classifier, self.aux):
            if part is not None:
                he_init(part)

    def forward(self, x: Tensor, tokens: Sequence[int]) -> Tensor:
        """x (B, in_channels, H, W), tokens: one micro genotype -> logits (B, num_classes)."""
        return self.forward_aux(x, tokens, with_aux=False)[0]

    def forward_aux(
        self, x: Tensor, tokens: Sequence[int], with_aux: bool = True
    ) -> tuple[Tensor, Tensor | None]:
        """(logits, aux logits); aux is None unless training with an aux head."""
        normal, reduce = split_cells(tokens, self.config.num_nodes)
        return self._stack(x, with_aux, lambda _, cell, s0, s1: search_step(cell, s0, s1, normal, reduce))


# --- one genotype in the search layout ---------------------------------------------------------
class SearchMicroChild(nn.Module):
    """A standalone network for ONE micro genotype in the search layout (the shared model's
    computation, only the path's modules). `forward(x)` -> logits; `forward_aux(x)` -> (logits,
    aux logits or None).

    Raises:
        GenotypeError: `tokens` is not a genotype of MicroSpace(config.num_nodes, config.num_ops).
    """

    layout = "search"

    def __init__(self, tokens: Sequence[int], config: MicroNetConfig) -> None:
        super().__init__()
        space = MicroSpace(num_nodes=config.num_nodes, num_ops=config.num_ops)
        self.tokens = space.tokens(tokens)
        self.config = config
        self.net = SharedMicroNet(config, tokens=self.tokens)

    @classmethod
    def from_shared(cls, shared: SharedMicroNet, tokens: Sequence[int]) -> SearchMicroChild:
        """A child holding copies of exactly the shared weights (and BN statistics) on `tokens`'
        path: same input, same mode -> same output."""
        child = cls(tokens, shared.config)
        source = shared.state_dict()
        child.net.load_state_dict({name: source[name].clone() for name in child.net.state_dict()})
        return child.to(next(shared.parameters()).device)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x, self.tokens)

    def forward_aux(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        return self.net.forward_aux(x, self.tokens)

    def num_parameters(self, include_aux: bool = True) -> int:
        return count_parameters(self.net, exclude=None if include_aux else "aux.")


# --- builders (the plugin's; duck-typed configs: ChildConfig / RetrainConfig) --------------------
def _config(space: MicroSpace, cfg: Any, data: Any, drop_path_keep: float = 1.0) -> MicroNetConfig:
    return MicroNetConfig(**trainer_network(network_config, space.params, cfg, data, drop_path_keep))


def build_shared(space: MicroSpace, cfg: Any, data: Any) -> SharedMicroNet:
    """The shared model for `space` from a ChildConfig-like `cfg` and an ImageDataset-like `data`."""
    return SharedMicroNet(_config(space, cfg, data))


def build_final(space: MicroSpace, tokens: Sequence[int], cfg: Any, data: Any) -> MicroChild:
    """The final-layout child of `tokens` from a RetrainConfig-like `cfg`.

    Raises:
        GenotypeError: `tokens` is not a genotype of `space`.
    """
    return MicroChild(space.structured(tokens), _config(space, cfg, data, cfg.drop_path_keep))
