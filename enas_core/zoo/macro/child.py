"""The standalone macro (whole-network) child, final layout: the one definition (torch and image_ops only).

Built from the genotype's structured form ``{"layers": [{"op": name, "skips": [j, ...]}, ...]}``
(`MacroSpace.structured`): layer ``i`` applies its op to the previous layer's output and, for
``i > 0``, combines it with the outputs of the layers in ``skips``. An op (by name, from
`MACRO_OP_REGISTRY`) is ReLU-1x1-BN then ReLU-kxk(-separable)-BN (pools: ReLU-1x1-BN then the 3x3
stride-1 pool); a layer ``i > 0`` ends with concat(selected skips, out) -> ReLU -> 1x1 -> BN. The
resolution halves (and the width doubles) after layers ``L//3 - 1`` and ``2*(L//3) - 1``: every
earlier output a later layer still reads is factorized-reduced. `codegen` copies the text below
the `BODY_MARKER` line into the exported model.py.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from enas_core.zoo.image_ops import (
    FactorizedReduce,
    OpFactory,
    Pool,
    bn,
    create_op,
    he_init,
    image_example_input,
    image_train_step,
)

# --- model.py body ---
# ---------------------------------------------------------------------------------------------
# the macro child (final layout)


def reduction_layers(num_layers: int) -> tuple[int, ...]:
    """Layers after which the resolution halves: ``L//3 - 1`` and ``2*(L//3) - 1`` (none when L < 3)."""
    p = num_layers // 3
    return tuple(sorted({r for r in (p - 1, 2 * p - 1) if 0 <= r < num_layers}))


def live_after(sources: Sequence[Sequence[int]], layer: int) -> set[int]:
    """Outputs (layer ids <= ``layer``) that a later layer reads: the next input and its skip
    sources (`sources[i]`: the layers whose outputs layer i combines)."""
    live = {layer}
    for later in sources[layer + 1 :]:
        live.update(j for j in later if j <= layer)
    return live


