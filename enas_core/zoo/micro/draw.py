"""How a micro genotype is drawn and written as text (standard library only)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from enas_core.drawing import CONCAT_INK, Box, Column, Edge, joined, link, op_ink, short_op
from enas_core.zoo.micro.space import CELL_NAMES, MicroSpace, cell_nodes, loose_ends


def draw(space: MicroSpace, tokens: Sequence[int]) -> list[Column]:
    """The normal and the reduction cell side by side, each a DAG from c_{k-2} and c_{k-1} through
    the computed nodes (arcs labelled with their op, first input on the left, second on the right)
    to c_{k}, which concatenates the loose ends (dashed)."""
    names = ("c_{k-2}", "c_{k-1}", *(f"node {k}" for k in range(space.num_nodes)))
    columns = []
    for cell_name, cell in zip(("normal cell", "reduction cell"), space.cells(tokens), strict=True):
        boxes = [
            Box("c_{k-2}", "input", "input c_{k-2} (output of cell k-2)"),
            Box("c_{k-1}", "input", "input c_{k-1} (output of cell k-1)"),
        ]
        edges = []
        for k, node in enumerate(cell_nodes(cell, space.num_nodes)):
            terms = []
            for (idx, name), side in zip(node, ("left", "right"), strict=True):
                terms.append(f"{name}({names[idx]})")
                title = f"{names[idx]} -> node {k}: {name}"
                edges.append(Edge(idx, k + 2, side, short_op(name), title, op_ink(name)))
            boxes.append(Box(f"node {k}", title=f"node {k} = {' + '.join(terms)}"))
        ends = loose_ends(cell, space.num_nodes)
        out = space.num_nodes + 2
        boxes.append(Box("c_{k}", "output", f"output c_{{k}} = concat({', '.join(names[i] for i in ends)})"))
        edges += [
            link(i, out, "right", ink=CONCAT_INK, dashed=True, title=f"{names[i]} -> c_{{k}}") for i in ends
        ]
        columns.append(Column(cell_name, boxes, edges, "dashed: concatenated into the output"))
    return columns


def text_lines(structured: Mapping[str, Any]) -> list[str]:
    """Per cell, ``node k = op(input) + op(input)`` (inputs 0 and 1 are the cell's two inputs
    c_{k-2} and c_{k-1}, computed nodes count from 2) and the concatenated loose ends."""
    return [line for name in CELL_NAMES for line in _cell_lines(name, structured.get(name) or {})]


def _cell_lines(name: str, cell: Mapping[str, Any]) -> list[str]:
    lines = [f"{name} cell (inputs: 0 = c[k-2], 1 = c[k-1]):"]
    for k, node in enumerate(cell.get("nodes") or [], start=2):
        terms = [f"{op}({idx})" for idx, op in zip(node.get("inputs", []), node.get("ops", []), strict=False)]
        lines.append(f"  node {k} = {' + '.join(terms)}")
    lines.append(f"  output = concat of nodes {joined(cell.get('concat') or [])}")
    return lines
