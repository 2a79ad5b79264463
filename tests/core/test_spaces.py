"""Search spaces: sizes, validation messages, canonical and structured forms, stdlib-only import."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from enas_core.spaces import GenotypeError, get_space
from enas_core.zoo.macro.space import MacroSpace
from enas_core.zoo.micro.space import MicroSpace
from enas_core.zoo.rnn.space import RnnSpace
from tests.core.conftest import PUBLISHED_MICRO, space_cases


def test_micro_sizes_and_tokens() -> None:
    space = get_space("micro")
    assert space.params == {"num_nodes": 5, "num_ops": 5}
    assert space.num_tokens == 40
    assert space.size() == (5**5 * math.factorial(6)) ** 4
    assert f"{space.size():.4e}" == "2.5629e+25"
    assert space.paper_size() == 129_600_000_000  # (5 x (B-2)!)^4 = 1.296e11
    sizes = {s["label"]: s["value"] for s in space.describe()["sizes"]}
    assert sizes["paper formula (5 x (B-2)!)^4"] == 129_600_000_000
    assert MicroSpace(num_nodes=2).size() == (5**2 * math.factorial(3)) ** 4


def test_micro_size_is_literal_count_for_small_space() -> None:
    space = MicroSpace(num_nodes=1, num_ops=2)
    per_cell = (2 * 2) ** 2  # one node: (2 inputs x 2 ops)^2
    assert space.size() == per_cell**2


def test_macro_and_rnn_sizes() -> None:
    macro = get_space("macro")
    assert macro.num_tokens == 78
    assert macro.size() == 160_618_186_625_454_535_808_756_219_904
    assert MacroSpace(num_layers=24).num_tokens == 300
    rnn = get_space("rnn")
    assert rnn.num_tokens == 23
    assert rnn.size() == 8_036_313_307_545_600  # 4^12 * 12!
    assert rnn.literal_size() == 4**12 * math.factorial(11)


def test_validation_messages_name_the_position() -> None:
    space = get_space("micro")
    bad = list(PUBLISHED_MICRO)
    bad[8] = 4  # normal cell node 2, first input: allowed [0, 3]
    with pytest.raises(
        GenotypeError, match=r"normal cell node 2: input index 4 out of range \[0, 3\]"
    ) as info:
        space.validate(bad)
    assert info.value.position == 8
    bad = list(PUBLISHED_MICRO)
    bad[21] = 7
    with pytest.raises(GenotypeError, match=r"reduction cell node 0: op 7 out of range \[0, 4\]"):
        space.validate(bad)
    with pytest.raises(GenotypeError, match="needs 40 tokens, got 39"):
        space.validate(PUBLISHED_MICRO[:-1])
    with pytest.raises(GenotypeError, match="must be an integer"):
        space.validate([*PUBLISHED_MICRO[:-1], 1.5])
    with pytest.raises(
        GenotypeError, match=r"layer 2: skip \(from layer 0\) 2 out of range \[0, 1\] \(token 4\)"
    ):
        get_space("macro", num_layers=3).validate([0, 0, 1, 0, 2, 1])
    with pytest.raises(GenotypeError, match=r"node 3: input index 3 out of range \[0, 2\]"):
        RnnSpace(num_nodes=4).validate([0, 0, 1, 1, 2, 3, 0])


def test_registry_errors() -> None:
    with pytest.raises(GenotypeError, match="unknown search space"):
        get_space("nope")
    with pytest.raises(GenotypeError, match="no parameter 'foo'"):
        get_space("micro", foo=1)
    with pytest.raises(GenotypeError, match="num_ops"):
        get_space("micro", num_ops=6)


def test_micro_canonical_sorts_node_pairs() -> None:
    space = get_space("micro")
    swapped = list(PUBLISHED_MICRO)
    swapped[0:4] = [swapped[2], swapped[3], swapped[0], swapped[1]]
    assert swapped != PUBLISHED_MICRO
    assert space.canonical(swapped) == space.canonical(PUBLISHED_MICRO)
    assert get_space("macro", num_layers=2).canonical([1, 0, 1]) == (1, 0, 1)


@pytest.mark.parametrize(
    "name,params", space_cases({"micro": {}, "macro": {"num_layers": 5}, "rnn": {"num_nodes": 6}})
)
def test_structured_round_trip(name: str, params: dict[str, int]) -> None:
    import random

    space = get_space(name, **params)
    rng = random.Random(0)
    for _ in range(5):
        tokens = tuple(rng.randrange(d.choices) for d in space.decisions)
        structured = space.structured(tokens)
        json.dumps(structured)
        assert space.from_structured(json.loads(json.dumps(structured))) == tokens
    json.dumps(space.describe())


def test_micro_structured_published_arc() -> None:
    structured = get_space("micro").structured(PUBLISHED_MICRO)
    assert structured["normal"]["nodes"][0] == {"inputs": [0, 0], "ops": ["avg_pool_3x3", "sep_conv_3x3"]}
    assert structured["reduce"]["concat"] == [2, 4, 5, 6]


def test_spaces_and_genotype_import_stdlib_only() -> None:
    code = (
        "import sys, enas_core.spaces, enas_core.genotype; "
        "bad = [m for m in ('torch', 'numpy') if m in sys.modules]; print(bad); assert not bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
