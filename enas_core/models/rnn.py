"""The recurrent-cell space (Penn Treebank): the shared language model and the standalone child.

Token layout (E's order, ENAS_SPEC 1(c)): ``[f_0, j_1, f_1, ..., j_{N-1}, f_{N-1}]``, ``2N - 1`` ints.
Node 0 reads ``[x_t, h_{t-1}]``; node ``l >= 1`` reads node ``j_l`` in ``[0, l-1]`` through its own matrix
``W_{l, j_l}`` (one per pair in the shared cell). Activations ``f``: 0 tanh, 1 relu, 2 identity,
3 sigmoid. Every node is a highway unit: with ``[c, v] = h_j W`` (``W`` maps H to 2H),
``h_l = sigmoid(c) * f(v) + (1 - sigmoid(c)) * h_j`` (node 0 uses ``h_{t-1}`` as ``h_j``). The cell's
output (and next hidden state) is the mean of the loose ends (nodes no other node reads).

The language model: embedding (tied to the softmax, so its size is the hidden size) -> the cell
unrolled over a BPTT window -> decoder ``out @ E^T + b``. Dropouts are variational (one mask per
window, shared over time): ``dropout_input`` on the embedded inputs, ``dropout_hidden`` on ``h_{t-1}``
where node 0 reads it, ``dropout_output`` on the cell outputs before the decoder.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from enas_core.spaces import RNN_ACTIVATIONS, GenotypeError


class RnnNode(NamedTuple):
    """One node's decisions: the node it reads (-1 for node 0: ``[x_t, h_{t-1}]``) and its activation."""

    prev: int
    act: int


def num_rnn_tokens(num_nodes: int) -> int:
    """Length of an RNN token list: ``2N - 1``."""
    return 2 * num_nodes - 1


def parse_rnn_tokens(tokens: Sequence[int] | Tensor, num_nodes: int) -> list[RnnNode]:
    """Split a flat token list into per-node decisions.

    Raises:
        GenotypeError: wrong length or a value out of range (naming the position).
    """
    flat = [int(t) for t in (tokens.tolist() if isinstance(tokens, Tensor) else tokens)]
    if len(flat) != num_rnn_tokens(num_nodes):
        raise GenotypeError(
            f"rnn tokens: expected {num_rnn_tokens(num_nodes)} for {num_nodes} nodes, got {len(flat)}"
        )
    nodes = [RnnNode(-1, flat[0])] + [RnnNode(flat[2 * k - 1], flat[2 * k]) for k in range(1, num_nodes)]
    for k, node in enumerate(nodes):
        pos = 2 * k  # the activation's position
        if not 0 <= node.act < len(RNN_ACTIVATIONS):
            raise GenotypeError(
                f"rnn tokens: position {pos} (node {k} activation) is {node.act}, not in [0, 3]", pos
            )
        if k > 0 and not 0 <= node.prev < k:
            msg = f"rnn tokens: position {pos - 1} (node {k} input) is {node.prev}, not in [0, {k - 1}]"
            raise GenotypeError(msg, pos - 1)
    return nodes


def loose_ends(arch: Sequence[RnnNode]) -> list[int]:
    """Nodes no other node reads (their mean is the cell output)."""
    used = {node.prev for node in arch[1:]}
    return [k for k in range(len(arch)) if k not in used]


def pair_index(node: int, prev: int) -> int:
    """Index of ``W_{node, prev}`` (``prev < node``) among the shared cell's node matrices."""
    return node * (node - 1) // 2 + prev


def _activate(act: int, x: Tensor) -> Tensor:
    if act == 0:
        return torch.tanh(x)
    if act == 1:
        return F.relu(x)
    if act == 2:
        return x
    return torch.sigmoid(x)


def _highway(base: Tensor, proj: Tensor, act: int) -> Tensor:
    """``sigmoid(c) * f(v) + (1 - sigmoid(c)) * base`` with ``[c, v] = proj``."""
    c, v = proj.chunk(2, dim=-1)  # (B, H), (B, H)
    return base + torch.sigmoid(c) * (_activate(act, v) - base)  # (B, H)


