"""How a recurrent-cell genotype is drawn and written as text (standard library only)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from enas_core.drawing import CONCAT_INK, Box, Column, act_fill, joined, link
from enas_core.zoo.rnn.space import RnnSpace


def draw(space: RnnSpace, tokens: Sequence[int]) -> list[Column]:
    """The recurrent cell from x_t and h_{t-1} through nodes labelled with their activation to h_t,
    the mean of the loose ends."""
    boxes = [Box("x_t, h_{t-1}", "input", "inputs: x_t and h_{t-1}")]
    edges = []
    for node, (j, f) in enumerate(space.nodes(tokens)):
        name = space.activation_names[f]
        source = "x_t, h_{t-1}" if j is None else f"node {j}"
        boxes.append(Box(f"{node}: {name}", title=f"node {node} = {name}(W * {source})", fill=act_fill(name)))
        src = 0 if j is None else j + 1
        edges.append(link(src, node + 1, "left", title=f"{source} -> node {node}"))
    ends = space.outputs(tokens)
    out = space.num_nodes + 1
    boxes.append(Box("h_t = mean", "output", f"h_t = mean of nodes {ends}"))
    edges += [link(n + 1, out, "right", ink=CONCAT_INK, dashed=True, title=f"node {n} -> h_t") for n in ends]
    return [Column("recurrent cell", boxes, edges, "dashed: loose ends, averaged into h_t")]


def text_lines(structured: Mapping[str, Any]) -> list[str]:
    """One line per node, then the averaged loose ends."""
    nodes = structured.get("nodes") or []
    lines = [_node_line(k, node) for k, node in enumerate(nodes)]
    return [*lines, f"output = mean of nodes {joined(structured.get('outputs') or [])}"]


def _node_line(k: int, node: Mapping[str, Any]) -> str:
    source = "x[t], h[t-1]" if k == 0 or node.get("input") is None else f"node {node['input']}"
    return f"node {k:>2} = {node.get('activation')}({source})"
