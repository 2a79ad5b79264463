"""The standalone recurrent-cell language model: the one definition (torch only).

Built from the genotype's structured form ``{"nodes": [{"activation": f_0}, {"input": j_1,
"activation": f_1}, ...], "outputs": [...]}`` (`RnnSpace.structured`): node 0 reads
``[x_t, h_{t-1}]``, node ``l`` reads node ``j_l`` through its own matrix ``W_l``; every node is a
highway unit ``h_l = sigmoid(c) * f(v) + (1 - sigmoid(c)) * h_j`` with ``[c, v] = h_j W_l`` (node 0
uses ``h_{t-1}`` as ``h_j``), its activation ``f`` by name from `ACTIVATIONS`; the cell output (and
next hidden state) is the mean of the loose ends ("outputs").

The language model (`TiedLM`, also the base of the shared model): embedding (tied to the softmax,
so its size is the hidden size) -> the cell unrolled over a BPTT window -> decoder
``out @ E^T + b``. Dropouts are variational (one mask per window, shared over time):
``dropout_input`` on the embedded inputs, ``dropout_hidden`` on ``h_{t-1}`` where node 0 reads it,
``dropout_output`` on the cell outputs before the decoder. `codegen` copies the text below the
`BODY_MARKER` line into the exported model.py.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple, TypedDict, Unpack, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# --- model.py body ---
# ---------------------------------------------------------------------------------------------
# the recurrent cell and its language model


def _identity(x: Tensor) -> Tensor:
    return x


ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "tanh": torch.tanh,
    "relu": F.relu,
    "identity": _identity,
    "sigmoid": torch.sigmoid,
}
"""The recurrent cell's activations by name."""


class CellPlan(NamedTuple):
    """A decoded cell: each node's input node (-1 for node 0: ``[x_t, h_{t-1}]``), each node's
    activation name, and the loose ends whose mean is the output."""

    inputs: tuple[int, ...]
    activations: tuple[str, ...]
    outputs: tuple[int, ...]


def cell_plan(structured: Mapping[str, Any]) -> CellPlan:
    """The `CellPlan` of a structured cell."""
    nodes = structured["nodes"]
    inputs = tuple(-1 if k == 0 else int(node["input"]) for k, node in enumerate(nodes))
    return CellPlan(inputs, tuple(node["activation"] for node in nodes), tuple(structured["outputs"]))


def _highway(base: Tensor, proj: Tensor, activation: str) -> Tensor:
    """``sigmoid(c) * f(v) + (1 - sigmoid(c)) * base`` with ``[c, v] = proj``."""
    c, v = proj.chunk(2, dim=-1)  # (B, H), (B, H)
    return base + torch.sigmoid(c) * (ACTIVATIONS[activation](v) - base)  # (B, H)


def unroll_cell(
    x_proj: Tensor,
    h: Tensor,
    w_h: Tensor,
    node_weights: Sequence[Tensor],
    plan: CellPlan,
    h_mask: Tensor | None,
) -> tuple[Tensor, Tensor]:
    """Run the cell over a window.

    Args:
        x_proj: ``x_t W_x`` for every step, ``(T, B, 2H)``.
        h: the hidden state entering the window, ``(B, H)``.
        w_h: node 0's matrix for ``h_{t-1}``, ``(H, 2H)``.
        node_weights: ``W_l`` for ``l = 1 .. N-1``, each ``(H, 2H)``.
        plan: the decoded cell.
        h_mask: variational dropout mask for ``h_{t-1}`` ``(B, H)`` (already scaled), or None.

    Returns:
        the outputs ``(T, B, H)`` and the last hidden state ``(B, H)``.
    """
    outputs = []
    for t in range(x_proj.size(0)):
        h_in = h if h_mask is None else h * h_mask  # (B, H)
        states = [_highway(h, x_proj[t] + h_in @ w_h, plan.activations[0])]  # [(B, H)]
        for k in range(1, len(plan.inputs)):
            base = states[plan.inputs[k]]  # (B, H)
            states.append(_highway(base, base @ node_weights[k - 1], plan.activations[k]))
        h = torch.stack([states[e] for e in plan.outputs]).mean(dim=0)  # (B, H)
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


