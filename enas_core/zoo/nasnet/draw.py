"""How a NASNet genotype is drawn (SVG columns) and written as text (standard library only).

Each cell is one column: h_{i-1} and h_i, the blocks in order (each box names its combine method;
its two input arcs are labelled with their ops, first input on the left, second on the right),
and h_{i+1}, which concatenates the unused states (dashed arcs).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from enas_core.drawing import CONCAT_INK, Box, Column, Edge, joined, link, op_ink, short_op
from enas_core.zoo.nasnet.space import CELL_NAMES, NasnetSpace

SHORT_OPS: dict[str, str] = {
    "conv_1x3_3x1": "1x3+3x1",
    "conv_1x7_7x1": "1x7+7x1",
    "dil_conv_3x3": "dil 3x3",
    "max_pool_5x5": "max 5x5",
    "max_pool_7x7": "max 7x7",
    "sep_conv_7x7": "sep 7x7",
}  # the NASNet-only labels; the rest are the common ones (`drawing.short_op`)
COMBINE_SIGNS = {"add": "+", "concat": "concat"}
INPUT_NAMES = ("h_{i-1}", "h_{i}")


def _label(op: str) -> str:
    return SHORT_OPS.get(op) or short_op(op)


def draw(space: NasnetSpace, tokens: Sequence[int]) -> list[Column]:
    """The normal and the reduction cell as two columns of the genotype drawing."""
    structured = space.structured(tokens)
    return [
        _cell_column(title, structured[key])
        for key, title in zip(CELL_NAMES, ("normal cell", "reduction cell"), strict=True)
    ]


def _cell_column(title: str, cell: Mapping[str, Any]) -> Column:
    blocks = cell["blocks"]
    names = [*INPUT_NAMES, *(f"block {k}" for k in range(len(blocks)))]
    boxes = [Box(name, "input", f"input {name}") for name in INPUT_NAMES]
    edges = []
    for k, block in enumerate(blocks):
        terms = []
        for idx, op, side in zip(block["inputs"], block["ops"], ("left", "right"), strict=True):
            terms.append(f"{op}({names[idx]})")
            edges.append(Edge(idx, k + 2, side, _label(op), f"{names[idx]} -> block {k}: {op}", op_ink(op)))
        how = block["combine"]
        text = f"block {k} = " + (f"concat({', '.join(terms)})" if how == "concat" else " + ".join(terms))
        boxes.append(Box(f"block {k} ({COMBINE_SIGNS[how]})", title=text))
    out = len(blocks) + 2
    ends = cell["concat"]
    boxes.append(Box("h_{i+1}", "output", f"output h_{{i+1}} = concat({', '.join(names[i] for i in ends)})"))
    edges += [
        link(i, out, "right", ink=CONCAT_INK, dashed=True, title=f"{names[i]} -> h_{{i+1}}") for i in ends
    ]
    return Column(
        title, boxes, edges, "dashed: concatenated into the output; (+) adds, (concat) concatenates"
    )


def text_lines(structured: Mapping[str, Any]) -> list[str]:
    """The genotype as text: per cell ``block k = op(in) + op(in)`` or ``concat(op(in), op(in))``
    (states 0 and 1 are the cell inputs h[i-1] and h[i]; blocks count from 2) and the output."""
    lines = []
    for name in CELL_NAMES:
        cell = structured.get(name) or {}
        lines.append(f"{name} cell (inputs: 0 = h[i-1], 1 = h[i]):")
        for k, block in enumerate(cell.get("blocks") or [], start=2):
            terms = [
                f"{op}({idx})" for idx, op in zip(block.get("inputs", []), block.get("ops", []), strict=False)
            ]
            both = f"concat({', '.join(terms)})" if block.get("combine") == "concat" else " + ".join(terms)
            lines.append(f"  block {k} = {both}")
        lines.append(f"  output = concat of states {joined(cell.get('concat') or [])}")
    return lines
