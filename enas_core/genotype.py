"""Versioned, canonical genotypes and their drawings (standard library only).

A `Genotype` is (space name, space params, raw tokens). It always holds a valid genotype
(construction validates). `hash()` is computed from the CANONICAL tokens, so equivalent
encodings (e.g. a micro node's two inputs swapped) share a hash.
"""

from __future__ import annotations

import hashlib
import json
import re
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
# A drawing is one or more columns: boxes stacked top to bottom in topological order. An edge
# between neighbouring boxes is a straight arrow; any other edge is an arc bowing out to the left
# or right of the column, so no edge crosses a box. An arc's label is written beside the box it
# enters, on the arc's side; a box is entered by at most one labelled arc per side, so labels
# never meet. Text is measured with a generous per-character width (no font metrics here).

_BOX_W, _BOX_H, _PITCH, _PAD, _TITLE_H, _GAP = 112, 26, 46, 16, 28, 36
_BULGE0, _BULGE_STEP = 18.0, 13.0
_FONT, _LABEL_FONT, _TITLE_FONT, _CAPTION_FONT = 11, 10, 13, 10
_CHAR_EM = 0.62
_INK, _MUTED = "#1e293b", "#64748b"
_BOX_STYLE = {
    "input": ("#e0f2fe", "#0369a1"),
    "node": ("#f8fafc", "#475569"),
    "output": ("#dcfce7", "#15803d"),
}
_SHORT_OPS = {
    "sep_conv_3x3": "sep 3x3", "sep_conv_5x5": "sep 5x5", "conv_3x3": "conv 3x3", "conv_5x5": "conv 5x5",
    "avg_pool_3x3": "avg 3x3", "max_pool_3x3": "max 3x3", "identity": "identity",
}  # fmt: skip
_OP_INK = {"sep": "#1d4ed8", "conv": "#1d4ed8", "avg": "#b45309", "max": "#b45309", "identity": _MUTED}
_OP_FILL = {"sep": "#e0e7ff", "conv": "#dbeafe", "avg": "#fef3c7", "max": "#ffedd5"}
_ACT_FILL = {"tanh": "#dbeafe", "relu": "#fee2e2", "identity": "#f1f5f9", "sigmoid": "#dcfce7"}
_SKIP_INK, _CONCAT_INK = "#7c3aed", "#15803d"


@dataclass(frozen=True)
class _Box:
    """One box of a column: ``text`` (``_x`` or ``_{xy}`` marks a subscript), role, tooltip."""

    text: str
    kind: str = "node"  # input | node | output
    title: str = ""
    fill: str | None = None


@dataclass(frozen=True)
class _Edge:
    """An arrow from row ``src`` to row ``dst`` (src < dst); side: mid (neighbours), left, right."""

    src: int
    dst: int
    side: str
    label: str = ""
    title: str = ""
    ink: str = _MUTED
    dashed: bool = False


@dataclass(frozen=True)
class _Column:
    title: str
    boxes: list[_Box]
    edges: list[_Edge]
    caption: str = ""


def genotype_svg(g: Genotype) -> str:
    """The genotype drawn as a standalone SVG document (text).

    micro: the normal and the reduction cell side by side, each a DAG from c_{k-2} and c_{k-1}
    through the computed nodes (arcs labelled with their op, first input on the left, second on
    the right) to c_{k}, which concatenates the loose ends (dashed). macro: the network as a column
    of layers with their ops, skip connections as arcs. rnn: the recurrent cell from x_t and
    h_{t-1} through nodes labelled with their activation to h_t, the mean of the loose ends.
    """
    space = g.get_space()
    if isinstance(space, MicroSpace):
        columns = _micro_columns(space, g.tokens)
    elif isinstance(space, MacroSpace):
        columns = [_macro_column(space, g.tokens)]
    elif isinstance(space, RnnSpace):
        columns = [_rnn_column(space, g.tokens)]
    else:  # pragma: no cover - every registered space is handled above
        raise GenotypeError(f"no drawing for space {g.space!r}")
    return _render(columns, title=f"{g.space} genotype {g.hash()}", ids=f"g{g.hash()[:10]}")


