"""The recurrent-cell space's shared-weight language model (Penn Treebank).

Token layout (E's order, ENAS_SPEC 1(c), decoded by `enas_core.zoo.rnn.space`):
``[f_0, j_1, f_1, ..., j_{N-1}, f_{N-1}]``, ``2N - 1`` ints. Node ``l >= 1`` reads node ``j_l`` through
its own matrix ``W_{l, j_l}`` (one per pair in the shared cell). The language model around the cell
and the cell's math are `enas_core.zoo.rnn.child`'s (`TiedLM`, `unroll_cell`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Unpack

import torch
from torch import Tensor, nn

from enas_core.spaces.base import int_list
from enas_core.zoo.rnn.child import CellPlan, LmShape, RnnChild, TiedLM
from enas_core.zoo.rnn.space import RNN_ACTIVATIONS, RnnNode, RnnSpace, loose_ends, parse_rnn_tokens


def pair_index(node: int, prev: int) -> int:
    """Index of ``W_{node, prev}`` (``prev < node``) among the shared cell's node matrices."""
    return node * (node - 1) // 2 + prev


def plan_of(arch: Sequence[RnnNode]) -> CellPlan:
    """The `CellPlan` (inputs, activation names, loose ends) of a parsed cell."""
    return CellPlan(
        tuple(node.prev for node in arch),
        tuple(RNN_ACTIVATIONS[node.act] for node in arch),
        tuple(loose_ends(arch)),
    )


class SharedRnnCell(nn.Module):
    """The shared node matrices: one ``W_{k, j}`` ``(H, 2H)`` for every pair ``j < k``.

    Separate parameters (not one stacked tensor), so an architecture's backward pass touches only
    its own N-1 matrices: the others keep ``grad is None`` and the optimizer skips them.
    """

    def __init__(self, hidden_size: int, num_nodes: int) -> None:
        super().__init__()
        self.hidden_size, self.num_nodes = hidden_size, num_nodes
        pairs = num_nodes * (num_nodes - 1) // 2
        self.w_nodes = nn.ParameterList(
            nn.Parameter(torch.empty(hidden_size, 2 * hidden_size)) for _ in range(pairs)
        )

    def path_weights(self, plan: CellPlan) -> list[Tensor]:
        """``W_{k, j_k}`` for ``k = 1 .. N-1``."""
        return [self.w_nodes[pair_index(k, plan.inputs[k])] for k in range(1, len(plan.inputs))]


class SharedRnnModel(TiedLM):
    """The shared-weight language model: ``forward(token_ids, hidden, arch_tokens)`` runs one cell.

    Args:
        vocab_size: V.
        shape: the sizes and regularization (`LmShape`: hidden_size, num_nodes, the dropouts,
            init_range).
    """

    def __init__(self, vocab_size: int, **shape: Unpack[LmShape]) -> None:
        super().__init__(vocab_size, **shape)
        self.cell = SharedRnnCell(self.hidden_size, self.num_nodes)
        self._init_uniform()

    def parse(self, tokens: Sequence[int] | Tensor) -> list[RnnNode]:
        """Per-node decisions of ``tokens`` (validated for this model's N)."""
        return parse_rnn_tokens(tokens, self.num_nodes)

    def plan(self, tokens: Sequence[int] | Tensor) -> CellPlan:
        """The decoded cell of ``tokens`` (validated for this model's N)."""
        return plan_of(self.parse(tokens))

    def forward(
        self,
        token_ids: Tensor,
        hidden: Tensor,
        arch_tokens: Sequence[int] | Tensor,
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Logits ``(T, B, V)`` and the next hidden state ``(B, H)`` for ``token_ids`` ``(T, B)``.

        ``generator`` (on the model's device) draws the dropout masks; None uses torch's global RNG.
        """
        plan = self.plan(arch_tokens)
        return self._run(token_ids, hidden, plan, self.cell.path_weights(plan), generator)


class SearchRnnChild(RnnChild):
    """The child of one cell (the search layout is the final one here), built by `from_shared`
    with copies of the shared weights on its path."""

    layout = "search"

    @classmethod
    def from_shared(cls, shared: SharedRnnModel, tokens: Sequence[int] | Tensor) -> SearchRnnChild:
        """A child holding copies of the shared weights on the path; same inputs give the same outputs."""
        structured = RnnSpace(num_nodes=shared.num_nodes).structured(int_list(tokens))
        child = cls(structured, shared.vocab_size, **shared.shape()).to(shared.w_x.device)
        with torch.no_grad():
            for name in ("w_x", "w_h", "decoder_bias"):
                getattr(child, name).copy_(getattr(shared, name))
            child.embedding.weight.copy_(shared.embedding.weight)
            for mine, theirs in zip(child.node_weights, shared.cell.path_weights(child.plan), strict=True):
                mine.copy_(theirs)
        return child.train(shared.training)
