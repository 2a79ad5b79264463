"""The cell-stacking image networks' skeleton (micro, nasnet; torch and image_ops only: copied into
the exported model.py after image_ops).

One definition of what the final and the search layouts of every cell-stacking space share: the
config base (`ImageNetConfig`; a space's config adds its cell's fields), the slots (num_layers + 2
cells, reductions at p and 2p + 1 with p = num_layers // 3, C doubling at each), the stem (3x3 conv
to 3C + BN), the auxiliary head after cell 2p + 2, the head (ReLU -> global average pool -> dropout
-> FC without bias) and the drop-path ramp (`CellStack`), and the final layout's cell building and
run (`FinalCellStack`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, Generic, TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from enas_core.zoo.image_ops import (
    AuxHead,
    Calibrate,
    FactorizedReduce,
    OpFactory,
    ReLUConvBN,
    bn,
    create_op,
    drop_path,
    he_init,
    reduced_size,
)

# --- model.py body ---
# ---------------------------------------------------------------------------------------------
# the cell stack (micro, nasnet)

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


class FinalCellFrame(nn.Module):
    """What every final-layout cell does around its nodes: bring its two inputs to (c, same H, W)
    (`Calibrate`), ReLU-1x1-BN on input 1, one op per (node, input slot) built by name from
    `registry` (stride 2 on the cell inputs of a reduction cell), drop path on every non-identity
    op's output, and the output: the concatenation of the loose states, a loose cell input of a
    reduction cell factorized-reduced first. `nodes`: per node its input states and op names."""

    def __init__(
        self,
        c_pp: int,
        c_p: int,
        c: int,
        reduce_pp: bool,
        reduction: bool,
        registry: Mapping[str, OpFactory],
        nodes: Sequence[tuple[Sequence[int], Sequence[str]]],
    ) -> None:
        super().__init__()
        self.calibrate = Calibrate(c_pp, c_p, c, reduce_pp)
        self.base = ReLUConvBN(c, c, 1)
        self.ops = nn.ModuleList(
            create_op(registry, op, c, 2 if reduction and idx < 2 else 1)
            for inputs, ops in nodes
            for idx, op in zip(inputs, ops, strict=True)
        )

    def _inputs(self, s0: Tensor, s1: Tensor) -> list[Tensor]:
        """The cell's first two states: its calibrated inputs, input 1 through ReLU-1x1-BN."""
        s0, s1 = self.calibrate(s0, s1)  # (B, C, H, W) each
        return [s0, self.base(s1)]

    def _node_results(
        self, node: int, inputs: Sequence[int], ops: Sequence[str], states: list[Tensor], keep_prob: float
    ) -> list[Tensor]:
        """The results of node `node`'s ops on its input states (drop path on non-identity ops)."""
        ys = []
        for slot, (idx, op) in enumerate(zip(inputs, ops, strict=True)):
            y = self.ops[2 * node + slot](states[idx])  # (B, C, H / stride, W / stride)
            ys.append(drop_path(y, keep_prob) if op != "identity" and keep_prob < 1.0 else y)
        return ys

    @staticmethod
    def _loose_reducers(loose: Sequence[int], c: int, reduction: bool) -> nn.ModuleDict:
        """A reduction cell's factorized reductions of its loose cell inputs (keys: state index)."""
        return nn.ModuleDict({str(i): FactorizedReduce(c, c) for i in loose if reduction and i < 2})

    @staticmethod
    def _concat_loose(states: list[Tensor], loose: Sequence[int], reducers: nn.ModuleDict) -> Tensor:
        """The cell output: the loose states concatenated, each reduced first where `reducers` has it."""
        outs = [reducers[str(i)](states[i]) if str(i) in reducers else states[i] for i in loose]
        return torch.cat(outs, dim=1)  # (B, len(loose) * C, H', W')
