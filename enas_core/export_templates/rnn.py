"""The standalone recurrent-cell language model (copied into model.py; torch only).

Same computation and parameter names as `enas_core.models.rnn.RnnChild`. Tokens
``[f_0, j_1, f_1, ..., j_{N-1}, f_{N-1}]``: node 0 reads ``[x_t, h_{t-1}]``, node ``l`` reads node
``j_l``; every node is a highway unit ``h_l = sigmoid(c) * f(v) + (1 - sigmoid(c)) * h_j`` with
``[c, v] = h_j W_l``; the cell output (and next hidden state) is the mean of the loose ends. The
embedding is tied to the softmax; dropouts are variational (one mask per window).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# --- model.py body ---
# ---------------------------------------------------------------------------------------------
# the recurrent cell and its language model

RNN_ACTIVATIONS = ("tanh", "relu", "identity", "sigmoid")


class RnnNode(NamedTuple):
    """One node's decisions: the node it reads (-1 for node 0) and its activation."""

    prev: int
    act: int


def parse_rnn_tokens(tokens: Sequence[int], num_nodes: int) -> list[RnnNode]:
    """Split the flat token list into per-node decisions."""
    flat = [int(t) for t in tokens]
    if len(flat) != 2 * num_nodes - 1:
        raise ValueError(f"{len(flat)} tokens do not describe a cell of {num_nodes} nodes")
    return [RnnNode(-1, flat[0])] + [RnnNode(flat[2 * k - 1], flat[2 * k]) for k in range(1, num_nodes)]


def loose_ends(arch: Sequence[RnnNode]) -> list[int]:
    """Nodes no other node reads (their mean is the cell output)."""
    used = {node.prev for node in arch[1:]}
    return [k for k in range(len(arch)) if k not in used]


def _activate(act: int, x: Tensor) -> Tensor:
    if act == 0:
        return torch.tanh(x)
    if act == 1:
        return F.relu(x)
    if act == 2:
        return x
    return torch.sigmoid(x)


def _highway(base: Tensor, proj: Tensor, act: int) -> Tensor:
    c, v = proj.chunk(2, dim=-1)  # (B, H), (B, H)
    return base + torch.sigmoid(c) * (_activate(act, v) - base)  # (B, H)


def _mask(
    batch: int, hidden: int, drop: float, like: Tensor, generator: torch.Generator | None
) -> Tensor | None:
    """An inverted-dropout mask (B, H), or None when not dropping."""
    if drop <= 0.0:
        return None
    keep = 1.0 - drop
    mask = torch.empty((batch, hidden), device=like.device, dtype=like.dtype)
    return mask.bernoulli_(keep, generator=generator) / keep


class RnnChild(nn.Module):
    """Language model of one recurrent cell: ``forward(token_ids (T, B), hidden (B, H))`` ->
    (logits (T, B, V), next hidden (B, H))."""

    def __init__(
        self,
        tokens: Sequence[int],
        vocab_size: int,
        hidden_size: int = 200,
        num_nodes: int = 12,
        dropout_input: float = 0.2,
        dropout_hidden: float = 0.2,
        dropout_output: float = 0.2,
        init_range: float = 0.05,
    ) -> None:
        super().__init__()
        self.vocab_size, self.hidden_size, self.num_nodes = vocab_size, hidden_size, num_nodes
        self.dropout_input, self.dropout_hidden = dropout_input, dropout_hidden
        self.dropout_output, self.init_range = dropout_output, init_range
        self.embedding = nn.Embedding(vocab_size, hidden_size)
        self.decoder_bias = nn.Parameter(torch.zeros(vocab_size))
        self.w_x = nn.Parameter(torch.empty(hidden_size, 2 * hidden_size))
        self.w_h = nn.Parameter(torch.empty(hidden_size, 2 * hidden_size))
        self.arch = parse_rnn_tokens(tokens, num_nodes)
        self.tokens = [self.arch[0].act] + [t for node in self.arch[1:] for t in node]
        self.node_weights = nn.ParameterList(
            nn.Parameter(torch.empty(hidden_size, 2 * hidden_size)) for _ in range(num_nodes - 1)
        )
        for p in self.parameters():
            if p is not self.decoder_bias:
                nn.init.uniform_(p, -init_range, init_range)

    def init_hidden(self, batch_size: int) -> Tensor:
        """A zero hidden state (B, H) on the model's device."""
        return self.w_x.new_zeros(batch_size, self.hidden_size)

    def forward(
        self, token_ids: Tensor, hidden: Tensor, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        batch, size = token_ids.size(1), self.hidden_size
        x = self.embedding(token_ids)  # (T, B, H)
        train = self.training
        x_mask = _mask(batch, size, self.dropout_input if train else 0.0, x, generator)
        h_mask = _mask(batch, size, self.dropout_hidden if train else 0.0, x, generator)
        o_mask = _mask(batch, size, self.dropout_output if train else 0.0, x, generator)
        if x_mask is not None:
            x = x * x_mask  # (T, B, H)
        x_proj = x @ self.w_x  # (T, B, 2H)
        out, hidden = self._unroll(x_proj, hidden, h_mask)  # (T, B, H), (B, H)
        if o_mask is not None:
            out = out * o_mask  # (T, B, H)
        return out @ self.embedding.weight.t() + self.decoder_bias, hidden  # (T, B, V), (B, H)

    def _unroll(self, x_proj: Tensor, h: Tensor, h_mask: Tensor | None) -> tuple[Tensor, Tensor]:
        ends, arch, weights = loose_ends(self.arch), self.arch, list(self.node_weights)
        outputs = []
        for t in range(x_proj.size(0)):
            h_in = h if h_mask is None else h * h_mask  # (B, H)
            states = [_highway(h, x_proj[t] + h_in @ self.w_h, arch[0].act)]  # [(B, H)]
            for k in range(1, len(arch)):
                base = states[arch[k].prev]  # (B, H)
                states.append(_highway(base, base @ weights[k - 1], arch[k].act))
            h = torch.stack([states[e] for e in ends]).mean(dim=0)  # (B, H)
            outputs.append(h)
        return torch.stack(outputs), h  # (T, B, H), (B, H)


def build_model_from(tokens: Sequence[int], network: dict[str, Any]) -> nn.Module:
    """The language model of the cell `tokens` with the sizes in `network`."""
    keys = ("vocab_size", "hidden_size", "num_nodes", "dropout_input", "dropout_hidden", "dropout_output",
            "init_range")  # fmt: skip
    return RnnChild(tokens, **{k: network[k] for k in keys})


def example_input(network: dict[str, Any], batch_size: int = 2, steps: int = 5) -> tuple[Tensor, ...]:
    """Random token ids (T, B) and a zero hidden state (B, H)."""
    token_ids = torch.randint(0, network["vocab_size"], (steps, batch_size))  # (T, B)
    return token_ids, torch.zeros(batch_size, network["hidden_size"])


def train_step(
    model: nn.Module, network: dict[str, Any], inputs: tuple[Tensor, ...], lr: float = 1.0
) -> float:
    """One SGD step of next-token cross-entropy on random targets; returns the loss before the step."""
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    logits, _ = model(*inputs)  # (T, B, V)
    targets = torch.randint(0, network["vocab_size"], logits.shape[:2])  # (T, B)
    loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1))
    optimizer.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 0.25)
    optimizer.step()
    return float(loss.detach())
