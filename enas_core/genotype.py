"""Versioned, canonical genotypes and their drawings (standard library only).

A `Genotype` is (space name, space params, raw tokens). It always holds a valid genotype
(construction validates). `hash()` is computed from the CANONICAL tokens, so equivalent
encodings (e.g. a micro node's two inputs swapped) share a hash.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape

from enas_core.spaces import GenotypeError, Space, get_space
from enas_core.spaces.macro import MacroSpace
from enas_core.spaces.micro import MicroSpace, loose_ends
from enas_core.spaces.rnn import RnnSpace

GENOTYPE_VERSION = 1


@dataclass(frozen=True)
class Genotype:
    """One architecture of one configured space.

    `params` may be given as a dict; it is stored as sorted (name, value) pairs.
    Raises GenotypeError when the space, its params or the tokens are invalid.
    """

    space: str
    params: tuple[tuple[str, int], ...]
    tokens: tuple[int, ...]

    def __post_init__(self) -> None:
        space = get_space(self.space, **dict(self.params))
        object.__setattr__(self, "params", tuple(space.params.items()))
        object.__setattr__(self, "tokens", space.tokens(self.tokens))

    @classmethod
    def of(cls, space: Space, tokens: Sequence[int]) -> Genotype:
        """The genotype `tokens` of a configured space (validates)."""
        return cls(space.name, tuple(space.params.items()), tuple(tokens))

    def get_space(self) -> Space:
        return get_space(self.space, **dict(self.params))

    def to_dict(self) -> dict[str, Any]:
        """{"version", "space", "params", "tokens", "structured"}."""
        space = self.get_space()
        return {
            "version": GENOTYPE_VERSION,
            "space": self.space,
            "params": dict(self.params),
            "tokens": list(self.tokens),
            "structured": space.structured(self.tokens),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Genotype:
        """Parse and validate; `tokens` wins over `structured` when both are given.

        Raises:
            GenotypeError: wrong version, unknown space or params, invalid tokens.
        """
        if not isinstance(d, Mapping):
            raise GenotypeError("genotype must be a JSON object")
        version = d.get("version", GENOTYPE_VERSION)
        if version != GENOTYPE_VERSION:
            raise GenotypeError(f"unsupported genotype version {version!r} (expected {GENOTYPE_VERSION})")
        name = d.get("space")
        if not isinstance(name, str):
            raise GenotypeError("genotype needs a 'space' name")
        params = d.get("params") or {}
        if not isinstance(params, Mapping):
            raise GenotypeError("genotype 'params' must be an object")
        space = get_space(name, **params)
        if "tokens" in d:
            tokens = space.tokens(d["tokens"])
        elif "structured" in d:
            tokens = space.from_structured(d["structured"])
        else:
            raise GenotypeError("genotype needs 'tokens' or 'structured'")
        return cls.of(space, tokens)

    def to_json(self) -> str:
        """Canonical JSON (sorted keys, no spaces)."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    def canonical_tokens(self) -> tuple[int, ...]:
        return self.get_space().canonical(self.tokens)

    def hash(self) -> str:
        """sha256 hex[:16] of the canonical tokens, the space name and its params."""
        payload = {"space": self.space, "params": dict(self.params), "tokens": list(self.canonical_tokens())}
        text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


# --- drawing ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Dag:
    """Nodes in topological order as (id, label, kind); kind: input | node | output."""

    title: str
    nodes: list[tuple[str, str, str]]
    edges: list[tuple[str, str, str]]  # (src, dst, label)


_BOX_W, _BOX_H, _COL_W, _ROW_H, _PAD = 104, 28, 150, 52, 20
_FILL = {"input": "#dbeafe", "node": "#fef3c7", "output": "#dcfce7"}


def genotype_svg(g: Genotype) -> str:
    """The genotype as a standalone SVG document (text): one DAG per cell (micro), the layer
    chain with skips (macro), or the recurrent cell (rnn)."""
    space = g.get_space()
    if isinstance(space, MicroSpace):
        dags = _micro_dags(space, g.tokens)
    elif isinstance(space, MacroSpace):
        dags = [_macro_dag(space, g.tokens)]
    elif isinstance(space, RnnSpace):
        dags = [_rnn_dag(space, g.tokens)]
    else:  # pragma: no cover - every registered space is handled above
        raise GenotypeError(f"no drawing for space {g.space!r}")
    return _render(dags, title=f"{g.space} genotype {g.hash()}")


def _micro_dags(space: MicroSpace, tokens: Sequence[int]) -> list[_Dag]:
    dags = []
    for title, cell in zip(("normal cell", "reduction cell"), space.cells(tokens), strict=True):
        nodes = [("0", "c_{k-2}", "input"), ("1", "c_{k-1}", "input")]
        nodes += [(str(k + 2), f"node {k}", "node") for k in range(space.num_nodes)]
        nodes.append(("out", "c_{k}", "output"))
        edges = []
        for k in range(space.num_nodes):
            for idx, op in ((cell[4 * k], cell[4 * k + 1]), (cell[4 * k + 2], cell[4 * k + 3])):
                edges.append((str(idx), str(k + 2), space.op_names[op]))
        edges += [(str(i), "out", "") for i in loose_ends(cell, space.num_nodes)]
        dags.append(_Dag(title, nodes, edges))
    return dags


