"""The macro (whole-network) CNN space of ENAS.

Encoding: layer i (0-based) emits `[op, s_0 ... s_{i-1}]`; s_j = 1 is a skip connection from
layer j's output into layer i. L + L(L-1)/2 tokens (78 for L = 12).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, NamedTuple

from enas_core.spaces.base import (
    ArrayLike,
    Decision,
    GenotypeError,
    Space,
    SpaceParam,
    choice_index,
    int_list,
    require_list,
)

MACRO_OPS: tuple[str, ...] = (
    "conv_3x3",
    "sep_conv_3x3",
    "conv_5x5",
    "sep_conv_5x5",
    "avg_pool_3x3",
    "max_pool_3x3",
)


class MacroLayer(NamedTuple):
    """One layer's decisions: the op id and one 0/1 flag per earlier layer."""

    op: int
    skips: tuple[int, ...]


def layer_offset(layer: int) -> int:
    """Token index of layer `layer`'s op decision."""
    return layer + layer * (layer - 1) // 2


def num_macro_tokens(num_layers: int) -> int:
    """Length of a macro token list: ``L + L(L-1)/2``."""
    return layer_offset(num_layers)


def parse_macro_tokens(
    tokens: Sequence[int] | ArrayLike, num_layers: int, num_ops: int = len(MACRO_OPS)
) -> list[MacroLayer]:
    """Split a flat token list (or a 1-d tensor) into per-layer decisions.

    Raises:
        GenotypeError: wrong length, an op outside [0, num_ops-1] or a skip flag not 0/1 (names the position).
    """
    flat = int_list(tokens)
    expected = num_macro_tokens(num_layers)
    if len(flat) != expected:
        raise GenotypeError(f"macro tokens: expected {expected} for {num_layers} layers, got {len(flat)}")
    layers: list[MacroLayer] = []
    for i in range(num_layers):
        pos = layer_offset(i)
        op, skips = flat[pos], tuple(flat[pos + 1 : pos + 1 + i])
        if not 0 <= op < num_ops:
            msg = f"macro tokens: position {pos} (layer {i} op) is {op}, not in [0, {num_ops - 1}]"
            raise GenotypeError(msg, pos)
        for j, s in enumerate(skips):
            if s not in (0, 1):
                where = pos + 1 + j
                raise GenotypeError(
                    f"macro tokens: position {where} (layer {i} skip {j}) is {s}, not 0/1", where
                )
        layers.append(MacroLayer(op, skips))
    return layers


def skip_sources(arch: Sequence[MacroLayer]) -> list[tuple[int, ...]]:
    """For each layer, the earlier layers whose outputs it combines (its skip flags set)."""
    return [tuple(j for j, s in enumerate(layer.skips) if s) for layer in arch]


def network_config(
    params: Mapping[str, int], retrain: Mapping[str, Any], shape: Mapping[str, int]
) -> dict[str, Any]:
    """The final network's shape (`enas_core.zoo.macro.child.MacroChild`'s arguments).

    Raises:
        KeyError: a needed key is missing.
    """
    return {
        "num_layers": params["num_layers"],  # the genotype fixes L
        "channels": int(retrain["channels"]),
        "num_classes": shape["num_classes"],
        "in_channels": shape["in_channels"],
        "image_size": shape["image_size"],
        "keep_prob": float(retrain["keep_prob"]),
    }


class MacroSpace(Space):
    """The ENAS macro space. Params: num_layers (L), num_ops (<= 6)."""

    name: ClassVar[str] = "macro"
    defaults: ClassVar[dict[str, int]] = {"num_layers": 12, "num_ops": 6}
    maximums: ClassVar[dict[str, int]] = {"num_ops": len(MACRO_OPS)}

    num_layers = SpaceParam()
    num_ops = SpaceParam()

    @property
    def op_names(self) -> tuple[str, ...]:
        return MACRO_OPS[: self.num_ops]

    def _decisions(self) -> list[Decision]:
        out: list[Decision] = []
        for i in range(self.num_layers):
            out.append(Decision(len(out), f"layer {i}", "op", "op", self.num_ops))
            for j in range(i):
                out.append(Decision(len(out), f"layer {i}", f"skip (from layer {j})", "skip", 2))
        return out

    def layers(self, tokens: Sequence[int]) -> list[MacroLayer]:
        """[(op, (s_0..s_{i-1})) for each layer i], validated."""
        return parse_macro_tokens(self.tokens(tokens), self.num_layers, self.num_ops)

    def structured(self, tokens: Sequence[int]) -> dict[str, Any]:
        arch = self.layers(tokens)
        layers = [
            {"op": self.op_names[layer.op], "skips": list(sources)}
            for layer, sources in zip(arch, skip_sources(arch), strict=True)
        ]
        return {"layers": layers}

    def from_structured(self, d: Mapping[str, Any]) -> tuple[int, ...]:
        layers = require_list(d, "layers", self.num_layers, "macro genotype")
        tokens: list[int] = []
        for i, layer in enumerate(layers):
            where = f"layer {i}"
            if not isinstance(layer, Mapping) or "op" not in layer:
                raise GenotypeError(f"{where}: missing 'op'")
            tokens.append(choice_index(layer["op"], self.op_names, where))
            skips = layer.get("skips", [])
            if isinstance(skips, str | bytes) or not isinstance(skips, Sequence):
                raise GenotypeError(f"{where}: 'skips' must be a list of layer indices")
            for j in skips:
                if isinstance(j, bool) or not isinstance(j, int) or not 0 <= j < i:
                    raise GenotypeError(f"{where}: skip from {j!r} out of range [0, {i - 1}]")
            tokens.extend(1 if j in set(skips) else 0 for j in range(i))
        return self.tokens(tokens)

    def size(self) -> int:
        """Literal count of encodings: num_ops^L * 2^(L(L-1)/2)."""
        n = self.num_layers
        return self.num_ops**n * 2 ** (n * (n - 1) // 2)

    def _sizes(self) -> list[dict[str, Any]]:
        n, o = self.num_layers, self.num_ops
        return [
            {
                "label": "literal count of distinct encodings (= the paper's count)",
                "formula": f"{o}^{n} * 2^({n}*{n - 1}/2)",
                "value": self.size(),
            }
        ]

    def _extra_description(self) -> dict[str, Any]:
        return {"ops": list(self.op_names)}