def _short(op: str) -> str:
    return _SHORT_OPS.get(op, op.replace("_", " "))


def _family(op: str) -> str:
    return op.split("_", 1)[0]


def _link(src: int, dst: int, side: str, **style: Any) -> _Edge:
    """An edge drawn straight between neighbouring rows when unlabelled, else as an arc."""
    straight = dst == src + 1 and not style.get("label")
    return _Edge(src, dst, "mid" if straight else side, **style)


def _micro_columns(space: MicroSpace, tokens: Sequence[int]) -> list[_Column]:
    names = ("c_{k-2}", "c_{k-1}", *(f"node {k}" for k in range(space.num_nodes)))
    columns = []
    for cell_name, cell in zip(("normal cell", "reduction cell"), space.cells(tokens), strict=True):
        boxes = [_Box("c_{k-2}", "input", "input c_{k-2} (output of cell k-2)"),
                 _Box("c_{k-1}", "input", "input c_{k-1} (output of cell k-1)")]  # fmt: skip
        edges = []
        for k in range(space.num_nodes):
            inputs = ((cell[4 * k], cell[4 * k + 1], "left"), (cell[4 * k + 2], cell[4 * k + 3], "right"))
            terms = []
            for idx, op, side in inputs:
                name = space.op_names[op]
                terms.append(f"{name}({names[idx]})")
                title = f"{names[idx]} -> node {k}: {name}"
                edges.append(_Edge(idx, k + 2, side, _short(name), title, _OP_INK.get(_family(name), _MUTED)))
            boxes.append(_Box(f"node {k}", title=f"node {k} = {' + '.join(terms)}"))
        ends = loose_ends(cell, space.num_nodes)
        out = space.num_nodes + 2
        boxes.append(_Box("c_{k}", "output", f"output c_{{k}} = concat({', '.join(names[i] for i in ends)})"))
        edges += [_link(i, out, "right", ink=_CONCAT_INK, dashed=True, title=f"{names[i]} -> c_{{k}}")
                  for i in ends]  # fmt: skip
        columns.append(_Column(cell_name, boxes, edges, "dashed: concatenated into the output"))
    return columns


def _macro_column(space: MacroSpace, tokens: Sequence[int]) -> _Column:
    layers = space.layers(tokens)
    boxes = [_Box("stem", "input", "stem: 3x3 conv + BN")]
    edges = []
    for i, (op, skips) in enumerate(layers):
        name = space.op_names[op]
        sources = [j for j, s in enumerate(skips) if s]
        title = f"layer {i}: {name}" + (f"; skips from layers {sources}" if sources else "")
        boxes.append(_Box(f"{i}: {_short(name)}", title=title, fill=_OP_FILL.get(_family(name))))
        edges.append(_Edge(i, i + 1, "mid"))
        edges += [_Edge(j + 1, i + 1, "right", title=f"skip: layer {j} -> layer {i}", ink=_SKIP_INK)
                  for j in sources]  # fmt: skip
    boxes.append(_Box("pool + fc", "output", "head: global average pool, dropout, linear"))
    edges.append(_Edge(len(layers), len(layers) + 1, "mid"))
    return _Column("network", boxes, edges, "arcs: skip connections, combined with the layer's output")


