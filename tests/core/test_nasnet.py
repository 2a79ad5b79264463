"""The NASNet cell space (enas_core/zoo/nasnet): decisions, sizes counted two ways, the structured
form, canonical form, the published NASNet-A cells and their drawing, the plugin and its
stdlib-only modules, the presets, the controller sampled by hand and by frequency (the models:
test_nasnet_models.py)."""

from __future__ import annotations

import ast
import itertools
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from enas_core import codegen
from enas_core.controller import ControllerConfig
from enas_core.drawing import render
from enas_core.spaces import GenotypeError, get_space
from enas_core.spaces.plugin import load
from enas_core.zoo.nasnet import PLUGIN, child, shared
from enas_core.zoo.nasnet.controller import NasnetController
from enas_core.zoo.nasnet.draw import draw, text_lines
from enas_core.zoo.nasnet.presets import PRESETS
from enas_core.zoo.nasnet.space import KNOWN, NASNET_OPS, NasnetSpace, network_config
from service.presets import PRESETS as CORE_PRESETS

NASNET_DIR = Path(child.__file__).parent
STDLIB_FILES = ("__init__.py", "space.py", "presets.py", "draw.py")


def _random_tokens(space: NasnetSpace, seed: int) -> list[int]:
    rng = random.Random(seed)
    return [rng.randrange(d.choices) for d in space.decisions]


# --- decisions and sizes ----------------------------------------------------------------------
def test_decisions_count_and_kinds() -> None:
    space = NasnetSpace()
    assert space.num_tokens == 2 * 5 * 5 == 50
    for cell in range(2):
        for k in range(5):
            block = space.decisions[25 * cell + 5 * k : 25 * cell + 5 * k + 5]
            assert [d.kind for d in block] == ["input", "input", "op", "op", "combine"]
            assert [d.choices for d in block] == [k + 2, k + 2, 13, 13, 2]
    assert len(NASNET_OPS) == 13 and tuple(child.NASNET_OP_REGISTRY) == NASNET_OPS
    assert NasnetSpace(num_blocks=2).num_tokens == 20


def test_size_two_ways_and_by_enumeration() -> None:
    for b in range(1, 7):
        space = NasnetSpace(num_blocks=b)
        assert space.size() == space.closed_form_size()
    assert NasnetSpace().size() == (720**2 * 13**10 * 2**5) ** 2
    one = NasnetSpace(num_blocks=1)
    cells = list(itertools.product(*(range(d.choices) for d in one.decisions[:5])))
    assert len(cells) ** 2 == one.size() == (4 * 169 * 2) ** 2
    other = [0, 1, 0, 0, 0]
    distinct = {one.canonical([*cell, *other])[:5] for cell in cells}
    assert len(distinct) == 26 * 27 and len(distinct) ** 2 == one.distinct_size()
    labels = [s["label"] for s in NasnetSpace().describe()["sizes"]]
    assert labels[0].startswith("literal count")


def test_structured_round_trip_and_errors() -> None:
    space = NasnetSpace()
    for seed in range(20):
        tokens = _random_tokens(space, seed)
        d = space.structured(tokens)
        assert space.from_structured(d) == tuple(tokens)
        assert {b["combine"] for c in ("normal", "reduce") for b in d[c]["blocks"]} <= {"add", "concat"}
    d = space.structured(_random_tokens(space, 0))
    d["normal"]["blocks"][0]["ops"][0] = "conv_5x5"
    with pytest.raises(GenotypeError, match="unknown op"):
        space.from_structured(d)
    d = space.structured(_random_tokens(space, 0))
    d["reduce"]["blocks"][1]["combine"] = "multiply"
    with pytest.raises(GenotypeError, match="combine"):
        space.from_structured(d)
    with pytest.raises(GenotypeError, match="out of range"):
        space.validate([5] + [0] * 49)  # block 0 reads states 0..1 only


def test_canonical_orders_the_two_inputs_of_a_block() -> None:
    space = NasnetSpace(num_blocks=2)
    base = [1, 0, 10, 4, 0, 2, 0, 0, 12, 1] * 2
    swapped = [0, 1, 4, 10, 0, 0, 2, 12, 0, 1] * 2
    assert space.canonical(base) == space.canonical(swapped)
    other_combine = list(base)
    other_combine[4] = 1
    assert space.canonical(other_combine) != space.canonical(base)
    assert space.canonical(space.canonical(base)) == space.canonical(base)


