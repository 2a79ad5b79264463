"""Micro (cell) CNN models: the shared-weight search network and the standalone child.

Stacking (both layouts): stem 3x3 conv to 3C + BN, then num_layers + 2 cells with reductions at
p and 2p + 1 (p = num_layers // 3); C doubles at each reduction; head ReLU -> global average
pool -> dropout -> FC (no bias). Optional auxiliary head after cell 2p + 2 (training only).

* `SharedMicroNet` (search layout, E's `_enas_layer`): path-only, only the sampled ops run.
  A reduction layer first factorized-reduces the previous output and then runs the cell at
  stride 1. Separable-conv weights are indexed by (node, input slot, input index) as in E;
  the cell output is concat(loose ends) -> ReLU -> 1x1 conv whose weight is assembled from
  per-node slices -> BN, back to C channels.
* `MicroChild` (one genotype): `layout="search"` is the same computation as the shared net
  (built with only the path's modules, same parameter names, so `from_shared` copies exactly
  the path's weights); `layout="final"` is E's `_fixed_layer` child (concat of loose ends,
  stride 2 on ops reading the cell inputs in reduction cells, identity -> factorized reduce,
  drop path on non-identity ops, aux head weight handled by the trainer).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from enas_core.ops import (
    AuxHead,
    Calibrate,
    FactorizedReduce,
    Pool,
    ReLUConvBN,
    SepConv,
    bn,
    count_parameters,
    drop_path,
    he_init,
    pool3x3,
    reduced_size,
)
from enas_core.spaces.micro import MicroSpace, loose_ends

IDENTITY = 4
SEP_KERNELS = {0: 3, 1: 5}


@dataclass(frozen=True)
class MicroNetConfig:
    """Shape of a micro network. `keep_prob` is the dropout keep probability before the
    classifier; `drop_path_keep` (final layout only) the drop-path keep probability of the last
    cell at the end of training (None: no drop path)."""

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

    def __post_init__(self) -> None:
        if self.image_size < 4:
            raise ValueError(f"image_size must be >= 4, got {self.image_size}")
        if self.channels % 2:
            raise ValueError(f"channels must be even (factorized reductions), got {self.channels}")


def reduction_layers(num_layers: int) -> tuple[int, int]:
    """Indices of the two reduction cells among num_layers + 2 cells."""
    p = num_layers // 3
    return p, 2 * p + 1


def aux_layer(num_layers: int) -> int:
    """Index of the cell after which the auxiliary head reads (2p + 2)."""
    return reduction_layers(num_layers)[1] + 1


def split_cells(tokens: Sequence[int], num_nodes: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(normal, reduce) cell tokens as plain ints (length-checked only: callers validate)."""
    t = tuple(int(v) for v in tokens)
    if len(t) != 8 * num_nodes:
        raise ValueError(f"micro genotype needs {8 * num_nodes} tokens, got {len(t)}")
    return t[: 4 * num_nodes], t[4 * num_nodes :]


def _stem(config: MicroNetConfig) -> nn.Sequential:
    c = 3 * config.channels
    return nn.Sequential(nn.Conv2d(config.in_channels, c, 3, 1, 1, bias=False), bn(c))


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

    def _conv_keys(self, cell_tokens: Sequence[int] | None) -> list[tuple[int, int, int, int]]:
        if cell_tokens is None:
            return [
                (k, slot, i, op)
                for k in range(self.num_nodes)
                for slot in (0, 1)
                for i in range(k + 2)
                for op in (0, 1)
            ]
        keys = []
        for k in range(self.num_nodes):
            for slot in (0, 1):
                idx, op = cell_tokens[4 * k + 2 * slot], cell_tokens[4 * k + 2 * slot + 1]
                if op in SEP_KERNELS:
                    keys.append((k, slot, idx, op))
        return keys

    def _op(self, x: Tensor, node: int, slot: int, idx: int, op: int) -> Tensor:
        if op in SEP_KERNELS:
            return self.convs[_conv_key(node, slot, idx, op)](x)
        if op == IDENTITY:
            return x
        return pool3x3(op, x)

    def forward(self, s0: Tensor, s1: Tensor, cell_tokens: Sequence[int]) -> Tensor:
        s0, s1 = self.calibrate(s0, s1)  # (B, C, H, W) each
        states = [s0, s1]
        for k in range(self.num_nodes):
            i1, o1, i2, o2 = cell_tokens[4 * k : 4 * k + 4]
            states.append(self._op(states[i1], k, 0, i1, o1) + self._op(states[i2], k, 1, i2, o2))
        loose = loose_ends(cell_tokens, self.num_nodes)
        out = torch.cat([states[i] for i in loose], dim=1)  # (B, n_loose * C, H, W)
        w = torch.cat([self.out_w[str(i)] for i in loose], dim=1)  # (C, n_loose * C)
        out = F.conv2d(F.relu(out), w[:, :, None, None])  # (B, C, H, W)
        return self.out_bn(out)


