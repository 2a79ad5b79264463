"""The NASNet cell search space (Zoph et al. 2018, "Learning Transferable Architectures for Scalable
Image Recognition"), the space the ENAS micro space was cut down from. Standard library only.

A cell has two inputs, h_{i-1} (state 0, the output of the cell before the previous one) and h_i
(state 1, the previous cell's output), and B blocks (paper: B = 5); block k makes state k + 2. Each
block takes the paper's five steps: (1) a first input and (2) a second input among the states made
so far (0 .. k + 1), (3) an op for the first and (4) an op for the second input, out of the 13
`NASNET_OPS`, and (5) how to combine the two results: element-wise addition or concatenation
along the channels. There is a normal cell and a reduction cell (two sets of decisions, as in
ENAS micro). The cell's output concatenates the states that no block reads (the paper's
"unused hidden states"; inputs included, as ENAS micro does).

Encoding (`Decision.kind` in parentheses): normal cell then reduction cell; block k is
`[idx1, idx2, op1, op2, combine]`: idx in [0, k + 1] (input), op in [0, 12] (op, by `NASNET_OPS`
position), combine 0 = add, 1 = concat (combine). 10 * B tokens; 50 for B = 5.

Concatenation: the concatenated state has 2C channels; the models project it back to C with a
ReLU -> 1x1 conv -> BN (as NASNet's reference code treats a cell input whose channel count does not
match), so every state has C channels and any op can read any state. The order of the two
(input, op) pairs then only permutes the projection's input channels (a relabelling of its learned
weights): for both combine methods `canonical` sorts the two pairs of a block.

Known genotype: NASNet-A (the paper's Figure 4), as DARTS's `genotypes.NASNet` carries it (inputs
0 = h_{i-1}, 1 = h_i; every block adds; normal output = states 2..6, reduction output = 4..6, which
the unused-states rule reproduces). TF-slim's nasnet_utils (the authors' code) agrees on every op
and input but hard-codes the output states differently: its normal cell also concatenates h_{i-1},
its reduction cell also block 1 (state 3); this space follows the rule, as DARTS does.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, NamedTuple

from enas_core.spaces.base import Decision, GenotypeError, Space, SpaceParam, choice_index, require_list
from enas_core.zoo.cell_network import cell_network_config

NASNET_OPS: tuple[str, ...] = (
    "identity",
    "conv_1x3_3x1",
    "conv_1x7_7x1",
    "dil_conv_3x3",
    "avg_pool_3x3",
    "max_pool_3x3",
    "max_pool_5x5",
    "max_pool_7x7",
    "conv_1x1",
    "conv_3x3",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "sep_conv_7x7",
)
COMBINE_METHODS: tuple[str, str] = ("add", "concat")
CELL_NAMES: tuple[str, str] = ("normal", "reduce")
TOKENS_PER_BLOCK = 5


class Block(NamedTuple):
    """One decoded block: the two input states, the two op indices, the combine index."""

    inputs: tuple[int, int]
    ops: tuple[int, int]
    combine: int


class NasnetSpace(Space):
    """The NASNet cell space. Params: num_blocks (B, blocks per cell; the paper: 5)."""

    name: ClassVar[str] = "nasnet"
    defaults: ClassVar[dict[str, int]] = {"num_blocks": 5}
    maximums: ClassVar[dict[str, int]] = {"num_blocks": 10}

    num_blocks = SpaceParam()

    @property
    def op_names(self) -> tuple[str, ...]:
        return NASNET_OPS

    @property
    def num_ops(self) -> int:
        return len(NASNET_OPS)

    def _decisions(self) -> list[Decision]:
        out: list[Decision] = []
        for cell in ("normal cell", "reduction cell"):
            for k in range(self.num_blocks):
                where = f"{cell} block {k}"
                for what, kind, choices in (
                    ("first input index", "input", k + 2),
                    ("second input index", "input", k + 2),
                    ("first op", "op", self.num_ops),
                    ("second op", "op", self.num_ops),
                    ("combine method", "combine", len(COMBINE_METHODS)),
                ):
                    out.append(Decision(len(out), where, what, kind, choices))
        return out

    def cells(self, tokens: Sequence[int]) -> tuple[tuple[Block, ...], tuple[Block, ...]]:
        """(normal cell blocks, reduction cell blocks), validated."""
        t = self.tokens(tokens)
        half = TOKENS_PER_BLOCK * self.num_blocks
        return decode_cell(t[:half]), decode_cell(t[half:])

    def canonical(self, tokens: Sequence[int]) -> tuple[int, ...]:
        """Sort the two (input, op) pairs of every block (see the module docstring)."""
        out: list[int] = []
        for cell in self.cells(tokens):
            for block in cell:
                (i1, o1), (i2, o2) = sorted(zip(block.inputs, block.ops, strict=True))
                out.extend([i1, i2, o1, o2, block.combine])
        return tuple(out)

    def structured(self, tokens: Sequence[int]) -> dict[str, Any]:
        """{"normal"|"reduce": {"blocks": [{"inputs", "ops" (names), "combine"}], "concat": [...]}}."""
        return {
            name: self._cell_structured(cell)
            for name, cell in zip(CELL_NAMES, self.cells(tokens), strict=True)
        }

    def _cell_structured(self, cell: Sequence[Block]) -> dict[str, Any]:
        blocks = [
            {
                "inputs": list(b.inputs),
                "ops": [NASNET_OPS[op] for op in b.ops],
                "combine": COMBINE_METHODS[b.combine],
            }
            for b in cell
        ]
        return {"blocks": blocks, "concat": loose_ends(cell)}

    def from_structured(self, d: Mapping[str, Any]) -> tuple[int, ...]:
        tokens: list[int] = []
        for name in CELL_NAMES:
            cell = d.get(name) if isinstance(d, Mapping) else None
            blocks = require_list(cell or {}, "blocks", self.num_blocks, f"{name} cell")
            for k, block in enumerate(blocks):
                where = f"{name} cell block {k}"
                inputs = require_list(block, "inputs", 2, where)
                ops = [choice_index(op, NASNET_OPS, where) for op in require_list(block, "ops", 2, where)]
                combine = block.get("combine", "add")
                if combine not in COMBINE_METHODS:
                    raise GenotypeError(f"{where}: combine must be one of {', '.join(COMBINE_METHODS)}")
                tokens.extend([*inputs, *ops, COMBINE_METHODS.index(combine)])
        return self.tokens(tokens)

    def size(self) -> int:
        """Literal count of distinct encodings: the product of every decision's choices."""
        return math.prod(d.choices for d in self.decisions)

    def closed_form_size(self) -> int:
        """The same count in closed form: ((B+1)!^2 * 13^(2B) * 2^B)^2 (both cells)."""
        b = self.num_blocks
        return (math.factorial(b + 1) ** 2 * self.num_ops ** (2 * b) * 2**b) ** 2

    def distinct_size(self) -> int:
        """Architectures up to the order of a block's two (input, op) pairs (what `canonical`
        identifies): per block m(m+1)/2 unordered pairs times 2 combines, m = 13 (k + 2)."""
        per_cell = math.prod(m * (m + 1) for m in (self.num_ops * (k + 2) for k in range(self.num_blocks)))
        return per_cell**2

    def _sizes(self) -> list[dict[str, Any]]:
        b, o = self.num_blocks, self.num_ops
        return [
            {
                "label": "literal count of distinct encodings (both cells)",
                "formula": f"({b + 1}!^2 * {o}^{2 * b} * 2^{b})^2",
                "value": self.closed_form_size(),
            },
            {
                "label": "distinct up to the order of a block's two inputs",
                "formula": f"(prod_k m_k (m_k + 1))^2, m_k = {o} (k + 2), k < {b}",
                "value": self.distinct_size(),
            },
        ]

    def _extra_description(self) -> dict[str, Any]:
        return {"ops": list(NASNET_OPS), "combine": list(COMBINE_METHODS), "cells": list(CELL_NAMES)}


