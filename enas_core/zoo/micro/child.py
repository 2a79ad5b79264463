"""The standalone micro (cell) child, final layout: the one definition (torch and image_ops only).

E's `_fixed_layer` child. Stem 3x3 conv to 3C + BN, then num_layers + 2 cells with reductions at p
and 2p + 1 (p = num_layers // 3) where C doubles; head ReLU -> global average pool -> dropout -> FC
(no bias); optional auxiliary head after cell 2p + 2 (training only).

Each cell: calibrate its two inputs (factorized reduction of a higher-resolution input, else
ReLU-1x1-BN on a channel mismatch), ReLU-1x1-BN on input 1 ("layer base"), the nodes (each the sum
of two ops, built by name from `MICRO_OP_REGISTRY`), output = concat of the loose ends (inputs
included). In a reduction cell the ops reading cell inputs 0/1 run at stride 2, an identity on them
becomes a factorized reduction, and a loose input is factorized-reduced before the concat. Drop path
on non-identity ops, keep 1 - ((l + 1) / (L + 2)) * progress * (1 - drop_path_keep).

The child is built from the genotype's decoded (structured) form, ``{"normal": cell, "reduce":
cell}`` with ``cell = {"nodes": [{"inputs": [i, j], "ops": [name, name]}, ...], "concat": [...]}``
(`MicroSpace.structured`), so it needs no token decoding. `codegen` copies the text below the
`BODY_MARKER` line into the exported model.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn

from enas_core.zoo.cell_stack import FinalCellFrame, FinalCellStack, ImageNetConfig
from enas_core.zoo.image_ops import (
    FactorizedReduce,
    OpFactory,
    Pool,
    SepConv,
    image_example_input,
    image_train_step,
)

# --- model.py body ---
# ---------------------------------------------------------------------------------------------
# the micro child (final layout)

IDENTITY = "identity"
MICRO_OP_REGISTRY: dict[str, OpFactory] = {
    "sep_conv_3x3": lambda c, stride: SepConv(c, c, 3, stride),
    "sep_conv_5x5": lambda c, stride: SepConv(c, c, 5, stride),
    "avg_pool_3x3": lambda c, stride: Pool("avg", stride),
    "max_pool_3x3": lambda c, stride: Pool("max", stride),
    IDENTITY: lambda c, stride: FactorizedReduce(c, c) if stride == 2 else nn.Identity(),
}
"""The micro space's ops by name (the final layout): (channels, stride) -> module."""


@dataclass(frozen=True)
class MicroNetConfig(ImageNetConfig):
    """Shape of a micro network (`ImageNetConfig`'s fields) and its cell's node and op counts."""

    num_nodes: int = 5
    num_ops: int = 5

    def __post_init__(self) -> None:
        if self.image_size < 4:
            raise ValueError(f"image_size must be >= 4, got {self.image_size}")
        if self.channels % 2:
            raise ValueError(f"channels must be even (factorized reductions), got {self.channels}")


class FinalCell(FinalCellFrame):
    """E's `_fixed_layer`: calibrate, ReLU-1x1-BN on input 1, nodes (each the sum of its two ops),
    concat of loose ends. `cell` is one cell of the structured genotype; output channels:
    len(concat) * c_out.
    """

    def __init__(
        self, c_pp: int, c_p: int, c_out: int, reduce_pp: bool, reduction: bool, cell: Mapping[str, Any]
    ) -> None:
        nodes = [(tuple(node["inputs"]), tuple(node["ops"])) for node in cell["nodes"]]
        super().__init__(c_pp, c_p, c_out, reduce_pp, reduction, MICRO_OP_REGISTRY, nodes)
        self.nodes = nodes
        self.loose = list(cell["concat"])
        self.combine = self._loose_reducers(self.loose, c_out, reduction)
        self.out_channels = len(self.loose) * c_out

    def forward(self, s0: Tensor, s1: Tensor, keep_prob: float) -> Tensor:
        states = self._inputs(s0, s1)
        for k, (inputs, ops) in enumerate(self.nodes):
            y0, y1 = self._node_results(k, inputs, ops, states, keep_prob)
            states.append(y0 + y1)
        return self._concat_loose(states, self.loose, self.combine)


class FinalMicroNet(FinalCellStack[MicroNetConfig]):
    """The network of one micro genotype (E's final model), from its structured form."""

    def __init__(self, config: MicroNetConfig, structured: Mapping[str, Any]) -> None:
        super().__init__(config, structured, FinalCell)


class MicroChild(nn.Module):
    """The standalone network of one micro genotype (`structured`: `MicroSpace.structured`).
    `forward(x)` -> logits (B, num_classes); `forward_aux(x)` -> (logits, aux logits or None)."""

    def __init__(self, structured: Mapping[str, Any], config: MicroNetConfig) -> None:
        super().__init__()
        for name in ("normal", "reduce"):
            nodes = structured[name]["nodes"]
            if len(nodes) != config.num_nodes:
                raise ValueError(f"the {name} cell has {len(nodes)} nodes, the config {config.num_nodes}")
        self.config = config
        self.net = FinalMicroNet(config, structured)

    def set_drop_path_progress(self, fraction: float) -> None:
        """Fraction of training done (drop path ramps up with it)."""
        self.net.set_drop_path_progress(fraction)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

    def forward_aux(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        return self.net.forward_aux(x)

    def num_parameters(self, include_aux: bool = True) -> int:
        """Number of parameters, with or without the auxiliary head."""
        return sum(
            p.numel() for n, p in self.net.named_parameters() if include_aux or not n.startswith("aux.")
        )


def build_model_from(genotype: Mapping[str, Any], network: Mapping[str, Any]) -> nn.Module:
    """The micro child of `genotype` (its ``"structured"`` form) with the shape in `network`
    (keys: MicroNetConfig's fields)."""
    return MicroChild(genotype["structured"], MicroNetConfig.from_network(network))


example_input = image_example_input
train_step = image_train_step
