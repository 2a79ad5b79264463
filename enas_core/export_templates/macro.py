"""The standalone macro (whole-network) child, final layout (copied into model.py; torch only).

Same computation and parameter names as `enas_core.models.macro.MacroChild(layout="final")`.
Layer ``i`` of the tokens is ``[op, s_0 .. s_{i-1}]``; ``s_j = 1`` adds a skip from layer ``j``'s
output. An op is ReLU-1x1-BN then ReLU-kxk(-separable)-BN (pools: ReLU-1x1-BN then the pool); a
layer ``i > 0`` ends with concat(selected skips, out) -> ReLU -> 1x1 -> BN. The resolution halves
(and the width doubles) after layers ``L//3 - 1`` and ``2*(L//3) - 1``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from enas_core.export_templates.ops import (
    FactorizedReduce,
    Pool,
    bn,
    he_init,
    image_example_input,
    image_train_step,
)

# --- model.py body ---
# ---------------------------------------------------------------------------------------------
# the macro child (final layout)

MACRO_OPS = ("conv_3x3", "sep_conv_3x3", "conv_5x5", "sep_conv_5x5", "avg_pool_3x3", "max_pool_3x3")


class MacroLayer(NamedTuple):
    """One layer's decisions: the op id and one 0/1 flag per earlier layer."""

    op: int
    skips: tuple[int, ...]


def parse_macro_tokens(tokens: Sequence[int], num_layers: int) -> list[MacroLayer]:
    """Split the flat token list into per-layer decisions."""
    flat = [int(t) for t in tokens]
    if len(flat) != num_layers + num_layers * (num_layers - 1) // 2:
        raise ValueError(f"{len(flat)} tokens do not describe {num_layers} macro layers")
    layers, pos = [], 0
    for i in range(num_layers):
        layers.append(MacroLayer(flat[pos], tuple(flat[pos + 1 : pos + 1 + i])))
        pos += 1 + i
    return layers


def reduction_layers(num_layers: int) -> tuple[int, ...]:
    """Layers after which the resolution halves."""
    p = num_layers // 3
    return tuple(sorted({r for r in (p - 1, 2 * p - 1) if 0 <= r < num_layers}))


def _live_after(arch: Sequence[MacroLayer], layer: int) -> set[int]:
    """Outputs (layer ids <= ``layer``) that a later layer reads."""
    live = {layer}
    for later in arch[layer + 1 :]:
        live.update(j for j, s in enumerate(later.skips) if s and j <= layer)
    return live


def _conv(c_in: int, c_out: int, k: int, groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, k, padding=k // 2, groups=groups, bias=False)


def final_branch(op: int, channels: int) -> nn.Sequential:
    """ReLU-1x1-BN, then ReLU-kxk(-sep)-BN or a 3x3 stride-1 pool."""
    head: list[nn.Module] = [nn.ReLU(), _conv(channels, channels, 1), bn(channels)]
    if op >= 4:
        return nn.Sequential(*head, Pool(2 if op == 4 else 3))
    k = 3 if op in (0, 1) else 5
    if op in (1, 3):
        kxk = [_conv(channels, channels, k, groups=channels), _conv(channels, channels, 1)]
    else:
        kxk = [_conv(channels, channels, k)]
    return nn.Sequential(*head, nn.ReLU(), *kxk, bn(channels))


class FinalSkipCombine(nn.Module):
    """concat(selected, out) -> ReLU -> 1x1 -> BN."""

    def __init__(self, num_inputs: int, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(num_inputs * channels, channels, 1, bias=False)
        self.bn = bn(channels)

    def forward(self, out: Tensor, chosen: list[Tensor]) -> Tensor:
        x = torch.cat([*chosen, out], dim=1)  # (B, (k+1)C, H, W)
        return self.bn(self.conv(F.relu(x)))  # (B, C, H, W)


def _run_layers(
    x: Tensor,
    arch: Sequence[MacroLayer],
    reductions: Sequence[int],
    apply_op: Callable[[int, Tensor], Tensor],
    combine: Callable[[int, Tensor, list[Tensor]], Tensor],
    reduce: Callable[[int, int, Tensor], Tensor],
) -> Tensor:
    """The layer loop: op on the previous output, skips, then the reductions of live outputs."""
    outputs: list[Tensor | None] = []
    inp = x
    for i, layer in enumerate(arch):
        out = apply_op(i, inp)  # (B, C, H, W)
        if i > 0:
            chosen = [outputs[j] for j, s in enumerate(layer.skips) if s]
            out = combine(i, out, chosen)  # type: ignore[arg-type]
        outputs.append(out)
        if i in reductions:
            live = _live_after(arch, i)
            outputs = [
                reduce(i, j, o) if j in live and o is not None else None for j, o in enumerate(outputs)
            ]
        inp = outputs[-1]  # type: ignore[assignment]  # the last output is always live
    return inp


class MacroChild(nn.Module):
    """The standalone network of one macro architecture. `forward(x)` -> logits (B, num_classes)."""

    def __init__(
        self,
        tokens: Sequence[int],
        num_layers: int,
        channels: int,
        num_classes: int = 10,
        in_channels: int = 3,
        keep_prob: float = 0.5,
    ) -> None:
        super().__init__()
        self.arch = parse_macro_tokens(tokens, num_layers)
        self.tokens = [t for layer in self.arch for t in (layer.op, *layer.skips)]
        self.num_layers = num_layers
        self.reductions = reduction_layers(num_layers)
        widths, c = [], channels
        for i in range(num_layers):
            widths.append(c)
            c = 2 * c if i in self.reductions else c
        self.stem = nn.Sequential(_conv(in_channels, channels, 3), bn(channels))
        self.ops = nn.ModuleList(final_branch(layer.op, widths[i]) for i, layer in enumerate(self.arch))
        self.combine = nn.ModuleList(
            FinalSkipCombine(sum(self.arch[i].skips) + 1, widths[i]) if i > 0 else nn.Identity()
            for i in range(num_layers)
        )
        self.reduce = nn.ModuleDict(
            {
                f"{r}_{j}": FactorizedReduce(widths[r], widths[r + 1])
                for r in self.reductions
                for j in sorted(_live_after(self.arch, r))
            }
        )
        self.dropout = nn.Dropout(1.0 - keep_prob)
        self.classifier = nn.Linear(widths[-1], num_classes, bias=False)
        he_init(self)

    def forward(self, x: Tensor) -> Tensor:
        h = self.stem(x)  # (B, C, H, W)
        h = _run_layers(
            h,
            self.arch,
            self.reductions,
            apply_op=lambda i, inp: self.ops[i](inp),
            combine=lambda i, out, chosen: self.combine[i](out, chosen),
            reduce=lambda r, j, o: self.reduce[f"{r}_{j}"](o),
        )
        h = h.mean(dim=(2, 3))  # (B, C_last)
        return self.classifier(self.dropout(h))  # (B, num_classes)


def build_model_from(tokens: Sequence[int], network: dict[str, Any]) -> nn.Module:
    """The macro child of `tokens` with the shape in `network`."""
    return MacroChild(
        tokens,
        network["num_layers"],
        network["channels"],
        num_classes=network["num_classes"],
        in_channels=network["in_channels"],
        keep_prob=network["keep_prob"],
    )


example_input = image_example_input
train_step = image_train_step
