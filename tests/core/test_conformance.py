"""ENAS_SPEC section 7 (the conformance checklist) and the controller's sampling rules of sections
1-2, each against numbers or formulas written out here independently of the code under test.

* tokens per architecture and the three spaces' sizes (exact integers, both micro counts labelled);
* controller parameter counts in E's layout, built from the paper presets' controller sections;
* logit shaping per preset, re-derived by hand from the controller's own weights: macro
  1.5*tanh(z) (skips [-q, q]), micro index 1.1*tanh(z) and op (1.1/2.5)*tanh(z + b) + fixed bias,
  ptb 2.5*tanh(z/5) with -(l-j)^2/6 on the index logits; the macro KL skip penalty;
* the published micro final architecture: parses, builds at the final config on CIFAR shapes,
  and its parameter count equals a count that follows the authors' `_fixed_layer` op by op
  (reported next to the paper's 4.6M);
* rewards in [0, 1] in steps of 1/batch; the EMA baseline updated after every sample.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from enas_core.configs import ChildConfig, ControllerTrainConfig
from enas_core.controller import Controller, ControllerConfig
from enas_core.controller_trainer import ControllerTrainer
from enas_core.data.base import ImageDataset
from enas_core.genotype import Genotype
from enas_core.registry import make_shared_trainer
from enas_core.spaces import get_space
from enas_core.zoo.image_ops import FactorizedReduce, ReLUConvBN, ReLUFactorizedReduce, SepConv
from enas_core.zoo.macro.space import MacroSpace
from enas_core.zoo.micro.child import FinalMicroNet, MicroChild, MicroNetConfig
from enas_core.zoo.micro.space import MicroSpace, loose_ends
from enas_core.zoo.rnn.space import RnnSpace
from service.presets import PRESETS
from tests.core.conftest import PUBLISHED_MICRO, PUBLISHED_NORMAL, PUBLISHED_REDUCE

PAPER_MICRO_PARAMS = 4.6e6  # the paper's Table 2 figure for ENAS + micro search space


# --- tokens and sizes ---------------------------------------------------------------------------
def test_tokens_per_architecture() -> None:
    assert MacroSpace(num_layers=12).num_tokens == 12 + 12 * 11 // 2 == 78
    assert MacroSpace(num_layers=24).num_tokens == 300
    micro = MicroSpace()
    assert micro.num_tokens == 2 * 20
    for cell in range(2):
        for k in range(5):
            idx1, op1, idx2, op2 = micro.decisions[20 * cell + 4 * k : 20 * cell + 4 * k + 4]
            assert (idx1.kind, op1.kind, idx2.kind, op2.kind) == ("input", "op", "input", "op")
            assert idx1.choices == idx2.choices == k + 2  # node k reads 0 .. k+1
            assert op1.choices == op2.choices == 5
    rnn = RnnSpace(num_nodes=12)
    assert rnn.num_tokens == 23
    kinds = [d.kind for d in rnn.decisions]
    assert kinds == ["activation"] + ["input", "activation"] * 11  # E: [f0, (j1, f1), ..., (j11, f11)]
    assert [d.choices for d in rnn.decisions[1::2]] == list(range(1, 12))  # node l reads j < l


def test_space_sizes() -> None:
    assert get_space("macro", num_layers=12).size() == 160618186625454535808756219904
    assert 6**12 * 2 ** (12 * 11 // 2) == 160618186625454535808756219904
    sizes = {s["label"]: s["value"] for s in get_space("micro").describe()["sizes"]}
    paper = [v for label, v in sizes.items() if label.startswith("paper formula")]
    literal = [v for label, v in sizes.items() if label.startswith("literal count")]
    assert paper == [(5 * math.factorial(5)) ** 4] == [129_600_000_000]
    assert literal == [(5**5 * math.factorial(6)) ** 4] and f"{literal[0]:.4e}" == "2.5629e+25"
    rnn = get_space("rnn", num_nodes=12)
    assert rnn.size() == 4**12 * math.factorial(12) == 8_036_313_307_545_600
    rnn_sizes = {s["label"]: s["value"] for s in rnn.describe()["sizes"]}
    assert rnn_sizes["literal count of distinct encodings"] == 4**12 * math.factorial(11)


# --- the controller -----------------------------------------------------------------------------
def _paper_controller(preset: str, space: str, seed: int = 0) -> Controller:
    section = PRESETS[preset]["controller"]
    params = {"num_layers": 12} if space == "macro" else {}
    cfg = ControllerConfig.from_dict(section)
    return Controller(get_space(space, **params), cfg, torch.Generator().manual_seed(seed))


def test_controller_parameter_counts_from_the_paper_presets() -> None:
    counts = {
        space: sum(p.numel() for p in _paper_controller(preset, space).parameters())
        for preset, space in (
            ("paper-cifar10-macro", "macro"),
            ("paper-cifar10-micro", "micro"),
            ("paper-ptb", "rnn"),
        )
    }
    assert counts == {"macro": 41_856, "micro": 41_733, "rnn": 101_000}


def test_logit_shaping_constants_per_preset() -> None:
    shaping = {
        name: (p["controller"]["tanh_constant"], p["controller"].get("temperature"), p["space"])
        for name, p in PRESETS.items()
    }
    assert shaping["paper-cifar10-macro"] == shaping["demo-macro"] == (1.5, None, "macro")
    assert shaping["paper-cifar10-micro"] == shaping["demo-micro"] == (1.1, None, "micro")
    assert shaping["paper-ptb"] == shaping["demo-rnn"] == (2.5, 5.0, "rnn")
    assert PRESETS["paper-cifar10-micro"]["controller"]["op_tanh_reduce"] == 2.5
    assert PRESETS["paper-cifar10-micro"]["controller"]["op_bias"] is True


@pytest.mark.parametrize(
    ("preset", "space", "steps"),
    [
        ("paper-cifar10-micro", "micro", 2 * 27),
        ("paper-cifar10-macro", "macro", 2 * 12),
        ("paper-ptb", "rnn", 2 * 12),
    ],
)
def test_lstm_steps_per_architecture(preset: str, space: str, steps: int) -> None:
    """micro: 27 steps per cell (2 anchors + 5 nodes x (2 indices + 2 ops + 1 anchor)), the
    reduction cell continuing the normal cell's state; macro: op + skip step per layer; rnn:
    anchor + activation step per node."""
    c = _paper_controller(preset, space)
    calls: list[int] = []
    c.lstm.register_forward_hook(lambda *_: calls.append(1))
    c.sample(3, torch.Generator().manual_seed(0))
    assert len(calls) == steps


def _step(c: Controller, x: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
    return c.lstm(x, state)  # type: ignore[no-any-return]


def _attention(c: Controller, keys: Sequence[Tensor], h: Tensor) -> Tensor:
    """v^T tanh(W1 h_j + W2 h) for every stored anchor h_j: (1, J)."""
    return torch.cat([c.attn_v(torch.tanh(c.attn_w1(k) + c.attn_w2(h))) for k in keys], dim=1)


@torch.no_grad()
def test_macro_sampling_by_hand() -> None:
    c = _paper_controller("paper-cifar10-macro", "macro", seed=1)
    tokens = torch.tensor([[2, 4, 1] + [0] * 75])  # layer 0 conv5x5; layer 1 maxpool, skip from 0
    probs = c.decision_probs(tokens)
    zero = (torch.zeros(1, 64), torch.zeros(1, 64))
    h_op0 = _step(c, c.g_emb, zero)
    torch.testing.assert_close(probs[0], F.softmax(1.5 * torch.tanh(c.w_soft(h_op0[0])), -1))
    anchor0 = _step(c, c.w_emb(torch.tensor([2])), h_op0)  # layer 0's skip step: its anchor
    h_op1 = _step(c, c.g_emb, anchor0)  # layer 0 chose no skip: the next input is g_emb
    torch.testing.assert_close(probs[1], F.softmax(1.5 * torch.tanh(c.w_soft(h_op1[0])), -1))
    h_skip1 = _step(c, c.w_emb(torch.tensor([4])), h_op1)
    q = _attention(c, [anchor0[0]], h_skip1[0])  # (1, 1)
    expected = F.softmax(1.5 * torch.tanh(torch.cat([-q, q], dim=-1)), -1)  # [no skip, skip]
    torch.testing.assert_close(probs[2], expected)


@torch.no_grad()
def test_macro_skip_penalty_is_the_kl_to_the_target() -> None:
    c = _paper_controller("paper-cifar10-macro", "macro", seed=2)
    batch = c.sample(4, torch.Generator().manual_seed(0))
    probs = c.decision_probs(batch.tokens)
    space = c.space
    assert isinstance(space, MacroSpace)
    skip_positions = [d.position for d in space.decisions if d.kind == "skip"]
    per_layer: dict[str, list[Tensor]] = {}
    for pos in skip_positions:
        p_skip = probs[pos][:, 1]  # softmax([-q', q'])[1] = sigmoid(2 q')
        q = torch.logit(p_skip.double()) / 2  # the shaped logit q' = 1.5 tanh(q)
        sig = torch.stack([torch.sigmoid(-q), torch.sigmoid(q)], dim=1)  # sigmoid of each logit
        kl = (sig * torch.log(sig / torch.tensor([0.6, 0.4], dtype=torch.float64))).sum(dim=1)
        per_layer.setdefault(space.decisions[pos].where, []).append(kl)
    assert len(per_layer) == 11  # layers 1..11 have skips
    expected = torch.stack([torch.stack(v).sum(0) for v in per_layer.values()]).mean(0)  # (n,)
    torch.testing.assert_close(batch.skip_penalty.double(), expected, atol=1e-4, rtol=1e-4)


@torch.no_grad()
@pytest.mark.parametrize("preset", ["paper-cifar10-micro", "demo-micro"])
def test_micro_sampling_by_hand(preset: str) -> None:
    c = _paper_controller(preset, "micro", seed=3)
    cfg = c.config
    tokens = c.sample(1, torch.Generator().manual_seed(0)).tokens
    probs = c.decision_probs(tokens)
    zero = (torch.zeros(1, 64), torch.zeros(1, 64))
    s1 = _step(c, c.g_emb, zero)  # the two input anchors' steps (their anchors are zeros)
    s2 = _step(c, c.g_emb, s1)
    s3 = _step(c, c.g_emb, s2)  # node 0, first input index
    idx = F.softmax(1.1 * torch.tanh(_attention(c, [s1[0], s2[0]], s3[0])), -1)
    torch.testing.assert_close(probs[0], idx)
    s4 = _step(c, torch.zeros(1, 64), s3)  # input = anchor[idx] = zeros for either cell input
    s5 = _step(c, torch.zeros(1, 64), s4)  # node 0, first op
    assert c.b_soft is not None
    initial_bias = [10.0, 10.0, 0.0, 0.0, 0.0] if cfg.op_bias else [0.0] * 5
    assert c.b_soft.tolist() == initial_bias
    op = (1.1 / 2.5) * torch.tanh(c.w_soft(s5[0]) + c.b_soft)
    if cfg.op_bias:
        op = op + torch.tensor([0.25, 0.25, -0.25, -0.25, -0.25])
    torch.testing.assert_close(probs[1], F.softmax(op, -1))


@torch.no_grad()
def test_rnn_sampling_by_hand() -> None:
    c = _paper_controller("paper-ptb", "rnn", seed=4)
    tokens = torch.tensor([[1, 0, 3, 0, 2] + [0] * 18])  # f0 relu, (j1 0, f1 sigmoid), (j2 0, ...)
    probs = c.decision_probs(tokens)
    zero = (torch.zeros(1, 100), torch.zeros(1, 100))
    h0 = _step(c, c.g_emb, zero)  # node 0's anchor
    f0 = _step(c, c.g_emb, h0)
    torch.testing.assert_close(probs[0], F.softmax(2.5 * torch.tanh(c.w_soft(f0[0]) / 5.0), -1))
    h1 = _step(c, c.w_emb(torch.tensor([1])), f0)  # node 1's anchor
    f1 = _step(c, h0[0] / (0.1 + 1.0), h1)  # input: h_{j1} / (0.1 + l - j1)
    torch.testing.assert_close(probs[2], F.softmax(2.5 * torch.tanh(c.w_soft(f1[0]) / 5.0), -1))
    h2 = _step(c, c.w_emb(torch.tensor([3])), f1)
    logits = 2.5 * torch.tanh(_attention(c, [h0[0], h1[0]], h2[0]) / 5.0)
    logits = logits - torch.tensor([[4.0, 1.0]]) / 6.0  # -(l - j)^2 / 6 for l = 2, j = 0, 1
    torch.testing.assert_close(probs[3], F.softmax(logits, -1))


# --- the published micro final architecture -----------------------------------------------------
def _conv_bn(c_in: int, c_out: int, k: int = 1) -> int:
    """A kxk convolution without bias followed by a BN with scale and offset."""
    return k * k * c_in * c_out + 2 * c_out


def _fixed_layer_params(
    c_pp: int, c_p: int, out: int, reduce_pp: bool, stride: int, cell: Sequence[int]
) -> tuple[int, int]:
    """Parameters of one of E's `_fixed_layer` cells and its output channels, counted from the
    published code's structure."""

    def sep(c: int, k: int) -> int:  # (ReLU -> depthwise -> pointwise -> BN) x 2
        return 2 * (k * k * c + c * c + 2 * c)

    n = _conv_bn(c_pp, out) if reduce_pp or c_pp != out else 0  # calibrate x (pool_x)
    n += _conv_bn(c_p, out) if c_p != out else 0  # calibrate y (pool_y)
    n += _conv_bn(out, out)  # layer_base
    for k in range(5):
        for slot in (0, 1):
            idx, op = cell[4 * k + 2 * slot], cell[4 * k + 2 * slot + 1]
            if op in (0, 1):
                n += sep(out, (3, 5)[op])
            elif op == 4 and stride == 2 and idx < 2:  # identity at stride 2: factorized reduction
                n += _conv_bn(out, out)  # two 1x1 halves + one BN = one 1x1 conv + BN
    ends = loose_ends(cell, 5)
    if stride == 2:  # final_combine: a loose cell input has twice the resolution
        n += sum(_conv_bn(out, out) for i in ends if i < 2)
    return n, len(ends) * out


