"""The micro (cell) CNN space of ENAS: a normal cell and a reduction cell.

Encoding (E's order): normal cell then reduction cell; node k (0-based, k < num_nodes) is
`[idx1, op1, idx2, op2]` with idx in [0, k+1] (0 and 1 are the cell inputs c_{k-2}, c_{k-1};
i+2 is computed node i) and op in [0, num_ops-1].
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from enas_core.spaces.base import Decision, Space, SpaceParam, choice_index, require_list
from enas_core.zoo.cell_network import cell_network_config

MICRO_OPS: tuple[str, ...] = ("sep_conv_3x3", "sep_conv_5x5", "avg_pool_3x3", "max_pool_3x3", "identity")
CELL_NAMES: tuple[str, str] = ("normal", "reduce")


class MicroSpace(Space):
    """The ENAS micro space. Params: num_nodes (computed nodes per cell, B-2), num_ops (<= 5)."""

    name: ClassVar[str] = "micro"
    defaults: ClassVar[dict[str, int]] = {"num_nodes": 5, "num_ops": 5}
    maximums: ClassVar[dict[str, int]] = {"num_ops": len(MICRO_OPS)}

    num_nodes = SpaceParam()
    num_ops = SpaceParam()

    @property
    def op_names(self) -> tuple[str, ...]:
        return MICRO_OPS[: self.num_ops]

    def _decisions(self) -> list[Decision]:
        out: list[Decision] = []
        for cell in ("normal cell", "reduction cell"):
            for k in range(self.num_nodes):
                where = f"{cell} node {k}"
                for _ in range(2):
                    out.append(Decision(len(out), where, "input index", "input", k + 2))
                    out.append(Decision(len(out), where, "op", "op", self.num_ops))
        return out

    def cells(self, tokens: Sequence[int]) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """(normal cell tokens, reduction cell tokens), validated."""
        t = self.tokens(tokens)
        half = 4 * self.num_nodes
        return t[:half], t[half:]

    def canonical(self, tokens: Sequence[int]) -> tuple[int, ...]:
        """Sort the two (input, op) pairs of every node: the sum is order-free."""
        t = self.tokens(tokens)
        out: list[int] = []
        for start in range(0, len(t), 4):
            pairs = sorted([(t[start], t[start + 1]), (t[start + 2], t[start + 3])])
            out.extend(v for pair in pairs for v in pair)
        return tuple(out)

    def structured(self, tokens: Sequence[int]) -> dict[str, Any]:
        normal, reduce = self.cells(tokens)
        return {
            name: self._cell_structured(cell) for name, cell in zip(CELL_NAMES, (normal, reduce), strict=True)
        }

    def _cell_structured(self, cell: tuple[int, ...]) -> dict[str, Any]:
        nodes = [
            {"inputs": [i1, i2], "ops": [o1, o2]} for (i1, o1), (i2, o2) in cell_nodes(cell, self.num_nodes)
        ]
        return {"nodes": nodes, "concat": loose_ends(cell, self.num_nodes)}

    def from_structured(self, d: Mapping[str, Any]) -> tuple[int, ...]:
        tokens: list[int] = []
        for name in CELL_NAMES:
            cell = d.get(name) if isinstance(d, Mapping) else None
            nodes = require_list(cell or {}, "nodes", self.num_nodes, f"{name} cell")
            for k, node in enumerate(nodes):
                where = f"{name} cell node {k}"
                inputs = require_list(node, "inputs", 2, where)
                ops = require_list(node, "ops", 2, where)
                for idx, op in zip(inputs, ops, strict=True):
                    tokens.extend([idx, choice_index(op, self.op_names, where)])
        return self.tokens(tokens)

    def size(self) -> int:
        """Literal count of distinct encodings: (num_ops^N * (N+1)!)^4; (5^5 * 6!)^4 for N=5."""
        return (self.num_ops**self.num_nodes * math.factorial(self.num_nodes + 1)) ** 4

    def paper_size(self) -> int:
        """The paper's formula (num_ops * (B-2)!)^4 with B-2 = num_nodes: 1.296e11 for the defaults."""
        return (self.num_ops * math.factorial(self.num_nodes)) ** 4

    def _sizes(self) -> list[dict[str, Any]]:
        n, o = self.num_nodes, self.num_ops
        return [
            {
                "label": "literal count of distinct encodings (both cells)",
                "formula": f"({o}^{n} * {n + 1}!)^4",
                "value": self.size(),
            },
            {
                "label": "paper formula (5 x (B-2)!)^4",
                "formula": f"({o} * {n}!)^4",
                "value": self.paper_size(),
            },
        ]

    def _extra_description(self) -> dict[str, Any]:
        return {"ops": list(self.op_names), "cells": list(CELL_NAMES)}


def loose_ends(cell: Sequence[int], num_nodes: int) -> list[int]:
    """Nodes (0..num_nodes+1, inputs included) that no computed node reads: the cell's output."""
    used = {cell[4 * k] for k in range(num_nodes)} | {cell[4 * k + 2] for k in range(num_nodes)}
    return [i for i in range(num_nodes + 2) if i not in used]


def split_cells(tokens: Sequence[int], num_nodes: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(normal, reduce) cell tokens as plain ints (length-checked only: callers validate).

    Raises:
        ValueError: not 8 * num_nodes tokens.
    """
    t = tuple(int(v) for v in tokens)
    if len(t) != 8 * num_nodes:
        raise ValueError(f"micro genotype needs {8 * num_nodes} tokens, got {len(t)}")
    return t[: 4 * num_nodes], t[4 * num_nodes :]


def cell_nodes(cell: Sequence[int], num_nodes: int) -> list[tuple[tuple[int, str], tuple[int, str]]]:
    """One cell's tokens decoded: ((input, op name), (input, op name)) of each computed node."""
    return [
        ((cell[4 * k], MICRO_OPS[cell[4 * k + 1]]), (cell[4 * k + 2], MICRO_OPS[cell[4 * k + 3]]))
        for k in range(num_nodes)
    ]


def network_config(
    params: Mapping[str, int], retrain: Mapping[str, Any], shape: Mapping[str, int]
) -> dict[str, Any]:
    """The final network's shape (the fields of `enas_core.zoo.micro.child.MicroNetConfig`) from
    the space's params, a spec's retrain section and the dataset's input shape.

    Raises:
        KeyError: a needed key is missing.
    """
    return cell_network_config(
        {"num_nodes": params["num_nodes"], "num_ops": params["num_ops"]}, retrain, shape
    )