# --- decoding (the only place tokens become blocks) ------------------------------------------
def decode_cell(cell: Sequence[int]) -> tuple[Block, ...]:
    """One cell's tokens -> its blocks (length-checked only: callers validate)."""
    if len(cell) % TOKENS_PER_BLOCK:
        raise GenotypeError(f"a nasnet cell has a multiple of {TOKENS_PER_BLOCK} tokens, got {len(cell)}")
    blocks = []
    for start in range(0, len(cell), TOKENS_PER_BLOCK):
        i1, i2, o1, o2, combine = (int(v) for v in cell[start : start + TOKENS_PER_BLOCK])
        blocks.append(Block((i1, i2), (o1, o2), combine))
    return tuple(blocks)


def split_cells(tokens: Sequence[int], num_blocks: int) -> tuple[tuple[Block, ...], tuple[Block, ...]]:
    """(normal, reduce) blocks of a genotype (length-checked only: for the models' hot path)."""
    half = TOKENS_PER_BLOCK * num_blocks
    if len(tokens) != 2 * half:
        raise GenotypeError(
            f"a nasnet genotype of {num_blocks} blocks has {2 * half} tokens, got {len(tokens)}"
        )
    return decode_cell(tokens[:half]), decode_cell(tokens[half:])


def loose_ends(cell: Sequence[Block]) -> list[int]:
    """States (inputs included) that no block reads: concatenated into the cell's output."""
    used = {i for block in cell for i in block.inputs}
    return [i for i in range(len(cell) + 2) if i not in used]