def _rnn_column(space: RnnSpace, tokens: Sequence[int]) -> _Column:
    boxes = [_Box("x_t, h_{t-1}", "input", "inputs: x_t and h_{t-1}")]
    edges = []
    for node, (j, f) in enumerate(space.nodes(tokens)):
        name = space.activation_names[f]
        source = "x_t, h_{t-1}" if j is None else f"node {j}"
        boxes.append(
            _Box(f"{node}: {name}", title=f"node {node} = {name}(W * {source})", fill=_ACT_FILL.get(name))
        )
        src = 0 if j is None else j + 1
        edges.append(_link(src, node + 1, "left", title=f"{source} -> node {node}"))
    ends = space.outputs(tokens)
    out = space.num_nodes + 1
    boxes.append(_Box("h_t = mean", "output", f"h_t = mean of nodes {ends}"))
    edges += [
        _link(n + 1, out, "right", ink=_CONCAT_INK, dashed=True, title=f"node {n} -> h_t") for n in ends
    ]
    return _Column("recurrent cell", boxes, edges, "dashed: loose ends, averaged into h_t")


def _text_w(text: str, size: float) -> float:
    return len(text) * size * _CHAR_EM


def _bulge(edge: _Edge) -> float:
    return _BULGE0 + _BULGE_STEP * (edge.dst - edge.src)


def _reach(column: _Column, side: str) -> float:
    """How far the column's arcs and labels reach beyond its boxes on ``side``."""
    reach = 0.0
    for e in column.edges:
        if e.side == side:
            label = _text_w(e.label, _LABEL_FONT) + 8 if e.label else 0.0
            reach = max(reach, 0.75 * _bulge(e) + 2, label)
    return reach


def _size(column: _Column) -> tuple[float, float, float]:
    """(width, height, x of the box column's centre relative to the column's left edge)."""
    left, right = _reach(column, "left"), _reach(column, "right")
    inner = left + _BOX_W + right
    width = max(inner, _text_w(column.title, _TITLE_FONT), _text_w(column.caption, _CAPTION_FONT))
    height = _TITLE_H + len(column.boxes) * _PITCH + (16 if column.caption else 0)
    return width, height, (width - inner) / 2 + left + _BOX_W / 2


def _row_top(top: float, row: int) -> float:
    return top + _TITLE_H + row * _PITCH


def _edge_svg(edge: _Edge, cx: float, top: float, marker: str) -> str:
    style = f'fill="none" stroke="{edge.ink}" stroke-width="1.3" stroke-opacity="0.85" '
    style += f'marker-end="url(#{marker})"'
    if edge.dashed:
        style += ' stroke-dasharray="4 3"'
    if edge.side == "mid":
        y0, y1 = _row_top(top, edge.src) + _BOX_H, _row_top(top, edge.dst)
        path = f"M{cx:.1f},{y0:.1f} L{cx:.1f},{y1:.1f}"
    else:
        sign = -1.0 if edge.side == "left" else 1.0
        x = cx + sign * _BOX_W / 2
        y0 = _row_top(top, edge.src) + _BOX_H / 2 + 6  # leave low, enter high: ends never share a point
        y1 = _row_top(top, edge.dst) + _BOX_H / 2 - 4
        bx = x + sign * _bulge(edge)
        path = f"M{x:.1f},{y0:.1f} C{bx:.1f},{y0:.1f} {bx:.1f},{y1:.1f} {x:.1f},{y1:.1f}"
    title = f"<title>{escape(edge.title)}</title>" if edge.title else ""
    return f'<path class="edge" d="{path}" {style}>{title}</path>'


def _label_svg(edge: _Edge, cx: float, top: float) -> str:
    """The label beside the box the edge enters, on the edge's side, over a white halo."""
    sign = -1.0 if edge.side == "left" else 1.0
    x = cx + sign * (_BOX_W / 2 + 7)
    y = _row_top(top, edge.dst) + _BOX_H / 2 - 8
    anchor = "end" if edge.side == "left" else "start"
    return (
        f'<text class="op" x="{x:.1f}" y="{y:.1f}" font-size="{_LABEL_FONT}" font-weight="600" '
        f'text-anchor="{anchor}" fill="{edge.ink}" stroke="#fff" stroke-width="4" stroke-linejoin="round" '
        f'paint-order="stroke">'
        f"{escape(edge.label)}<title>{escape(edge.title)}</title></text>"
    )


