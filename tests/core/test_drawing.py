"""The SVG drawings of `enas_core.genotype`: well-formed, complete, and laid out without overlaps.

Text extents here are the drawing's own estimate (the browser test measures real glyphs).
"""

from __future__ import annotations

import random
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator

import pytest

from enas_core.genotype import Genotype, genotype_svg
from enas_core.spaces import get_space, list_spaces
from enas_core.zoo.micro.space import loose_ends
from tests.core.conftest import PUBLISHED_MICRO, space_cases

NS = {"s": "http://www.w3.org/2000/svg"}
# every registered space at its defaults and at its demo size, plus bigger and smaller variants
SPACES = [(name, {}) for name in list_spaces()] + space_cases() + [
    ("micro", {"num_nodes": 7}), ("macro", {"num_layers": 24}), ("rnn", {"num_nodes": 4, "num_funcs": 2})
]  # fmt: skip
CHAR_EM = 0.62


def random_genotype(name: str, params: dict[str, int], seed: int) -> Genotype:
    space = get_space(name, **params)
    rng = random.Random(seed)
    return Genotype.of(space, [rng.randrange(d.choices) for d in space.decisions])


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    return root


def text_box(el: ET.Element) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) of a <text>, from its anchor, font size and length."""
    size = float(el.get("font-size", "11"))
    width = len("".join(el.itertext()).replace(title_text(el), "")) * size * CHAR_EM
    x, y = float(el.get("x", "0")), float(el.get("y", "0"))
    x0 = {"start": x, "middle": x - width / 2, "end": x - width}[el.get("text-anchor", "start")]
    return x0, y - size, x0 + width, y + 3


def title_text(el: ET.Element) -> str:
    title = el.find("s:title", NS)
    return "" if title is None else (title.text or "")


def box_text(group: ET.Element) -> str:
    """The visible text of a box (its <g>), subscripts included."""
    label = group.find("s:text", NS)
    return "" if label is None else "".join(label.itertext())


def rect_box(el: ET.Element) -> tuple[float, float, float, float]:
    x, y = float(el.get("x", "0")), float(el.get("y", "0"))
    return x, y, x + float(el.get("width", "0")), y + float(el.get("height", "0"))


def meet(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return min(a[2], b[2]) - max(a[0], b[0]) > 0.5 and min(a[3], b[3]) - max(a[1], b[1]) > 0.5


def free_texts(root: ET.Element) -> Iterator[ET.Element]:
    """Texts that are not inside a box: titles, op labels, captions."""
    boxed = {id(t) for g in root.iter("{http://www.w3.org/2000/svg}g") for t in g.iter()}
    return (t for t in root.iter("{http://www.w3.org/2000/svg}text") if id(t) not in boxed)


@pytest.mark.parametrize(("name", "params"), SPACES)
@pytest.mark.parametrize("seed", range(4))
def test_drawings_are_valid_svg_without_overlaps(name: str, params: dict[str, int], seed: int) -> None:
    genotype = random_genotype(name, params, seed)
    svg = genotype_svg(genotype)
    root = parse(svg)
    width, height = (float(v) for v in root.get("viewBox", "").split()[2:])
    ids = [el.get("id") for el in root.iter() if el.get("id")]
    assert len(ids) == len(set(ids)) and all(i.startswith(f"g{genotype.hash()[:10]}") for i in ids)
    assert set(re.findall(r"url\(#([^)]+)\)", svg)) <= set(ids)  # every marker used is defined
    rects = [rect_box(r) for r in root.iter("{http://www.w3.org/2000/svg}rect")]
    texts = [text_box(t) for t in free_texts(root)]
    for i, a in enumerate(texts):
        assert 0 <= a[0] and a[2] <= width and 0 <= a[1] and a[3] <= height
        assert not any(meet(a, b) for b in texts[i + 1 :])
        assert not any(meet(a, r) for r in rects)
    for i, a in enumerate(rects):
        assert not any(meet(a, b) for b in rects[i + 1 :])
    for g in root.iter("{http://www.w3.org/2000/svg}g"):  # a box's text fits in its box
        box, label = rect_box(g.find("s:rect", NS)), g.find("s:text", NS)  # type: ignore[arg-type]
        assert label is not None and (box[2] - box[0]) >= len("".join(label.itertext())) * 11 * CHAR_EM


def test_micro_draws_each_cell_with_inputs_nodes_ops_and_output() -> None:
    space = get_space("micro")
    genotype = Genotype.of(space, PUBLISHED_MICRO)
    root = parse(genotype_svg(genotype))
    titles = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text") if t.get("font-weight") == "600"]
    assert titles[:1] == ["normal cell"] and "reduction cell" in titles
    groups = [g.get("class") for g in root.iter("{http://www.w3.org/2000/svg}g")]
    assert groups == (["input"] * 2 + ["node"] * 5 + ["output"]) * 2
    labels = [t for t in root.iter("{http://www.w3.org/2000/svg}text") if t.get("class") == "op"]
    assert len(labels) == 2 * 2 * space.num_nodes  # two labelled inputs per node, per cell
    cells = space.structured(PUBLISHED_MICRO).values()
    expected = {op for cell in cells for node in cell["nodes"] for op in node["ops"]}
    assert {title_text(t).rsplit(": ", 1)[1] for t in labels} == expected
    dashed = [p for p in root.iter("{http://www.w3.org/2000/svg}path") if p.get("stroke-dasharray")]
    normal, reduce = space.cells(PUBLISHED_MICRO)
    assert len(dashed) == len(loose_ends(normal, 5)) + len(loose_ends(reduce, 5))
    assert "c<tspan" in genotype_svg(genotype)  # c_{k-2} set with a subscript


def test_macro_draws_layers_and_every_skip() -> None:
    space = get_space("macro", num_layers=12)
    genotype = random_genotype("macro", {"num_layers": 12}, 7)
    root = parse(genotype_svg(genotype))
    groups = list(root.iter("{http://www.w3.org/2000/svg}g"))
    layers = space.layers(genotype.tokens)
    assert len(groups) == len(layers) + 2
    assert box_text(groups[0]) == "stem" and box_text(groups[-1]) == "pool + fc"
    for i, (op, _) in enumerate(layers):
        assert title_text(groups[i + 1]).startswith(f"layer {i}: {space.op_names[op]}")
        assert box_text(groups[i + 1]).startswith(f"{i}: ")
    skips = sum(s for _, flags in layers for s in flags)
    arcs = [p for p in root.iter("{http://www.w3.org/2000/svg}path") if (p.get("d") or "").count("C")]
    assert len(arcs) == skips


def test_rnn_draws_inputs_activations_and_mean_of_loose_ends() -> None:
    space = get_space("rnn")
    genotype = random_genotype("rnn", {}, 3)
    svg = genotype_svg(genotype)
    root = parse(svg)
    groups = list(root.iter("{http://www.w3.org/2000/svg}g"))
    assert title_text(groups[0]) == "inputs: x_t and h_{t-1}" and box_text(groups[-1]) == "ht = mean"
    for node, (_, f) in enumerate(space.nodes(genotype.tokens)):
        assert box_text(groups[node + 1]) == f"{node}: {space.activation_names[f]}"
    edges = [p for p in root.iter("{http://www.w3.org/2000/svg}path") if p.get("class") == "edge"]
    assert len(edges) == space.num_nodes + len(space.outputs(genotype.tokens))


def test_the_same_genotype_draws_the_same_svg() -> None:
    a = genotype_svg(random_genotype("micro", {}, 1))
    assert a == genotype_svg(random_genotype("micro", {}, 1))
    assert a != genotype_svg(random_genotype("micro", {}, 2))