# --- the known genotype ----------------------------------------------------------------------
def _cell_tokens(blocks: Sequence[tuple[str, int, str, int]]) -> list[int]:
    """(op1, input1, op2, input2) per block, every block adding (DARTS's (op, input) pair order)."""
    out: list[int] = []
    for op1, in1, op2, in2 in blocks:
        out.extend([in1, in2, NASNET_OPS.index(op1), NASNET_OPS.index(op2), 0])
    return out


# NASNet-A, Zoph et al. 2018 Figure 4; DARTS cnn/genotypes.py `NASNet` (skip_connect = identity).
NASNET_A_NORMAL = _cell_tokens(
    [
        ("sep_conv_5x5", 1, "sep_conv_3x3", 0),
        ("sep_conv_5x5", 0, "sep_conv_3x3", 0),
        ("avg_pool_3x3", 1, "identity", 0),
        ("avg_pool_3x3", 0, "avg_pool_3x3", 0),
        ("sep_conv_3x3", 1, "identity", 1),
    ]
)
NASNET_A_REDUCE = _cell_tokens(
    [
        ("sep_conv_5x5", 1, "sep_conv_7x7", 0),
        ("max_pool_3x3", 1, "sep_conv_7x7", 0),
        ("avg_pool_3x3", 1, "sep_conv_5x5", 0),
        ("identity", 3, "avg_pool_3x3", 2),
        ("sep_conv_3x3", 2, "max_pool_3x3", 1),
    ]
)
KNOWN: dict[str, list[int]] = {"nasnet-a": NASNET_A_NORMAL + NASNET_A_REDUCE}  # num_blocks = 5


# --- the final network's shape (codegen / export) --------------------------------------------
def network_config(
    params: Mapping[str, int], retrain: Mapping[str, Any], shape: Mapping[str, int]
) -> dict[str, Any]:
    """The final network's shape (the fields of `enas_core.zoo.nasnet.child.NasnetNetConfig`) from
    the space's params, a spec's retrain section and the dataset's input shape.

    Raises:
        KeyError: the retrain section or the dataset shape lacks a needed key.
    """
    return cell_network_config({"num_blocks": int(params["num_blocks"])}, retrain, shape)