# --- the published NASNet-A cells -------------------------------------------------------------
def test_nasnet_a_is_the_published_cell_and_is_drawn() -> None:
    space = NasnetSpace()
    tokens = KNOWN["nasnet-a"]
    d = space.structured(tokens)
    assert space.from_structured(d) == tuple(tokens)
    normal, reduce = d["normal"], d["reduce"]
    assert [(b["ops"], b["inputs"]) for b in normal["blocks"]] == [  # DARTS genotypes.NASNet, pairwise
        (["sep_conv_5x5", "sep_conv_3x3"], [1, 0]),
        (["sep_conv_5x5", "sep_conv_3x3"], [0, 0]),
        (["avg_pool_3x3", "identity"], [1, 0]),
        (["avg_pool_3x3", "avg_pool_3x3"], [0, 0]),
        (["sep_conv_3x3", "identity"], [1, 1]),
    ]
    assert [b["inputs"] for b in reduce["blocks"]] == [[1, 0], [1, 0], [1, 0], [3, 2], [2, 1]]
    assert reduce["blocks"][1]["ops"] == ["max_pool_3x3", "sep_conv_7x7"]
    assert all(b["combine"] == "add" for c in (normal, reduce) for b in c["blocks"])
    assert normal["concat"] == [2, 3, 4, 5, 6] and reduce["concat"] == [4, 5, 6]
    lines = text_lines(d)
    assert "  block 2 = sep_conv_5x5(1) + sep_conv_3x3(0)" in lines
    assert "  output = concat of states 4, 5, 6" in lines
    columns = draw(space, tokens)
    assert [c.title for c in columns] == ["normal cell", "reduction cell"]
    assert [len(c.boxes) for c in columns] == [5 + 3, 5 + 3]
    assert [len(c.edges) for c in columns] == [10 + 5, 10 + 3]
    svg = render(columns, title="nasnet-a", ids="nasneta")
    assert svg.startswith("<svg") and "block 0 (+)" in svg and "sep 7x7" in svg


def test_concat_blocks_are_labelled() -> None:
    space = NasnetSpace(num_blocks=2)
    tokens = [1, 0, 10, 4, 1, 2, 0, 0, 12, 0] * 2
    lines = text_lines(space.structured(tokens))
    assert "  block 2 = concat(sep_conv_3x3(1), avg_pool_3x3(0))" in lines
    svg = render(draw(space, tokens), title="t", ids="t")
    assert "block 0 (concat)" in svg