def _fixed_child_params(normal: Sequence[int], reduce: Sequence[int], layers: int, c: int) -> tuple[int, int]:
    """(without aux head, aux head) parameters of E's final micro child on 32x32 RGB, 10 classes."""
    total = _conv_bn(3, 3 * c, 3)  # stem
    pool = (layers // 3, 2 * (layers // 3) + 1)
    c_pp = c_p = 3 * c
    out, res, res_pp, res_p, aux = c, 32, 32, 32, 0
    for layer in range(layers + 2):
        stride = 2 if layer in pool else 1
        out, res = out * stride, res // stride
        cell = reduce if stride == 2 else normal
        n, c_out = _fixed_layer_params(c_pp, c_p, out, res_pp != res_p, stride, cell)
        total += n
        c_pp, c_p, res_pp, res_p = c_p, c_out, res_p, res
        if layer == pool[1] + 1:  # aux: 5x5/3 valid pool, 1x1 to 128 + BN, full conv to 768 + BN, FC
            pooled = (res - 5) // 3 + 1
            aux = _conv_bn(c_p, 128) + _conv_bn(128, 768, pooled) + 768 * 10
    return total + c_p * 10, aux


def _final_child(tokens: Sequence[int], layers: int = 15, channels: int = 36) -> MicroChild:
    cfg = MicroNetConfig(
        num_layers=layers, channels=channels, aux_head=True, drop_path_keep=0.6, keep_prob=0.8
    )
    return MicroChild(get_space("micro").structured(tokens), cfg)


def test_published_micro_arc_parses_builds_and_counts() -> None:
    genotype = Genotype.of(get_space("micro"), PUBLISHED_MICRO)
    assert genotype.tokens == tuple(PUBLISHED_MICRO)
    assert get_space("micro").structured(genotype.tokens)["reduce"]["concat"] == [2, 4, 5, 6]
    retrain = PRESETS["paper-cifar10-micro"]["retrain"]
    assert (retrain["num_layers"], retrain["channels"]) == (15, 36)
    child = _final_child(genotype.tokens, retrain["num_layers"], retrain["channels"])
    without_aux, with_aux = child.num_parameters(include_aux=False), child.num_parameters()
    expected, aux = _fixed_child_params(PUBLISHED_NORMAL, PUBLISHED_REDUCE, 15, 36)
    print(
        f"published micro final arc at 15 layers / 36 channels: {without_aux:,} parameters without the "
        f"aux head, {with_aux:,} with it; the paper reports {PAPER_MICRO_PARAMS / 1e6:.1f}M "
        f"({without_aux / PAPER_MICRO_PARAMS:.0%} / {with_aux / PAPER_MICRO_PARAMS:.0%} of it)"
    )
    assert (without_aux, with_aux - without_aux) == (expected, aux) == (3_894_372, 494_848)
    notes = " ".join(PRESETS["paper-cifar10-micro"]["notes"])
    assert f"{without_aux:,}" in notes and f"{with_aux:,}" in notes and "4.6M" in notes

    net = child.net
    assert isinstance(net, FinalMicroNet)
    assert net.stem[0].out_channels == 3 * 36  # stem: 3x3 conv to 3C + BN
    assert [cell.base.conv.out_channels for cell in net.cells] == [36] * 5 + [72] * 6 + [144] * 6
    reduction = net.cells[5]  # reduction cell: stride 2 on the cell inputs, identity -> FR
    assert isinstance(reduction.ops[2 * 3 + 1], FactorizedReduce)  # node 3 reads input 0 by identity
    strides = {
        (PUBLISHED_REDUCE[2 * i] < 2, op.dw1.stride)
        for i, op in enumerate(reduction.ops)
        if isinstance(op, SepConv)
    }
    assert strides == {(True, (2, 2)), (False, (1, 1))}  # stride 2 exactly on ops reading inputs 0/1
    assert isinstance(net.cells[6].calibrate.pp, ReLUFactorizedReduce)  # input from before the reduction
    assert isinstance(net.cells[0].calibrate.pp, ReLUConvBN)  # 3C -> C calibration 1x1s
    sep = next(m for m in net.modules() if isinstance(m, SepConv))
    assert [type(m).__name__ for m in sep.children()] == ["Conv2d", "Conv2d", "BatchNorm2d"] * 2
    assert sep.dw1.groups == sep.dw1.in_channels and sep.pw1.kernel_size == (1, 1)
    assert net.aux is not None and net.aux.proj.out_channels == 128 and net.aux.conv.out_channels == 768
    assert net.aux.conv.kernel_size == (2, 2)  # 8x8 -> 5x5/3 valid pool -> 2x2, conv over all of it
    assert net.classifier.in_features == len(loose_ends(PUBLISHED_NORMAL, 5)) * 144

    child.train()
    x = torch.randn(2, 3, 32, 32)
    logits, aux_logits = child.forward_aux(x)
    assert logits.shape == (2, 10) and aux_logits is not None and aux_logits.shape == (2, 10)
    child.eval()
    assert child(x).shape == (2, 10) and child.forward_aux(x)[1] is None


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_final_micro_construction_matches_the_authors_for_random_arcs(seed: int) -> None:
    """The op-by-op count above agrees with the built model for other cells too (stride-2
    identities, loose cell inputs, every op kind), so agreement on the published arc is no accident."""
    space = get_space("micro")
    controller = Controller(space, ControllerConfig(op_bias=False), torch.Generator().manual_seed(seed))
    for tokens in controller.sample(4, torch.Generator().manual_seed(seed)).tokens.tolist():
        child = _final_child(tokens, layers=6, channels=20)
        without_aux = child.num_parameters(include_aux=False)
        assert (without_aux, child.num_parameters() - without_aux) == _fixed_child_params(
            tokens[:20], tokens[20:], 6, 20
        )


# --- rewards and the baseline -------------------------------------------------------------------
def test_rewards_are_accuracies_in_steps_of_one_over_the_batch(digits: ImageDataset) -> None:
    space = get_space("micro", num_nodes=2)
    cfg = ChildConfig(
        num_layers=1, channels=4, batch_size=16, steps_per_epoch=2, reward_batch=25, aux_weight=0.0
    )
    shared = make_shared_trainer(space, cfg, digits, seed=0)
    controller = ControllerTrainer(space, ControllerConfig(), ControllerTrainConfig(), seed=0)
    shared.train([s.tokens for s in controller.sample(2)], 0)
    rewards = shared.rewards([s.tokens for s in controller.sample(12)])
    assert all(0.0 <= r <= 1.0 for r in rewards)
    assert all(abs(r * 25 - round(r * 25)) < 1e-9 for r in rewards)


def test_baseline_is_updated_after_every_sample() -> None:
    space = get_space("micro", num_nodes=2)
    tcfg = ControllerTrainConfig(entropy_weight=0.0, baseline_decay=0.99)
    trainer = ControllerTrainer(space, ControllerConfig(), tcfg, seed=0)
    tokens = [s.tokens for s in trainer.sample(3)]
    out = trainer.update(tokens, [1.0, 0.0, 1.0])
    b, expected = 0.0, []
    for r in (1.0, 0.0, 1.0):  # b <- b - (1 - decay)(b - r), advantage against the UPDATED b
        b -= 0.01 * (b - r)
        expected.append(r - b)
    assert out["advantages"] == pytest.approx(expected, abs=1e-12)
    assert out["baseline"] == pytest.approx(b, abs=1e-12) and b == pytest.approx(0.019801)
