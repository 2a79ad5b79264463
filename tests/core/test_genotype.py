"""Genotype JSON, canonical hash and the SVG drawing."""

from __future__ import annotations

import json
import random
import xml.etree.ElementTree as ET

import pytest

from enas_core.genotype import GENOTYPE_VERSION, Genotype, genotype_svg
from enas_core.spaces import GenotypeError, get_space
from tests.core.conftest import PUBLISHED_MICRO, space_cases


def test_round_trip_and_canonical_json() -> None:
    g = Genotype("micro", {"num_nodes": 5}, PUBLISHED_MICRO)  # type: ignore[arg-type]
    assert g.params == (("num_nodes", 5), ("num_ops", 5))
    d = g.to_dict()
    assert d["version"] == GENOTYPE_VERSION and d["tokens"] == PUBLISHED_MICRO
    assert Genotype.from_dict(json.loads(g.to_json())) == g
    assert g.to_json() == json.dumps(d, sort_keys=True, separators=(",", ":"))
    assert Genotype.from_dict({"space": "micro", "structured": d["structured"]}) == g


def test_hash_uses_canonical_tokens() -> None:
    swapped = list(PUBLISHED_MICRO)
    swapped[0:4] = [swapped[2], swapped[3], swapped[0], swapped[1]]
    a = Genotype.of(get_space("micro"), PUBLISHED_MICRO)
    b = Genotype.of(get_space("micro"), swapped)
    assert a != b and a.hash() == b.hash() and len(a.hash()) == 16
    c = Genotype.of(get_space("micro", num_ops=5, num_nodes=5), [*PUBLISHED_MICRO[:-1], 0])
    assert c.hash() != a.hash()


def test_from_dict_errors() -> None:
    with pytest.raises(GenotypeError, match="version"):
        Genotype.from_dict({"version": 2, "space": "micro", "tokens": PUBLISHED_MICRO})
    with pytest.raises(GenotypeError, match="unknown search space"):
        Genotype.from_dict({"space": "x", "tokens": []})
    with pytest.raises(GenotypeError, match="node 2: input index 4"):
        Genotype.from_dict({"space": "micro", "tokens": [*PUBLISHED_MICRO[:8], 4, *PUBLISHED_MICRO[9:]]})


@pytest.mark.parametrize("name,params", space_cases({"micro": {}, "macro": {"num_layers": 6}, "rnn": {}}))
def test_svg_is_well_formed(name: str, params: dict[str, int]) -> None:
    space = get_space(name, **params)
    rng = random.Random(1)
    tokens = [rng.randrange(d.choices) for d in space.decisions]
    svg = genotype_svg(Genotype.of(space, tokens))
    root = ET.fromstring(svg)
    assert root.tag.endswith("svg")
    assert svg.count("<path") >= 2


def test_micro_svg_draws_both_cells_with_op_labels() -> None:
    svg = genotype_svg(Genotype.of(get_space("micro"), PUBLISHED_MICRO))
    assert "normal cell" in svg and "reduction cell" in svg
    assert "c_{k-2}" in svg and "sep_conv_5x5" in svg and "avg_pool_3x3" in svg
    ns = {"s": "http://www.w3.org/2000/svg"}
    boxes = ET.fromstring(svg).findall(".//s:rect", ns)
    assert len(boxes) == 2 * (2 + 5 + 1)  # per cell: 2 inputs, 5 nodes, 1 output