def _macro_dag(space: MacroSpace, tokens: Sequence[int]) -> _Dag:
    layers = space.layers(tokens)
    nodes = [("in", "stem", "input")]
    nodes += [(str(i), f"{i}: {space.op_names[op]}", "node") for i, (op, _) in enumerate(layers)]
    nodes.append(("out", "head", "output"))
    edges = []
    for i, (_, skips) in enumerate(layers):
        edges.append(("in" if i == 0 else str(i - 1), str(i), ""))
        edges += [(str(j), str(i), "skip") for j, s in enumerate(skips) if s]
    edges.append((str(len(layers) - 1), "out", ""))
    return _Dag("network", nodes, edges)


def _rnn_dag(space: RnnSpace, tokens: Sequence[int]) -> _Dag:
    nodes = [("in", "x_t, h_{t-1}", "input")]
    edges = []
    for node, (j, f) in enumerate(space.nodes(tokens)):
        nodes.append((str(node), f"{node}: {space.activation_names[f]}", "node"))
        edges.append(("in" if j is None else str(j), str(node), ""))
    nodes.append(("out", "h_t (mean)", "output"))
    edges += [(str(n), "out", "") for n in space.outputs(tokens)]
    return _Dag("recurrent cell", nodes, edges)


def _layout(dag: _Dag) -> dict[str, tuple[float, float]]:
    """Column = longest path from an input; row = order of appearance within the column."""
    depth: dict[str, int] = {}
    for node_id, _, kind in dag.nodes:
        parents = [depth[s] for s, d, _ in dag.edges if d == node_id and s in depth]
        depth[node_id] = 0 if kind == "input" or not parents else 1 + max(parents)
    rows: dict[int, int] = {}
    pos: dict[str, tuple[float, float]] = {}
    for node_id, _, _ in dag.nodes:
        col = depth[node_id]
        row = rows.get(col, 0)
        rows[col] = row + 1
        pos[node_id] = (_PAD + col * _COL_W, _PAD + 24 + row * _ROW_H)
    return pos


def _edge_svg(p0: tuple[float, float], p1: tuple[float, float], label: str, bend: float) -> list[str]:
    x0, y0 = p0[0] + _BOX_W, p0[1] + _BOX_H / 2
    x1, y1 = p1[0], p1[1] + _BOX_H / 2
    dx = max(x1 - x0, 20.0)
    arc = -0.18 * (x1 - x0) if abs(y1 - y0) < 1 and x1 - x0 > _COL_W else 0.0
    c0 = (x0 + dx / 2, y0 + arc + bend)
    c1 = (x1 - dx / 2, y1 + arc + bend)
    out = [
        f'<path d="M{x0:.1f},{y0:.1f} C{c0[0]:.1f},{c0[1]:.1f} {c1[0]:.1f},{c1[1]:.1f} {x1:.1f},{y1:.1f}" '
        'fill="none" stroke="#475569" stroke-width="1.2" marker-end="url(#arrow)"/>'
    ]
    if label:
        mx = (x0 + 3 * c0[0] + 3 * c1[0] + x1) / 8
        my = (y0 + 3 * c0[1] + 3 * c1[1] + y1) / 8
        out.append(
            f'<text x="{mx:.1f}" y="{my - 3:.1f}" font-size="10" text-anchor="middle" '
            f'fill="#1e293b">{escape(label)}</text>'
        )
    return out


def _dag_svg(dag: _Dag, top: float) -> tuple[list[str], float, float]:
    pos = {k: (x, y + top) for k, (x, y) in _layout(dag).items()}
    parts = [f'<text x="{_PAD}" y="{top + 16}" font-size="13" font-weight="bold">{escape(dag.title)}</text>']
    seen: dict[tuple[str, str], int] = {}
    for src, dst, label in dag.edges:
        n = seen.get((src, dst), 0)
        seen[(src, dst)] = n + 1
        bend = 0.0 if n == 0 else (12.0 if n % 2 else -12.0)  # parallel edges: bow them apart
        parts += _edge_svg(pos[src], pos[dst], label, bend)
    for node_id, label, kind in dag.nodes:
        x, y = pos[node_id]
        parts.append(
            f'<g class="{kind}"><rect x="{x}" y="{y}" width="{_BOX_W}" height="{_BOX_H}" rx="6" '
            f'fill="{_FILL[kind]}" stroke="#334155"/>'
            f'<text x="{x + _BOX_W / 2}" y="{y + _BOX_H / 2 + 4}" font-size="11" text-anchor="middle">'
            f"{escape(label)}</text></g>"
        )
    width = max(x for x, _ in pos.values()) + _BOX_W + _PAD
    height = max(y for _, y in pos.values()) + _BOX_H + _PAD - top
    return parts, width, height


def _render(dags: list[_Dag], title: str) -> str:
    body: list[str] = []
    top, width = 0.0, 0.0
    for dag in dags:
        parts, w, h = _dag_svg(dag, top)
        body += parts
        top += h + _PAD
        width = max(width, w)
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{top:.0f}" '
        f'viewBox="0 0 {width:.0f} {top:.0f}" font-family="sans-serif">'
        f"<title>{escape(title)}</title>"
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#475569"/>'
        "</marker></defs>"
    )
    return head + "".join(body) + "</svg>\n"