def _conv_key(node: int, slot: int, idx: int, op: int) -> str:
    return f"n{node}_s{slot}_i{idx}_k{SEP_KERNELS[op]}"


class SharedMicroNet(nn.Module):
    """The shared-weight micro search network (path-only).

    `tokens` None builds every candidate (the shared model); a genotype builds only its path
    (used by `MicroChild(layout="search")`; parameter names match the shared model's).
    `forward(x, tokens)` runs only the ops the genotype selects.
    """

    def __init__(self, config: MicroNetConfig, tokens: Sequence[int] | None = None) -> None:
        super().__init__()
        self.config = config
        normal, reduce = split_cells(tokens, config.num_nodes) if tokens is not None else (None, None)
        self.stem = _stem(config)
        reductions = reduction_layers(config.num_layers)
        c_pp = c_p = 3 * config.channels
        c, level = config.channels, 0
        self.cells = nn.ModuleList()
        self.aux: AuxHead | None = None
        for layer in range(config.num_layers + 2):
            if layer in reductions:
                c, level = 2 * c, level + 1
                self.cells.append(SearchCell(c_pp, c_p, c, True, config.num_nodes, reduce))
                c_pp, c_p = c, c
            else:
                self.cells.append(SearchCell(c_pp, c_p, c, False, config.num_nodes, normal))
                c_pp, c_p = c_p, c
            if config.aux_head and layer == aux_layer(config.num_layers):
                self.aux = AuxHead(c, reduced_size(config.image_size, level), config.num_classes)
        self.classifier = nn.Linear(c, config.num_classes, bias=False)
        he_init(self.stem)
        he_init(self.cells)
        he_init(self.classifier)
        if self.aux is not None:
            he_init(self.aux)

    @property
    def search_cells(self) -> list[SearchCell]:
        return [cast(SearchCell, cell) for cell in self.cells]

    def forward(self, x: Tensor, tokens: Sequence[int]) -> Tensor:
        """x (B, in_channels, H, W), tokens: one micro genotype -> logits (B, num_classes)."""
        return self._run(x, tokens, with_aux=False)[0]

    def forward_aux(self, x: Tensor, tokens: Sequence[int]) -> tuple[Tensor, Tensor | None]:
        """(logits, aux logits); aux is None unless training with an aux head."""
        return self._run(x, tokens, with_aux=True)

    def _run(self, x: Tensor, tokens: Sequence[int], with_aux: bool) -> tuple[Tensor, Tensor | None]:
        normal, reduce = split_cells(tokens, self.config.num_nodes)
        s0 = s1 = self.stem(x)  # (B, 3C, H, W)
        aux = None
        for layer, cell in enumerate(self.search_cells):
            if cell.pre_reduce is not None:
                s0, s1 = s1, cell.pre_reduce(s1)  # (B, C_prev, H, W), (B, 2 C_prev, H/2, W/2)
            s0, s1 = s1, cell(s0, s1, reduce if cell.reduction else normal)
            if (
                with_aux
                and self.aux is not None
                and self.training
                and layer == aux_layer(self.config.num_layers)
            ):
                aux = self.aux(s1)  # (B, num_classes)
        return _head(self, s1), aux