# --- the plugin and the stdlib-only modules ---------------------------------------------------
def test_stdlib_only_modules_import_no_torch() -> None:
    for name in STDLIB_FILES:
        tree = ast.parse((NASNET_DIR / name).read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                root = node.module.split(".")[0]
                assert root in sys.stdlib_module_names or root == "enas_core", (name, node.module)
            elif isinstance(node, ast.Import):
                assert all(a.name.split(".")[0] in sys.stdlib_module_names for a in node.names), name
    code = (
        "import sys; import enas_core.zoo.nasnet as p, enas_core.zoo.nasnet.space, "
        "enas_core.zoo.nasnet.presets, enas_core.zoo.nasnet.draw; "
        "assert 'torch' not in sys.modules, sorted(m for m in sys.modules if 'torch' in m)[:3]"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_plugin_references_resolve() -> None:
    assert (PLUGIN.name, PLUGIN.order, PLUGIN.task) == ("nasnet", 40, "image")
    assert load(PLUGIN.space) is NasnetSpace
    assert PLUGIN.known and PLUGIN.shared_model and PLUGIN.final_model
    assert load(PLUGIN.known) is KNOWN and load(PLUGIN.network_config) is network_config
    assert (load(PLUGIN.draw), load(PLUGIN.text_lines)) == (draw, text_lines)
    assert load(PLUGIN.controller) is NasnetController
    assert load(PLUGIN.shared_model) is shared.build_shared and load(PLUGIN.final_model) is shared.build_final
    assert PLUGIN.default_preset in load(PLUGIN.presets)
    for module in PLUGIN.export_modules:
        __import__(module)


@pytest.mark.parametrize(
    ("name", "like"), [("demo-nasnet", "demo-micro"), ("paper-cifar10-nasnet", "paper-cifar10-micro")]
)
def test_presets_have_the_micro_presets_shape(name: str, like: str) -> None:
    preset, micro = PRESETS[name], CORE_PRESETS[like]
    assert preset["space"] == "nasnet" and preset["dataset"] == micro["dataset"]
    assert set(preset) == set(micro)
    for section in ("controller", "derive", "retrain", "resources"):
        assert set(preset[section]) == set(micro[section]), section
    assert set(preset["child"]) - {"num_blocks"} == set(micro["child"]) - {"num_nodes"}
    assert set(PLUGIN.spec_params) <= set(preset["child"])
    NasnetSpace(**{k: preset["child"][k] for k in PLUGIN.spec_params})
    assert preset["notes"] and PLUGIN.default_preset == "demo-nasnet"


def test_nasnet_a_at_the_paper_cifar_size() -> None:
    """18 normal cells in three stacks, 32 filters (TF-slim cifar_config): the count the paper
    preset's notes quote next to the paper's 3.3M."""
    retrain = PRESETS["paper-cifar10-nasnet"]["retrain"]
    space = NasnetSpace()
    network = network_config(space.params, retrain, codegen.DATASET_SHAPES["cifar10"])
    net = child.build_model_from({"structured": space.structured(KNOWN["nasnet-a"])}, network)
    assert sum(p.numel() for n, p in net.named_parameters() if not n.startswith("aux.")) == 3_214_304
    assert isinstance(net, child.NasnetNet) and net.classifier.in_features == 5 * 32 * 4


# --- the controller ---------------------------------------------------------------------------
def _controller(seed: int = 3, **params: int) -> NasnetController:
    cfg = ControllerConfig.from_dict(PRESETS["demo-nasnet"]["controller"])
    return NasnetController(NasnetSpace(**params), cfg, torch.Generator().manual_seed(seed))


def test_controller_shape_and_steps() -> None:
    c = _controller()
    h = 64
    expected = 8 * h * h + h + 13 * h + 13 * h + 13 + 2 * h * h + h + 2 * h + 2 * h
    assert sum(p.numel() for p in c.parameters()) == expected == 43_021
    assert c.b_soft is not None and c.b_soft.abs().sum() == 0
    calls: list[int] = []
    c.lstm.register_forward_hook(lambda *_: calls.append(1))
    c.sample(3, torch.Generator().manual_seed(0))
    assert len(calls) == 2 * (2 + 6 * 5)  # per cell 2 anchors, per block 2 idx + 2 op + combine + anchor
    with pytest.raises(TypeError):
        NasnetController(get_space("micro"))


def _step(c: NasnetController, x: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
    return c.lstm(x, state)  # type: ignore[no-any-return]


def _attention(c: NasnetController, keys: list[Tensor], h: Tensor) -> Tensor:
    return torch.cat([c.attn_v(torch.tanh(c.attn_w1(k) + c.attn_w2(h))) for k in keys], dim=1)


@torch.no_grad()
def test_sampling_by_hand() -> None:
    c = _controller(seed=5)
    t = c.sample(1, torch.Generator().manual_seed(0)).tokens
    probs = c.decision_probs(t)
    tok = t[0].tolist()
    z = torch.zeros(1, 64)
    s1 = _step(c, c.g_emb, (z, z))
    s2 = _step(c, c.g_emb, s1)
    s3 = _step(c, c.g_emb, s2)  # block 0, first input
    torch.testing.assert_close(
        probs[0], F.softmax(1.1 * torch.tanh(_attention(c, [s1[0], s2[0]], s3[0])), -1)
    )
    s4 = _step(c, z, s3)  # input = anchor of a cell input = zeros
    torch.testing.assert_close(
        probs[1], F.softmax(1.1 * torch.tanh(_attention(c, [s1[0], s2[0]], s4[0])), -1)
    )
    s5 = _step(c, z, s4)  # first op
    torch.testing.assert_close(probs[2], F.softmax((1.1 / 2.5) * torch.tanh(c.w_soft(s5[0]) + c.b_soft), -1))
    s6 = _step(c, c.w_emb(torch.tensor([tok[2]])), s5)
    torch.testing.assert_close(probs[3], F.softmax((1.1 / 2.5) * torch.tanh(c.w_soft(s6[0]) + c.b_soft), -1))
    s7 = _step(c, c.w_emb(torch.tensor([tok[3]])), s6)  # combine
    torch.testing.assert_close(probs[4], F.softmax(1.1 * torch.tanh(c.w_combine(s7[0])), -1))
    s8 = _step(c, c.combine_emb(torch.tensor([tok[4]])), s7)  # block 0's anchor (state 2)
    s9 = _step(c, c.g_emb, s8)  # block 1, first input: over states 0, 1, 2
    keys = [s1[0], s2[0], s8[0]]
    torch.testing.assert_close(probs[5], F.softmax(1.1 * torch.tanh(_attention(c, keys, s9[0])), -1))
    s10 = _step(c, [z, z, s8[0]][tok[5]], s9)
    torch.testing.assert_close(probs[6], F.softmax(1.1 * torch.tanh(_attention(c, keys, s10[0])), -1))


@torch.no_grad()
def test_samples_are_valid_with_the_policy_frequencies() -> None:
    c = _controller(seed=7, num_blocks=2)
    n = 4000
    batch = c.sample(n, torch.Generator().manual_seed(1))
    for row in batch.tokens.tolist()[:200]:
        c.space.validate(row)
    probs = c.decision_probs(batch.tokens)
    for pos, p in probs.items():
        counts = torch.bincount(batch.tokens[:, pos], minlength=p.shape[1]).double() / n
        expected = p.double().mean(dim=0)  # the mean of the conditional probabilities
        bound = 5 * (expected * (1 - expected) / n).sqrt() + 1e-3
        assert bool(((counts - expected).abs() <= bound).all()), pos
    torch.testing.assert_close(c.evaluate(batch.tokens[:50]).log_prob, batch.log_prob[:50])