def conv(c_in: int, c_out: int, k: int, groups: int = 1) -> nn.Conv2d:
    """A kxk convolution, same padding, no bias."""
    return nn.Conv2d(c_in, c_out, k, padding=k // 2, groups=groups, bias=False)


def kxk_convs(channels: int, kernel: int, separable: bool) -> list[nn.Module]:
    """The kxk part of a conv op: a plain conv, or depthwise kxk followed by pointwise 1x1."""
    if separable:
        return [conv(channels, channels, kernel, groups=channels), conv(channels, channels, 1)]
    return [conv(channels, channels, kernel)]


def _final_conv(kernel: int, separable: bool) -> OpFactory:
    def make(c: int, stride: int) -> nn.Module:
        return nn.Sequential(
            nn.ReLU(), conv(c, c, 1), bn(c), nn.ReLU(), *kxk_convs(c, kernel, separable), bn(c)
        )

    return make


def _final_pool(kind: str) -> OpFactory:
    def make(c: int, stride: int) -> nn.Module:
        return nn.Sequential(nn.ReLU(), conv(c, c, 1), bn(c), Pool(kind))

    return make


MACRO_OP_KINDS: dict[str, tuple[int, bool] | str] = {
    "conv_3x3": (3, False),
    "sep_conv_3x3": (3, True),
    "conv_5x5": (5, False),
    "sep_conv_5x5": (5, True),
    "avg_pool_3x3": "avg",
    "max_pool_3x3": "max",
}
"""Each macro op: a conv's (kernel, separable), or a pool's kind."""


def op_registry(
    conv_op: Callable[[int, bool], OpFactory], pool_op: Callable[[str], OpFactory]
) -> dict[str, OpFactory]:
    """The macro ops by name, built by `conv_op(kernel, separable)` and `pool_op(kind)` (one layout)."""
    return {
        name: pool_op(kind) if isinstance(kind, str) else conv_op(*kind)
        for name, kind in MACRO_OP_KINDS.items()
    }


MACRO_OP_REGISTRY = op_registry(_final_conv, _final_pool)
"""The macro space's ops by name (the final layout): (channels, stride) -> module."""


class FinalSkipCombine(nn.Module):
    """concat(selected, out) -> ReLU -> 1x1 -> BN."""

    def __init__(self, num_inputs: int, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(num_inputs * channels, channels, 1, bias=False)
        self.bn = bn(channels)

    def forward(self, out: Tensor, chosen: list[Tensor]) -> Tensor:
        x = torch.cat([*chosen, out], dim=1)  # (B, (k+1)C, H, W)
        return self.bn(self.conv(F.relu(x)))  # (B, C, H, W)


def run_layers(
    x: Tensor,
    sources: Sequence[Sequence[int]],
    reductions: Sequence[int],
    apply_op: Callable[[int, Tensor], Tensor],
    combine: Callable[[int, Tensor, list[Tensor]], Tensor],
    reduce: Callable[[int, int, Tensor], Tensor],
) -> Tensor:
    """The layer loop: op on the previous output, skips, then the reductions of the live outputs."""
    outputs: list[Tensor | None] = []
    inp = x
    for i, skips in enumerate(sources):
        out = apply_op(i, inp)  # (B, C, H, W)
        if i > 0:
            out = combine(i, out, [_live(outputs, j) for j in skips])
        outputs.append(out)
        if i in reductions:
            live = live_after(sources, i)
            outputs = [
                reduce(i, j, o) if j in live and o is not None else None for j, o in enumerate(outputs)
            ]
        inp = _live(outputs, i)
    return inp


def _live(outputs: list[Tensor | None], j: int) -> Tensor:
    out = outputs[j]
    assert out is not None, f"output {j} was dropped at a reduction but is still read"
    return out


def macro_stem(in_channels: int, channels: int) -> nn.Sequential:
    """3x3 conv to C + BN."""
    return nn.Sequential(conv(in_channels, channels, 3), bn(channels))


class MacroNet(nn.Module):
    """What both macro networks (this final child, the search layout's child) build and run: the
    stem, one op per layer, the skip combinations and the reductions (`run_layers`), global average
    pooling, dropout and the classifier. A subclass passes its layers' skip sources and widths, and
    how to build layer i's op (`make_op(i, width)`) and skip combination (`make_combine(i, width)`,
    layers i > 0)."""

    def __init__(
        self,
        sources: list[tuple[int, ...]],
        widths: Sequence[int],
        make_op: Callable[[int, int], nn.Module],
        make_combine: Callable[[int, int], nn.Module],
        head: tuple[int, int, float],
    ) -> None:
        super().__init__()
        in_channels, num_classes, keep_prob = head
        self.sources = sources
        self.num_layers = num_layers = len(widths)
        self.reductions = reduction_layers(num_layers)
        self.stem = macro_stem(in_channels, widths[0])
        self.ops = nn.ModuleList(make_op(i, widths[i]) for i in range(num_layers))
        self.combine = nn.ModuleList(
            make_combine(i, widths[i]) if i > 0 else nn.Identity() for i in range(num_layers)
        )
        self.reduce = nn.ModuleDict(
            {
                f"{r}_{j}": FactorizedReduce(widths[r], widths[r + 1])  # r < L-1 always
                for r in self.reductions
                for j in sorted(live_after(self.sources, r))
            }
        )
        self.dropout = nn.Dropout(1.0 - keep_prob)
        self.classifier = nn.Linear(widths[-1], num_classes, bias=False)
        he_init(self)

    def forward(self, x: Tensor) -> Tensor:
        h = self.stem(x)  # (B, C, H, W)
        h = run_layers(
            h,
            self.sources,
            self.reductions,
            apply_op=lambda i, inp: self.ops[i](inp),
            combine=lambda i, out, chosen: self.combine[i](out, chosen),
            reduce=lambda r, j, o: self.reduce[f"{r}_{j}"](o),
        )
        h = h.mean(dim=(2, 3))  # (B, C_last)
        return self.classifier(self.dropout(h))  # (B, num_classes)

    def forward_aux(self, x: Tensor) -> tuple[Tensor, None]:
        """``(logits, None)``: no auxiliary head in the macro space."""
        return self.forward(x), None

    def set_drop_path_progress(self, fraction: float) -> None:
        """No drop path in the macro space (kept for the trainer's common interface)."""

    def num_parameters(self, include_aux: bool = True) -> int:
        """Number of parameters (there is no auxiliary head to exclude)."""
        return sum(p.numel() for p in self.parameters())


class MacroChild(MacroNet):
    """The standalone network of one macro architecture (`structured`: `MacroSpace.structured`).
    `forward(x)` -> logits (B, num_classes)."""

    def __init__(
        self,
        structured: Mapping[str, Any],
        num_layers: int,
        channels: int,
        num_classes: int = 10,
        in_channels: int = 3,
        keep_prob: float = 0.5,
    ) -> None:
        layers = structured["layers"]
        if len(layers) != num_layers:
            raise ValueError(f"the architecture has {len(layers)} layers, the network {num_layers}")
        sources = [tuple(layer["skips"]) for layer in layers]
        widths, c = [], channels
        for i in range(num_layers):
            widths.append(c)
            c = 2 * c if i in reduction_layers(num_layers) else c
        super().__init__(
            sources,
            widths,
            lambda i, width: create_op(MACRO_OP_REGISTRY, layers[i]["op"], width),
            lambda i, width: FinalSkipCombine(len(sources[i]) + 1, width),
            (in_channels, num_classes, keep_prob),
        )


def build_model_from(genotype: Mapping[str, Any], network: Mapping[str, Any]) -> nn.Module:
    """The macro child of `genotype` (its ``"structured"`` form) with the shape in `network`."""
    return MacroChild(
        genotype["structured"],
        network["num_layers"],
        network["channels"],
        num_classes=network["num_classes"],
        in_channels=network["in_channels"],
        keep_prob=network["keep_prob"],
    )


example_input = image_example_input
train_step = image_train_step