def _head(net: SharedMicroNet | FinalMicroNet, x: Tensor) -> Tensor:
    x = F.relu(x).mean(dim=(2, 3))  # (B, C)
    x = F.dropout(x, 1.0 - net.config.keep_prob, net.training)
    return net.classifier(x)  # (B, num_classes)


# --- final layout ----------------------------------------------------------------------------
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
        self.stem = _stem(config)
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
        return _head(self, s1), aux


# --- the standalone child --------------------------------------------------------------------
class MicroChild(nn.Module):
    """A standalone network for ONE micro genotype.

    Args:
        tokens: the genotype (validated against MicroSpace(num_nodes, num_ops)).
        config: network shape.
        layout: "final" (E's final child) or "search" (the shared model's computation).
    `forward(x)` -> logits; `forward_aux(x)` -> (logits, aux logits or None).
    """

    def __init__(self, tokens: Sequence[int], config: MicroNetConfig, layout: str = "final") -> None:
        super().__init__()
        space = MicroSpace(num_nodes=config.num_nodes, num_ops=config.num_ops)
        self.tokens = space.tokens(tokens)
        self.layout = layout
        self.config = config
        self.net: SharedMicroNet | FinalMicroNet
        if layout == "search":
            self.net = SharedMicroNet(config, tokens=self.tokens)
        elif layout == "final":
            self.net = FinalMicroNet(config, self.tokens)
        else:
            raise ValueError(f"unknown layout {layout!r} (search | final)")

    @classmethod
    def from_shared(cls, shared: SharedMicroNet, tokens: Sequence[int]) -> MicroChild:
        """A search-layout child holding copies of exactly the shared weights (and BN statistics)
        on `tokens`' path: same input, same mode -> same output."""
        child = cls(tokens, shared.config, layout="search")
        source = shared.state_dict()
        child.net.load_state_dict({name: source[name].clone() for name in child.net.state_dict()})
        return child.to(next(shared.parameters()).device)

    def set_drop_path_progress(self, fraction: float) -> None:
        """Fraction of training done (drop path ramps up with it); final layout only."""
        if isinstance(self.net, FinalMicroNet):
            self.net.drop_path_progress = float(fraction)

    def forward(self, x: Tensor) -> Tensor:
        if isinstance(self.net, SharedMicroNet):
            return self.net(x, self.tokens)
        return self.net(x)

    def forward_aux(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        if isinstance(self.net, SharedMicroNet):
            return self.net.forward_aux(x, self.tokens)
        return self.net.forward_aux(x)

    def num_parameters(self, include_aux: bool = True) -> int:
        return count_parameters(self.net, exclude=None if include_aux else "aux.")


# --- builders used by enas_core.search (duck-typed configs: ChildConfig / RetrainConfig) ------
def build_shared(space: MicroSpace, cfg: Any, data: Any) -> SharedMicroNet:
    """The shared model for `space` from a ChildConfig-like `cfg` and an ImageDataset-like `data`."""
    return SharedMicroNet(
        MicroNetConfig(
            num_layers=cfg.num_layers,
            channels=cfg.channels,
            num_nodes=space.num_nodes,
            num_ops=space.num_ops,
            in_channels=data.in_channels,
            num_classes=data.num_classes,
            image_size=data.image_size,
            keep_prob=cfg.keep_prob,
            aux_head=cfg.aux_weight > 0,
        )
    )


def build_final(space: MicroSpace, tokens: Sequence[int], cfg: Any, data: Any) -> MicroChild:
    """The final-layout child of `tokens` from a RetrainConfig-like `cfg`."""
    config = MicroNetConfig(
        num_layers=cfg.num_layers,
        channels=cfg.channels,
        num_nodes=space.num_nodes,
        num_ops=space.num_ops,
        in_channels=data.in_channels,
        num_classes=data.num_classes,
        image_size=data.image_size,
        keep_prob=cfg.keep_prob,
        aux_head=cfg.aux_weight > 0,
        drop_path_keep=cfg.drop_path_keep if cfg.drop_path_keep < 1.0 else None,
    )
    return MicroChild(tokens, config, layout="final")