def _box_svg(box: _Box, cx: float, y: float) -> str:
    fill, stroke = _BOX_STYLE[box.kind]
    x = cx - _BOX_W / 2
    title = f"<title>{escape(box.title)}</title>" if box.title else ""
    return (
        f'<g class="{box.kind}">{title}<rect x="{x:.1f}" y="{y:.1f}" width="{_BOX_W}" height="{_BOX_H}" '
        f'rx="6" fill="{box.fill or fill}" stroke="{stroke}"/>'
        f'<text x="{cx:.1f}" y="{y + _BOX_H / 2 + 4:.1f}" font-size="{_FONT}" text-anchor="middle" '
        f'fill="{_INK}">{_rich_text(box.text)}</text></g>'
    )


_SUBSCRIPT = re.compile(r"_(\{[^}]*\}|\w)")


def _rich_text(text: str) -> str:
    """``text`` as SVG text content, ``_x`` and ``_{xy}`` set as subscripts."""
    segments, pos = [], 0
    for m in _SUBSCRIPT.finditer(text):
        segments += [(text[pos : m.start()], 0), (m.group(1).strip("{}"), 3)]
        pos = m.end()
    segments.append((text[pos:], 0))
    parts, level = [], 0
    for chunk, target in segments:
        if not chunk:
            continue
        size = f' font-size="{_FONT - 2}"' if target else ""
        shift = f' dy="{target - level}"' if target != level else ""
        parts.append(f"<tspan{shift}{size}>{escape(chunk)}</tspan>" if shift or size else escape(chunk))
        level = target
    return "".join(parts)


def _column_svg(column: _Column, left: float, top: float, ids: str) -> list[str]:
    width, height, offset = _size(column)
    cx = left + offset
    parts = [
        f'<text x="{left + width / 2:.1f}" y="{top + 16:.1f}" font-size="{_TITLE_FONT}" font-weight="600" '
        f'text-anchor="middle" fill="{_INK}">{escape(column.title)}</text>'
    ]
    parts += [_edge_svg(e, cx, top, _marker_id(ids, e.ink)) for e in column.edges]
    parts += [_box_svg(b, cx, _row_top(top, row)) for row, b in enumerate(column.boxes)]
    parts += [_label_svg(e, cx, top) for e in column.edges if e.label]
    if column.caption:
        parts.append(
            f'<text x="{left + width / 2:.1f}" y="{top + height - 4:.1f}" font-size="{_CAPTION_FONT}" '
            f'text-anchor="middle" fill="{_MUTED}">{escape(column.caption)}</text>'
        )
    return parts


def _marker_id(ids: str, ink: str) -> str:
    return f"{ids}-{ink.lstrip('#')}"


def _markers(columns: list[_Column], ids: str) -> str:
    inks = sorted({e.ink for c in columns for e in c.edges})
    return "".join(
        f'<marker id="{_marker_id(ids, ink)}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="6" '
        f'markerHeight="6" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="{ink}"/></marker>'
        for ink in inks
    )


def _render(columns: list[_Column], title: str, ids: str) -> str:
    """Columns side by side in one SVG document; ``ids`` prefixes its element ids (unique per genotype,
    so several drawings can be inlined in one page)."""
    body: list[str] = []
    left, height = float(_PAD), 0.0
    for column in columns:
        width, h, _ = _size(column)
        body += _column_svg(column, left, _PAD, ids)
        left += width + _GAP
        height = max(height, h)
    width, height = left - _GAP + _PAD, height + 2 * _PAD
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" font-family="system-ui, -apple-system, Segoe UI, '
        f'Helvetica, Arial, sans-serif" role="img"><title>{escape(title)}</title>'
        f"<defs>{_markers(columns, ids)}</defs>"
    )
    return head + "".join(body) + "</svg>\n"