def unroll_cell(
    x_proj: Tensor,
    h: Tensor,
    w_h: Tensor,
    node_weights: Sequence[Tensor],
    arch: Sequence[RnnNode],
    h_mask: Tensor | None,
) -> tuple[Tensor, Tensor]:
    """Run the cell over a window.

    Args:
        x_proj: ``x_t W_x`` for every step, ``(T, B, 2H)``.
        h: the hidden state entering the window, ``(B, H)``.
        w_h: node 0's matrix for ``h_{t-1}``, ``(H, 2H)``.
        node_weights: ``W_{l, j_l}`` for ``l = 1 .. N-1``, each ``(H, 2H)``.
        arch: the parsed architecture.
        h_mask: variational dropout mask for ``h_{t-1}`` ``(B, H)`` (already scaled), or None.

    Returns:
        the outputs ``(T, B, H)`` and the last hidden state ``(B, H)``.
    """
    ends = loose_ends(arch)
    outputs = []
    for t in range(x_proj.size(0)):
        h_in = h if h_mask is None else h * h_mask  # (B, H)
        states = [_highway(h, x_proj[t] + h_in @ w_h, arch[0].act)]  # [(B, H)]
        for k in range(1, len(arch)):
            base = states[arch[k].prev]  # (B, H)
            states.append(_highway(base, base @ node_weights[k - 1], arch[k].act))
        h = torch.stack([states[e] for e in ends]).mean(dim=0)  # (B, H)
        outputs.append(h)
    return torch.stack(outputs), h  # (T, B, H), (B, H)


def _mask(
    shape: tuple[int, ...], drop: float, like: Tensor, generator: torch.Generator | None
) -> Tensor | None:
    """An inverted-dropout mask ``(shape)``, or None when not dropping."""
    if drop <= 0.0:
        return None
    keep = 1.0 - drop
    mask = torch.empty(shape, device=like.device, dtype=like.dtype)
    return mask.bernoulli_(keep, generator=generator) / keep


class _TiedLM(nn.Module):
    """Embedding, dropouts and tied decoder around a cell; subclasses provide the cell's weights."""

    def __init__(
        self,
        vocab_size: int,
        hidden_size: int,
        num_nodes: int,
        dropout_input: float,
        dropout_hidden: float,
        dropout_output: float,
        init_range: float,
    ) -> None:
        super().__init__()
        self.vocab_size, self.hidden_size, self.num_nodes = vocab_size, hidden_size, num_nodes
        self.dropout_input = dropout_input
        self.dropout_hidden = dropout_hidden
        self.dropout_output = dropout_output
        self.init_range = init_range
        self.embedding = nn.Embedding(vocab_size, hidden_size)
        self.decoder_bias = nn.Parameter(torch.zeros(vocab_size))
        self.w_x = nn.Parameter(torch.empty(hidden_size, 2 * hidden_size))
        self.w_h = nn.Parameter(torch.empty(hidden_size, 2 * hidden_size))

    def init_hidden(self, batch_size: int) -> Tensor:
        """A zero hidden state ``(B, H)`` on the model's device."""
        return self.w_x.new_zeros(batch_size, self.hidden_size)

    def _run(
        self,
        token_ids: Tensor,
        hidden: Tensor,
        arch: Sequence[RnnNode],
        node_weights: Sequence[Tensor],
        generator: torch.Generator | None,
    ) -> tuple[Tensor, Tensor]:
        batch = token_ids.size(1)
        training = self.training
        x = self.embedding(token_ids)  # (T, B, H)
        x_mask = _mask((batch, self.hidden_size), self.dropout_input if training else 0.0, x, generator)
        h_mask = _mask((batch, self.hidden_size), self.dropout_hidden if training else 0.0, x, generator)
        o_mask = _mask((batch, self.hidden_size), self.dropout_output if training else 0.0, x, generator)
        if x_mask is not None:
            x = x * x_mask  # (T, B, H)
        x_proj = x @ self.w_x  # (T, B, 2H)
        out, hidden = unroll_cell(x_proj, hidden, self.w_h, node_weights, arch, h_mask)  # (T, B, H), (B, H)
        if o_mask is not None:
            out = out * o_mask  # (T, B, H)
        logits = out @ self.embedding.weight.t() + self.decoder_bias  # (T, B, V)
        return logits, hidden


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

    def path_weights(self, arch: Sequence[RnnNode]) -> list[Tensor]:
        """``W_{k, j_k}`` for ``k = 1 .. N-1``."""
        return [self.w_nodes[pair_index(k, arch[k].prev)] for k in range(1, len(arch))]


