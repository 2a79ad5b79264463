"""Recurrent-cell models and the language-model trainer: shapes, the cell's math, from_shared,
learning on synthetic-ptb, determinism and checkpoint round trips."""

from __future__ import annotations

import math
import random

import pytest
import torch

from enas_core.data.synthetic import synthetic_ptb
from enas_core.lm import LMConfig, LMRetrainConfig, LMSharedTrainer, retrain_lm
from enas_core.registry import retrainer
from enas_core.spaces import GenotypeError
from enas_core.zoo.rnn.shared import SearchRnnChild, SharedRnnModel, pair_index
from enas_core.zoo.rnn.space import RnnSpace, loose_ends, num_rnn_tokens, parse_rnn_tokens

torch.set_num_threads(1)

V, H, N = 30, 16, 5


def random_arch(num_nodes: int, seed: int) -> list[int]:
    rng = random.Random(seed)
    tokens = [rng.randrange(4)]
    for node in range(1, num_nodes):
        tokens += [rng.randrange(node), rng.randrange(4)]
    return tokens


@pytest.fixture(scope="module")
def corpus():
    return synthetic_ptb(seed=0, vocab_size=50, num_train=6000, num_valid=1500, num_test=1500)


def test_token_layout_matches_the_space() -> None:
    assert num_rnn_tokens(12) == RnnSpace(num_nodes=12).num_tokens == 23
    arch = parse_rnn_tokens([1, 0, 2, 0, 3, 1, 0], 4)
    assert [(n.prev, n.act) for n in arch] == [(-1, 1), (0, 2), (0, 3), (1, 0)]
    assert loose_ends(arch) == [2, 3]
    assert RnnSpace(num_nodes=4).outputs([1, 0, 2, 0, 3, 1, 0]) == [2, 3]
    assert pair_index(1, 0) == 0 and pair_index(4, 3) == 9


@pytest.mark.parametrize(("tokens", "position"), [([4, 0, 0], 0), ([0, 1, 0], 1), ([0, 0, -1], 2)])
def test_invalid_tokens_name_the_position(tokens: list[int], position: int) -> None:
    with pytest.raises(GenotypeError) as err:
        parse_rnn_tokens(tokens, 2)
    assert err.value.position == position


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_shared_forward_backward(seed: int) -> None:
    torch.manual_seed(seed)
    model = SharedRnnModel(V, hidden_size=H, num_nodes=N)
    arch = random_arch(N, seed)
    x = torch.randint(0, V, (7, 3))  # (T, B)
    logits, hidden = model(x, model.init_hidden(3), arch)
    assert logits.shape == (7, 3, V) and hidden.shape == (3, H)
    logits.logsumexp(-1).mean().backward()
    grads = {name: p.grad for name, p in model.named_parameters()}
    used = {pair_index(k, node.prev) for k, node in enumerate(parse_rnn_tokens(arch, N)) if k > 0}
    with_grad = {i for i, w in enumerate(model.cell.w_nodes) if w.grad is not None}
    assert with_grad == used  # only the sampled pairs' matrices take part
    assert all(
        g is not None and torch.isfinite(g).all() for n, g in grads.items() if not n.startswith("cell.")
    )


def _reference_step(model: SharedRnnModel, arch_tokens: list[int], token: torch.Tensor, h: torch.Tensor):
    """The cell written out by hand from ENAS_SPEC 1(c), for one step without dropout."""
    acts = [torch.tanh, torch.relu, lambda z: z, torch.sigmoid]
    arch = parse_rnn_tokens(arch_tokens, model.num_nodes)
    x = model.embedding.weight[token]  # (B, H)
    pre = torch.cat([x, h], dim=1) @ torch.cat([model.w_x, model.w_h], dim=0)  # (B, 2H)
    c = torch.sigmoid(pre[:, :H])
    states = [c * acts[arch[0].act](pre[:, H:]) + (1 - c) * h]
    for k in range(1, len(arch)):
        hj = states[arch[k].prev]
        pre = hj @ model.cell.w_nodes[pair_index(k, arch[k].prev)]
        c = torch.sigmoid(pre[:, :H])
        states.append(c * acts[arch[k].act](pre[:, H:]) + (1 - c) * hj)
    used = {node.prev for node in arch[1:]}
    out = sum(states[k] for k in range(len(arch)) if k not in used) / (len(arch) - len(used))
    return out @ model.embedding.weight.t() + model.decoder_bias, out


def test_cell_matches_a_hand_written_reference() -> None:
    torch.manual_seed(0)
    model = SharedRnnModel(V, hidden_size=H, num_nodes=N, init_range=0.3).eval()
    arch = [0, 0, 1, 1, 2, 0, 3, 2, 1]  # every activation, a branch and two loose ends
    token = torch.tensor([3, 7])
    h = torch.randn(2, H)
    logits, hidden = model(token[None], h, arch)
    ref_logits, ref_hidden = _reference_step(model, arch, token, h)
    torch.testing.assert_close(logits[0], ref_logits)
    torch.testing.assert_close(hidden, ref_hidden)