class LmShape(TypedDict, total=False):
    """The language model's sizes and regularization (keyword arguments of `TiedLM` and its
    subclasses; a missing key takes its default): ``hidden_size`` H (200; also the embedding size:
    the embedding is tied to the softmax), ``num_nodes`` N (12), the variational dropout rates
    ``dropout_input`` / ``dropout_hidden`` / ``dropout_output`` (0.2 each) and ``init_range`` (0.05:
    weights start uniform in ``[-init_range, init_range]``)."""

    hidden_size: int
    num_nodes: int
    dropout_input: float
    dropout_hidden: float
    dropout_output: float
    init_range: float


class TiedLM(nn.Module):
    """Embedding, dropouts and tied decoder around a cell; subclasses provide the cell's weights."""

    def __init__(self, vocab_size: int, **shape: Unpack[LmShape]) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size = shape.get("hidden_size", 200)
        self.num_nodes = shape.get("num_nodes", 12)
        self.dropout_input = shape.get("dropout_input", 0.2)
        self.dropout_hidden = shape.get("dropout_hidden", 0.2)
        self.dropout_output = shape.get("dropout_output", 0.2)
        self.init_range = shape.get("init_range", 0.05)
        self.embedding = nn.Embedding(vocab_size, hidden_size)
        self.decoder_bias = nn.Parameter(torch.zeros(vocab_size))
        self.w_x = nn.Parameter(torch.empty(hidden_size, 2 * hidden_size))
        self.w_h = nn.Parameter(torch.empty(hidden_size, 2 * hidden_size))

    def shape(self) -> LmShape:
        """This model's sizes and regularization (what built it, but the vocabulary size)."""
        return cast(LmShape, {key: getattr(self, key) for key in LmShape.__optional_keys__})

    def init_hidden(self, batch_size: int) -> Tensor:
        """A zero hidden state ``(B, H)`` on the model's device."""
        return self.w_x.new_zeros(batch_size, self.hidden_size)

    def _init_uniform(self) -> None:
        """Every weight but the decoder bias uniform in ``[-init_range, init_range]``."""
        for p in self.parameters():
            if p is not self.decoder_bias:
                nn.init.uniform_(p, -self.init_range, self.init_range)

    def _run(
        self,
        token_ids: Tensor,
        hidden: Tensor,
        plan: CellPlan,
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
        out, hidden = unroll_cell(x_proj, hidden, self.w_h, node_weights, plan, h_mask)  # (T, B, H), (B, H)
        if o_mask is not None:
            out = out * o_mask  # (T, B, H)
        logits = out @ self.embedding.weight.t() + self.decoder_bias  # (T, B, V)
        return logits, hidden


class RnnChild(TiedLM):
    """A standalone language model for one recurrent cell (own weights for its N-1 edges only):
    ``forward(token_ids (T, B), hidden (B, H))`` -> (logits (T, B, V), next hidden (B, H))."""

    def __init__(self, structured: Mapping[str, Any], vocab_size: int, **shape: Unpack[LmShape]) -> None:
        super().__init__(vocab_size, **shape)
        h, n = self.hidden_size, self.num_nodes
        self.plan = cell_plan(structured)
        if len(self.plan.inputs) != n:
            raise ValueError(f"the cell has {len(self.plan.inputs)} nodes, the network {n}")
        self.node_weights = nn.ParameterList(nn.Parameter(torch.empty(h, 2 * h)) for _ in range(n - 1))
        self._init_uniform()

    def forward(
        self, token_ids: Tensor, hidden: Tensor, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """Logits ``(T, B, V)`` and the next hidden state ``(B, H)`` for ``token_ids`` ``(T, B)``.

        ``generator`` (on the model's device) draws the dropout masks; None uses torch's global RNG.
        """
        return self._run(token_ids, hidden, self.plan, list(self.node_weights), generator)


def build_model_from(genotype: Mapping[str, Any], network: Mapping[str, Any]) -> nn.Module:
    """The language model of the cell in `genotype` (its ``"structured"`` form), sizes from `network`."""
    keys = LmShape.__optional_keys__
    return RnnChild(genotype["structured"], network["vocab_size"], **{k: network[k] for k in keys})


def example_input(network: Mapping[str, Any], batch_size: int = 2, steps: int = 5) -> tuple[Tensor, ...]:
    """Random token ids (T, B) and a zero hidden state (B, H)."""
    token_ids = torch.randint(0, network["vocab_size"], (steps, batch_size))  # (T, B)
    return token_ids, torch.zeros(batch_size, network["hidden_size"])


def train_step(
    model: nn.Module, network: Mapping[str, Any], inputs: tuple[Tensor, ...], lr: float = 1.0
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