class SharedRnnModel(_TiedLM):
    """The shared-weight language model: ``forward(token_ids, hidden, arch_tokens)`` runs one cell.

    Args:
        vocab_size: V.
        hidden_size: H (also the embedding size: the embedding is tied to the softmax).
        num_nodes: N (12 in the paper).
        dropout_input / dropout_hidden / dropout_output: variational dropout rates (see module doc).
        init_range: weights start uniform in ``[-init_range, init_range]``.
    """

    def __init__(
        self,
        vocab_size: int,
        hidden_size: int = 200,
        num_nodes: int = 12,
        dropout_input: float = 0.2,
        dropout_hidden: float = 0.2,
        dropout_output: float = 0.2,
        init_range: float = 0.05,
    ) -> None:
        super().__init__(
            vocab_size, hidden_size, num_nodes, dropout_input, dropout_hidden, dropout_output, init_range
        )
        self.cell = SharedRnnCell(hidden_size, num_nodes)
        for p in self.parameters():
            if p is not self.decoder_bias:
                nn.init.uniform_(p, -init_range, init_range)

    def parse(self, tokens: Sequence[int] | Tensor) -> list[RnnNode]:
        """Per-node decisions of ``tokens`` (validated for this model's N)."""
        return parse_rnn_tokens(tokens, self.num_nodes)

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
        arch = self.parse(arch_tokens)
        return self._run(token_ids, hidden, arch, self.cell.path_weights(arch), generator)


class RnnChild(_TiedLM):
    """A standalone language model for one recurrent cell (own weights for its N-1 edges only)."""

    def __init__(
        self,
        tokens: Sequence[int] | Tensor,
        vocab_size: int,
        hidden_size: int = 200,
        num_nodes: int = 12,
        dropout_input: float = 0.2,
        dropout_hidden: float = 0.2,
        dropout_output: float = 0.2,
        init_range: float = 0.05,
    ) -> None:
        super().__init__(
            vocab_size, hidden_size, num_nodes, dropout_input, dropout_hidden, dropout_output, init_range
        )
        self.arch = parse_rnn_tokens(tokens, num_nodes)
        self.tokens = [self.arch[0].act] + [t for node in self.arch[1:] for t in node]
        self.node_weights = nn.ParameterList(
            nn.Parameter(torch.empty(hidden_size, 2 * hidden_size)) for _ in range(num_nodes - 1)
        )
        for p in self.parameters():
            if p is not self.decoder_bias:
                nn.init.uniform_(p, -init_range, init_range)

    @classmethod
    def from_shared(cls, shared: SharedRnnModel, tokens: Sequence[int] | Tensor) -> RnnChild:
        """A child holding copies of the shared weights on the path; same inputs give the same outputs."""
        child = cls(
            tokens,
            shared.vocab_size,
            shared.hidden_size,
            shared.num_nodes,
            shared.dropout_input,
            shared.dropout_hidden,
            shared.dropout_output,
            shared.init_range,
        ).to(shared.w_x.device)
        with torch.no_grad():
            for name in ("w_x", "w_h", "decoder_bias"):
                getattr(child, name).copy_(getattr(shared, name))
            child.embedding.weight.copy_(shared.embedding.weight)
            for mine, theirs in zip(child.node_weights, shared.cell.path_weights(child.arch), strict=True):
                mine.copy_(theirs)
        return child.train(shared.training)

    def forward(
        self, token_ids: Tensor, hidden: Tensor, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """Logits ``(T, B, V)`` and the next hidden state ``(B, H)`` for ``token_ids`` ``(T, B)``."""
        return self._run(token_ids, hidden, self.arch, list(self.node_weights), generator)