@pytest.mark.parametrize("seed", [0, 4])
def test_child_from_shared_gives_identical_outputs(seed: int) -> None:
    torch.manual_seed(seed)
    shared = SharedRnnModel(
        V, hidden_size=H, num_nodes=N, dropout_input=0.3, dropout_hidden=0.3, dropout_output=0.3
    )
    arch = random_arch(N, seed)
    child = SearchRnnChild.from_shared(shared, arch)
    x = torch.randint(0, V, (6, 4))  # (T, B)
    h0 = torch.randn(4, H)
    expected = shared(x, h0, arch, generator=torch.Generator().manual_seed(1))
    got = child(x, h0, generator=torch.Generator().manual_seed(1))
    assert torch.equal(got[0], expected[0]) and torch.equal(got[1], expected[1])
    shared.eval()
    child.eval()
    assert torch.equal(child(x, h0)[0], shared(x, h0, arch)[0])
    assert sum(p.numel() for p in child.parameters()) < sum(p.numel() for p in shared.parameters())


def _lm_config(**overrides) -> LMConfig:
    base = dict(
        num_nodes=4,
        hidden_size=48,
        bptt=12,
        batch_size=24,
        lr_max=20.0,
        reward_batch=12,
        dropout_input=0.0,
        dropout_hidden=0.0,
        dropout_output=0.0,
        init_range=0.1,
    )
    return LMConfig(**{**base, **overrides})


ARCHS = [[0, 0, 0, 1, 0, 2, 0], [0, 0, 0, 0, 0, 1, 0]]


def test_lm_trainer_reduces_training_loss(corpus) -> None:
    trainer = LMSharedTrainer(RnnSpace(num_nodes=4), _lm_config(), corpus, seed=0)
    losses = [trainer.train(ARCHS * 2, epoch=0)["loss"] for _ in range(15)]
    assert all(math.isfinite(v) for v in losses)
    assert min(losses[-3:]) < losses[0] - 0.5, losses
    rewards = trainer.rewards(ARCHS)
    assert all(0.0 < r <= 80.0 for r in rewards)
    assert rewards[0] > 80.0 / corpus.vocab_size  # better than a uniform guess


def test_lm_trainer_metrics_lr_and_windows(corpus) -> None:
    cfg = _lm_config(lr_decay=0.5, lr_decay_start=2, dropout_input=0.2, dropout_hidden=0.2)
    trainer = LMSharedTrainer(RnnSpace(num_nodes=4), cfg, corpus, seed=0)
    metrics = trainer.train(ARCHS, epoch=0)
    assert set(metrics) >= {"loss", "perplexity", "tokens_per_s", "per_arch"}
    assert len(metrics["per_arch"]) == 2 and metrics["lr"] == 20.0
    assert trainer.train_stream.pos == 2 * cfg.bptt  # one window per architecture, carried forward
    assert trainer.train(ARCHS[:1], epoch=3)["lr"] == pytest.approx(20.0 * 0.5**2)
    assert trainer.steps_per_epoch() == (6000 // 24 - 2) // 12 + 1
    with pytest.raises(GenotypeError):
        trainer.train([[0, 1, 0, 0, 0, 0, 0]], epoch=0)


def test_lm_trainer_is_deterministic_and_resumes_exactly(corpus) -> None:
    cfg = _lm_config(dropout_input=0.2, dropout_hidden=0.2, dropout_output=0.2)
    space = RnnSpace(num_nodes=4)
    a = LMSharedTrainer(space, cfg, corpus, seed=3)
    b = LMSharedTrainer(space, cfg, corpus, seed=3)
    assert a.train(ARCHS, 0)["loss"] == b.train(ARCHS, 0)["loss"]
    saved = a.state_dict()
    first = [a.train(ARCHS, 1)["loss"], a.rewards(ARCHS)]
    c = LMSharedTrainer(space, cfg, corpus, seed=99)
    c.load_state_dict(saved)
    assert [c.train(ARCHS, 1)["loss"], c.rewards(ARCHS)] == first
    assert torch.equal(c.hidden, a.hidden)


def test_retrain_lm_selects_on_validation(corpus) -> None:
    cfg = LMRetrainConfig(epochs=2, hidden_size=24, bptt=10, batch_size=20, steps_per_epoch=6, lr_max=10.0)
    seen: list[int] = []
    result = retrain_lm(
        RnnSpace(num_nodes=4), ARCHS[0], cfg, corpus, seed=0, on_epoch=lambda m: seen.append(m["epoch"])
    )
    assert seen == [0, 1]
    assert result["valid_perplexity"] == min(m["valid_perplexity"] for m in result["curve"])
    assert math.isfinite(result["test_perplexity"]) and result["params"] > 0


def test_registered_as_the_rnn_shared_trainer(corpus) -> None:
    from enas_core.registry import make_shared_trainer

    trainer = make_shared_trainer(RnnSpace(num_nodes=4), _lm_config().__dict__, corpus, seed=0, device="cpu")
    assert isinstance(trainer, LMSharedTrainer) and trainer.num_nodes == 4
    assert retrainer(RnnSpace(num_nodes=4)) is retrain_lm
