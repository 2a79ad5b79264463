"""How a macro genotype is drawn and written as text (standard library only)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from enas_core.drawing import SKIP_INK, Box, Column, Edge, joined, op_fill, short_op
from enas_core.zoo.macro.space import MacroSpace, skip_sources


def draw(space: MacroSpace, tokens: Sequence[int]) -> list[Column]:
    """The network as a column of layers with their ops, skip connections as arcs."""
    layers = space.layers(tokens)
    boxes = [Box("stem", "input", "stem: 3x3 conv + BN")]
    edges = []
    for i, (layer, sources) in enumerate(zip(layers, skip_sources(layers), strict=True)):
        name = space.op_names[layer.op]
        title = f"layer {i}: {name}" + (f"; skips from layers {list(sources)}" if sources else "")
        boxes.append(Box(f"{i}: {short_op(name)}", title=title, fill=op_fill(name)))
        edges.append(Edge(i, i + 1, "mid"))
        edges += [
            Edge(j + 1, i + 1, "right", title=f"skip: layer {j} -> layer {i}", ink=SKIP_INK) for j in sources
        ]
    boxes.append(Box("pool + fc", "output", "head: global average pool, dropout, linear"))
    edges.append(Edge(len(layers), len(layers) + 1, "mid"))
    return [Column("network", boxes, edges, "arcs: skip connections, combined with the layer's output")]


def text_lines(structured: Mapping[str, Any]) -> list[str]:
    """One line per layer with its op and skip sources."""
    return [_layer_line(i, layer) for i, layer in enumerate(structured.get("layers") or [])]


def _layer_line(i: int, layer: Mapping[str, Any]) -> str:
    skips = layer.get("skips") or []
    return f"layer {i:>2}: {layer.get('op')}" + (f"  + skips from layers {joined(skips)}" if skips else "")
