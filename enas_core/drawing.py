"""Genotype drawings as standalone SVG text (standard library only; the API draws without torch).

A space draws a genotype by returning columns (its plugin's `draw`: (space, tokens) -> list[Column]);
`render(columns, title, ids)` lays them out side by side. `enas_core.genotype.genotype_svg` ties the two.

A drawing is one or more columns: boxes stacked top to bottom in topological order. An edge
between neighbouring boxes is a straight arrow; any other edge is an arc bowing out to the left
or right of the column, so no edge crosses a box. An arc's label is written beside the box it
enters, on the arc's side; a box is entered by at most one labelled arc per side, so labels
never meet. Text is measured with a generous per-character width (no font metrics here).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape

_BOX_W, _BOX_H, _PITCH, _PAD, _TITLE_H, _GAP = 112, 26, 46, 16, 28, 36
_BULGE0, _BULGE_STEP = 18.0, 13.0
_FONT, _LABEL_FONT, _TITLE_FONT, _CAPTION_FONT = 11, 10, 13, 10
_CHAR_EM = 0.62
_INK, MUTED = "#1e293b", "#64748b"
_BOX_STYLE = {
    "input": ("#e0f2fe", "#0369a1"),
    "node": ("#f8fafc", "#475569"),
    "output": ("#dcfce7", "#15803d"),
}
_SHORT_OPS = {
    "sep_conv_3x3": "sep 3x3", "sep_conv_5x5": "sep 5x5", "conv_3x3": "conv 3x3", "conv_5x5": "conv 5x5",
    "avg_pool_3x3": "avg 3x3", "max_pool_3x3": "max 3x3", "identity": "identity",
}  # fmt: skip
_OP_INK = {"sep": "#1d4ed8", "conv": "#1d4ed8", "avg": "#b45309", "max": "#b45309", "identity": MUTED}
_OP_FILL = {"sep": "#e0e7ff", "conv": "#dbeafe", "avg": "#fef3c7", "max": "#ffedd5"}
_ACT_FILL = {"tanh": "#dbeafe", "relu": "#fee2e2", "identity": "#f1f5f9", "sigmoid": "#dcfce7"}
SKIP_INK, CONCAT_INK = "#7c3aed", "#15803d"


@dataclass(frozen=True)
class Box:
    """One box of a column: ``text`` (``_x`` or ``_{xy}`` marks a subscript), role, tooltip."""

    text: str
    kind: str = "node"  # input | node | output
    title: str = ""
    fill: str | None = None


@dataclass(frozen=True)
class Edge:
    """An arrow from row ``src`` to row ``dst`` (src < dst); side: mid (neighbours), left, right."""

    src: int
    dst: int
    side: str
    label: str = ""
    title: str = ""
    ink: str = MUTED
    dashed: bool = False


@dataclass(frozen=True)
class Column:
    """One drawn column: a title, boxes top to bottom, edges between their rows, a caption."""

    title: str
    boxes: list[Box]
    edges: list[Edge]
    caption: str = ""


def short_op(op: str) -> str:
    """An op name as a short label ("sep_conv_3x3" -> "sep 3x3")."""
    return _SHORT_OPS.get(op, op.replace("_", " "))


def _family(op: str) -> str:
    return op.split("_", 1)[0]


def op_ink(op: str) -> str:
    """The colour of an edge that applies `op`."""
    return _OP_INK.get(_family(op), MUTED)


def op_fill(op: str) -> str | None:
    """The fill of a box that applies `op` (None: the default)."""
    return _OP_FILL.get(_family(op))


def act_fill(activation: str) -> str | None:
    """The fill of a box that applies `activation` (None: the default)."""
    return _ACT_FILL.get(activation)


def joined(values: Sequence[Any]) -> str:
    """Values as "a, b, c" ("-" when empty), for the text form of a genotype."""
    return ", ".join(str(v) for v in values) or "-"


def link(src: int, dst: int, side: str, **style: Any) -> Edge:
    """An edge drawn straight between neighbouring rows when unlabelled, else as an arc."""
    straight = dst == src + 1 and not style.get("label")
    return Edge(src, dst, "mid" if straight else side, **style)


def _text_w(text: str, size: float) -> float:
    return len(text) * size * _CHAR_EM


def _bulge(edge: Edge) -> float:
    return _BULGE0 + _BULGE_STEP * (edge.dst - edge.src)


def _reach(column: Column, side: str) -> float:
    """How far the column's arcs and labels reach beyond its boxes on ``side``."""
    reach = 0.0
    for e in column.edges:
        if e.side == side:
            label = _text_w(e.label, _LABEL_FONT) + 8 if e.label else 0.0
            reach = max(reach, 0.75 * _bulge(e) + 2, label)
    return reach


def _size(column: Column) -> tuple[float, float, float]:
    """(width, height, x of the box column's centre relative to the column's left edge)."""
    left, right = _reach(column, "left"), _reach(column, "right")
    inner = left + _BOX_W + right
    width = max(inner, _text_w(column.title, _TITLE_FONT), _text_w(column.caption, _CAPTION_FONT))
    height = _TITLE_H + len(column.boxes) * _PITCH + (16 if column.caption else 0)
    return width, height, (width - inner) / 2 + left + _BOX_W / 2


def _row_top(top: float, row: int) -> float:
    return top + _TITLE_H + row * _PITCH


def _edge_svg(edge: Edge, cx: float, top: float, marker: str) -> str:
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


def _label_svg(edge: Edge, cx: float, top: float) -> str:
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


def _box_svg(box: Box, cx: float, y: float) -> str:
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


def _column_svg(column: Column, left: float, top: float, ids: str) -> list[str]:
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
            f'text-anchor="middle" fill="{MUTED}">{escape(column.caption)}</text>'
        )
    return parts


def _marker_id(ids: str, ink: str) -> str:
    return f"{ids}-{ink.lstrip('#')}"


def _markers(columns: list[Column], ids: str) -> str:
    inks = sorted({e.ink for c in columns for e in c.edges})
    return "".join(
        f'<marker id="{_marker_id(ids, ink)}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="6" '
        f'markerHeight="6" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="{ink}"/></marker>'
        for ink in inks
    )


def render(columns: list[Column], title: str, ids: str) -> str:
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
