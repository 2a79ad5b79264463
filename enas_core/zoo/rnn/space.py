"""The recurrent-cell space of ENAS (Penn Treebank).

E's encoding: `[f_0, (j_1, f_1), ..., (j_{N-1}, f_{N-1})]` = 2N-1 tokens (23 for N = 12).
Node 0 reads [x_t, h_{t-1}] and applies activation f_0; node l >= 1 reads node j_l in [0, l-1]
and applies f_l. The cell output is the mean of the loose ends (nodes no one reads).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, NamedTuple

from enas_core.spaces.base import (
    ArrayLike,
    Decision,
    GenotypeError,
    Space,
    SpaceParam,
    choice_index,
    int_list,
    require_list,
)

RNN_ACTIVATIONS: tuple[str, ...] = ("tanh", "relu", "identity", "sigmoid")
DEFAULT_INIT_RANGE = 0.05  # enas_core.lm.LMRetrainConfig.init_range


class RnnNode(NamedTuple):
    """One node's decisions: the node it reads (-1 for node 0: ``[x_t, h_{t-1}]``) and its activation."""

    prev: int
    act: int


def num_rnn_tokens(num_nodes: int) -> int:
    """Length of an RNN token list: ``2N - 1``."""
    return 2 * num_nodes - 1


def parse_rnn_tokens(
    tokens: Sequence[int] | ArrayLike, num_nodes: int, num_funcs: int = len(RNN_ACTIVATIONS)
) -> list[RnnNode]:
    """Split a flat token list (or a 1-d tensor) into per-node decisions.

    Raises:
        GenotypeError: wrong length or a value out of range (naming the position).
    """
    flat = int_list(tokens)
    if len(flat) != num_rnn_tokens(num_nodes):
        raise GenotypeError(
            f"rnn tokens: expected {num_rnn_tokens(num_nodes)} for {num_nodes} nodes, got {len(flat)}"
        )
    nodes = [RnnNode(-1, flat[0])] + [RnnNode(flat[2 * k - 1], flat[2 * k]) for k in range(1, num_nodes)]
    for k, node in enumerate(nodes):
        pos = 2 * k  # the activation's position
        if not 0 <= node.act < num_funcs:
            msg = (
                f"rnn tokens: position {pos} (node {k} activation) is {node.act}, not in [0, {num_funcs - 1}]"
            )
            raise GenotypeError(msg, pos)
        if k > 0 and not 0 <= node.prev < k:
            msg = f"rnn tokens: position {pos - 1} (node {k} input) is {node.prev}, not in [0, {k - 1}]"
            raise GenotypeError(msg, pos - 1)
    return nodes


def loose_ends(arch: Sequence[RnnNode]) -> list[int]:
    """Nodes no other node reads (their mean is the cell output)."""
    used = {node.prev for node in arch[1:]}
    return [k for k in range(len(arch)) if k not in used]


def network_config(
    params: Mapping[str, int], retrain: Mapping[str, Any], shape: Mapping[str, int]
) -> dict[str, Any]:
    """The final network's shape (`enas_core.zoo.rnn.child.RnnChild`'s sizes).

    Raises:
        KeyError: a needed key is missing.
    """
    return {
        "vocab_size": shape["vocab_size"],
        "hidden_size": int(retrain["hidden_size"]),
        "num_nodes": params["num_nodes"],
        "dropout_input": float(retrain["dropout_input"]),
        "dropout_hidden": float(retrain["dropout_hidden"]),
        "dropout_output": float(retrain["dropout_output"]),
        "init_range": float(retrain.get("init_range", DEFAULT_INIT_RANGE)),
    }


class RnnSpace(Space):
    """The ENAS recurrent-cell space. Params: num_nodes (N), num_funcs (activations, <= 4)."""

    name: ClassVar[str] = "rnn"
    defaults: ClassVar[dict[str, int]] = {"num_nodes": 12, "num_funcs": 4}
    maximums: ClassVar[dict[str, int]] = {"num_funcs": len(RNN_ACTIVATIONS)}

    num_nodes = SpaceParam()
    num_funcs = SpaceParam()

    @property
    def activation_names(self) -> tuple[str, ...]:
        return RNN_ACTIVATIONS[: self.num_funcs]

    def _decisions(self) -> list[Decision]:
        out = [Decision(0, "node 0", "activation", "activation", self.num_funcs)]
        for node in range(1, self.num_nodes):
            out.append(Decision(len(out), f"node {node}", "input index", "input", node))
            out.append(Decision(len(out), f"node {node}", "activation", "activation", self.num_funcs))
        return out

    def parse(self, tokens: Sequence[int]) -> list[RnnNode]:
        """Per-node decisions (`RnnNode`: input node, -1 for node 0, and activation), validated."""
        return parse_rnn_tokens(self.tokens(tokens), self.num_nodes, self.num_funcs)

    def nodes(self, tokens: Sequence[int]) -> list[tuple[int | None, int]]:
        """[(input node or None for node 0, activation) for each node], validated."""
        return [(None if k == 0 else node.prev, node.act) for k, node in enumerate(self.parse(tokens))]

    def outputs(self, tokens: Sequence[int]) -> list[int]:
        """The loose ends (averaged into the cell output)."""
        return loose_ends(self.parse(tokens))

    def structured(self, tokens: Sequence[int]) -> dict[str, Any]:
        nodes: list[dict[str, Any]] = []
        for j, f in self.nodes(tokens):
            node: dict[str, Any] = {"activation": self.activation_names[f]}
            if j is not None:
                node["input"] = j
            nodes.append(node)
        return {"nodes": nodes, "outputs": self.outputs(tokens)}

    def from_structured(self, d: Mapping[str, Any]) -> tuple[int, ...]:
        nodes = require_list(d, "nodes", self.num_nodes, "rnn genotype")
        tokens: list[int] = []
        for node_id, node in enumerate(nodes):
            where = f"node {node_id}"
            if not isinstance(node, Mapping) or "activation" not in node:
                raise GenotypeError(f"{where}: missing 'activation'")
            if node_id > 0:
                if "input" not in node:
                    raise GenotypeError(f"{where}: missing 'input'")
                tokens.append(node["input"])
            tokens.append(choice_index(node["activation"], self.activation_names, where))
        return self.tokens(tokens)

    def size(self) -> int:
        """The paper's count num_funcs^N * N! (8.04e15 for N = 12; the ENAS_SPEC checklist value).

        The literal count of E's encodings, num_funcs^N * (N-1)!, is in `describe()["sizes"]`.
        """
        return self.num_funcs**self.num_nodes * math.factorial(self.num_nodes)

    def literal_size(self) -> int:
        """Literal count of distinct encodings: num_funcs^N * (N-1)! (6.70e14 for N = 12)."""
        return self.num_funcs**self.num_nodes * math.factorial(self.num_nodes - 1)

    def _sizes(self) -> list[dict[str, Any]]:
        n, f = self.num_nodes, self.num_funcs
        return [
            {"label": "paper formula 4^N * N!", "formula": f"{f}^{n} * {n}!", "value": self.size()},
            {
                "label": "literal count of distinct encodings",
                "formula": f"{f}^{n} * {n - 1}!",
                "value": self.literal_size(),
            },
        ]

    def _extra_description(self) -> dict[str, Any]:
        return {"activations": list(self.activation_names)}
