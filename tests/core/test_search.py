"""The search loop: configs, SGDR, deterministic resume, learning on digits, derive, retrain."""

from __future__ import annotations

import io
import time
from dataclasses import fields
from typing import Any

import pytest
import torch

from enas_core.configs import ChildConfig, ControllerTrainConfig, RetrainConfig
from enas_core.controller import ControllerConfig
from enas_core.controller_trainer import ControllerTrainer
from enas_core.data.base import ImageDataset
from enas_core.epoch import METRICS, ControllerStep, Sampled, epoch_result
from enas_core.image_trainer import SharedTrainer
from enas_core.registry import make_shared_trainer, register_shared_trainer
from enas_core.retrain import retrain
from enas_core.runtime import sgdr_lr
from enas_core.search import derive, run_search_epoch
from enas_core.spaces import get_space

SPEC_CHILD = {
    "num_layers": 6,
    "channels": 20,
    "num_nodes": 5,
    "batch_size": 160,
    "steps_per_epoch": None,
    "lr_max": 0.05,
    "lr_min": 0.0005,
    "sgdr_t0": 10,
    "sgdr_tmul": 2,
    "momentum": 0.9,
    "nesterov": True,
    "l2": 0.0001,
    "grad_clip": 5.0,
    "keep_prob": 0.9,
    "aux_weight": 0.4,
    "cutout": 0,
    "reward_batch": 160,
    "bn_mode": "train",
}
SPEC_CONTROLLER = {
    "hidden": 64,
    "lr": 0.0035,
    "adam_beta1": 0.0,
    "adam_eps": 0.001,
    "tanh_constant": 1.1,
    "op_tanh_reduce": 2.5,
    "temperature": None,
    "op_bias": True,
    "entropy_weight": 0.0001,
    "baseline_decay": 0.99,
    "steps_per_epoch": 30,
    "archs_per_step": 10,
    "skip_target": 0.4,
    "skip_weight": 0.8,
}
SPEC_RETRAIN = {
    "enabled": True,
    "top_k": 1,
    "epochs": 630,
    "batch_size": 144,
    "num_layers": 15,
    "channels": 36,
    "steps_per_epoch": None,
    "lr_max": 0.05,
    "lr_min": 0.0001,
    "l2": 0.0002,
    "keep_prob": 0.8,
    "drop_path_keep": 0.6,
    "aux_weight": 0.4,
    "cutout": 0,
}


def test_configs_cover_the_spec_sections_and_ignore_unknown_keys() -> None:
    assert ChildConfig.from_dict({**SPEC_CHILD, "hidden_size": 3}) == ChildConfig()
    assert set(SPEC_CHILD) <= {f.name for f in fields(ChildConfig)}
    controller_keys = {f.name for f in fields(ControllerConfig)} | {
        f.name for f in fields(ControllerTrainConfig)
    }
    assert set(SPEC_CONTROLLER) <= controller_keys
    assert ControllerConfig.from_dict(SPEC_CONTROLLER) == ControllerConfig()
    assert ControllerTrainConfig.from_dict(SPEC_CONTROLLER) == ControllerTrainConfig()
    assert RetrainConfig.from_dict(SPEC_RETRAIN) == RetrainConfig()
    with pytest.raises(ValueError, match="bn_mode"):
        ChildConfig(bn_mode="other")


def test_sgdr_restarts() -> None:
    lrs = [sgdr_lr(e, 0.05, 0.0005, 10, 2) for e in range(72)]
    assert lrs[0] == pytest.approx(0.05) and lrs[10] == pytest.approx(0.05) and lrs[30] == pytest.approx(0.05)
    assert lrs[70] == pytest.approx(0.05)
    assert lrs[9] < lrs[5] < lrs[0] and lrs[29] < 0.001
    assert lrs[20] == pytest.approx(0.0005 + 0.5 * 0.0495)  # half way through the 20-epoch period


def _tiny(seed: int, digits: ImageDataset, **child: Any) -> tuple[SharedTrainer, ControllerTrainer]:
    space = get_space("micro", num_nodes=2)
    cfg = ChildConfig(
        **{
            "num_layers": 2,
            "channels": 4,
            "batch_size": 16,
            "steps_per_epoch": 3,
            "reward_batch": 16,
            "keep_prob": 0.8,
            "aux_weight": 0.4,
            "cutout": 2,
            **child,
        }
    )
    shared = make_shared_trainer(space, cfg, digits, seed)
    assert isinstance(shared, SharedTrainer)
    controller = ControllerTrainer(
        space, ControllerConfig(), ControllerTrainConfig(steps_per_epoch=2, archs_per_step=3), seed
    )
    return shared, controller


def _rows(result: Any) -> list[tuple[Any, ...]]:
    return [
        (a.phase, a.index, a.tokens, a.reward, a.loss, a.accuracy, a.log_prob) for a in result.architectures
    ]


def test_resume_is_bit_identical(digits: ImageDataset) -> None:
    shared, controller = _tiny(0, digits)
    run_search_epoch(shared, controller, 0)
    straight = run_search_epoch(shared, controller, 1)

    shared, controller = _tiny(0, digits)
    first = run_search_epoch(shared, controller, 0)
    buffer = io.BytesIO()
    torch.save({"shared": shared.state_dict(), "controller": controller.state_dict()}, buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    shared, controller = _tiny(7, digits)  # a different seed: everything must come from the state
    shared.load_state_dict(state["shared"])
    controller.load_state_dict(state["controller"])
    resumed = run_search_epoch(shared, controller, 1)

    assert _rows(resumed) == _rows(straight)
    assert _rows(first) != _rows(straight)
    assert resumed.metrics["baseline"] == straight.metrics["baseline"]
    assert [a.phase for a in straight.architectures] == ["train"] * 3 + ["sample"] * 6


def test_rewards_are_minibatch_accuracies(digits: ImageDataset) -> None:
    shared, controller = _tiny(0, digits, reward_batch=20)
    rewards = shared.rewards([s.tokens for s in controller.sample(5)])
    assert all(0.0 <= r <= 1.0 and abs(r * 20 - round(r * 20)) < 1e-9 for r in rewards)
    before = {k: v.clone() for k, v in shared.model.state_dict().items()}
    shared.rewards([s.tokens for s in controller.sample(2)])
    after = shared.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # the reward pass changes nothing


def test_tiny_digits_search_improves_reward(digits: ImageDataset) -> None:
    """3 epochs, num_layers 3, channels 8: the last epoch's mean reward beats the first's."""
    space = get_space("micro", num_nodes=2)
    cfg = ChildConfig(
        num_layers=3, channels=8, batch_size=32, steps_per_epoch=60, reward_batch=64, aux_weight=0.0
    )
    shared = make_shared_trainer(space, cfg, digits, seed=0)
    controller = ControllerTrainer(
        space,
        ControllerConfig(op_bias=False),
        ControllerTrainConfig(steps_per_epoch=2, archs_per_step=10),
        seed=0,
    )
    start = time.perf_counter()
    results = [run_search_epoch(shared, controller, epoch) for epoch in range(3)]
    rewards = [r.metrics["reward_mean"] for r in results]
    assert all(set(r.metrics) <= set(METRICS) for r in results)
    print(f"tiny digits search: reward means {rewards}, {time.perf_counter() - start:.1f} s")
    assert rewards[-1] > rewards[0]
    for arch in results[-1].architectures:
        space.validate(arch.tokens)

    top = derive(shared, controller, num_samples=12, top_k=3)
    assert 1 <= len(top) <= 3
    assert [score for _, score in top] == sorted((score for _, score in top), reverse=True)
    assert len({space.canonical(tokens) for tokens, _ in top}) == len(top)


def test_retrain_reports_test_accuracy_and_curve(digits: ImageDataset, published_micro: list[int]) -> None:
    curve: list[dict[str, Any]] = []
    cfg = RetrainConfig(epochs=2, batch_size=32, num_layers=3, channels=8, steps_per_epoch=3)
    result = retrain(get_space("micro"), published_micro, cfg, digits, seed=0, on_epoch=curve.append)
    assert [row["epoch"] for row in curve] == [0, 1] and result["curve"] == curve
    assert 0.0 <= result["test_accuracy"] <= 1.0
    assert result["params"] > result["params_without_aux"] > 0 and result["macs"] > 0
    assert not result["model"].training


def test_macro_plugs_into_the_image_trainer(digits: ImageDataset) -> None:
    space = get_space("macro", num_layers=3)
    cfg = ChildConfig(num_layers=3, channels=8, batch_size=16, steps_per_epoch=2, reward_batch=16)
    shared = make_shared_trainer(space, cfg, digits, seed=0)
    controller = ControllerTrainer(
        space,
        ControllerConfig(tanh_constant=1.5),
        ControllerTrainConfig(steps_per_epoch=1, archs_per_step=2),
        0,
    )
    result = run_search_epoch(shared, controller, 0)
    assert result.metrics["skip_penalty"] > 0 and len(result.architectures) == 4


def test_shared_trainer_registry_plug_in() -> None:
    class Dummy:
        def __init__(self, space: Any, cfg: Any, data: Any, seed: int, device: str) -> None:
            self.args = (space.name, cfg, data, seed, device)

    from enas_core import registry

    saved = dict(registry.SHARED_TRAINERS)
    try:
        register_shared_trainer("rnn", Dummy)
        trainer = make_shared_trainer(get_space("rnn"), {"bptt": 35}, "corpus", 3, "cpu")
        assert isinstance(trainer, Dummy) and trainer.args == ("rnn", {"bptt": 35}, "corpus", 3, "cpu")
        registry.SHARED_TRAINERS["rnn"] = "enas_core.no_such_module:Trainer"
        with pytest.raises(NotImplementedError, match="no_such_module"):
            make_shared_trainer(get_space("rnn"), {}, None, 0)
    finally:
        registry.SHARED_TRAINERS.clear()
        registry.SHARED_TRAINERS.update(saved)


def test_epoch_result_builds_the_rows_and_metrics_of_chunks_and_steps() -> None:
    """Chunked training (as the runner trains) is weighted by architectures; the controller
    phase's rows are numbered across steps; every name is one of `METRICS`."""
    trained = [Sampled([i], -1.0, 0.5) for i in range(3)]
    parts = [
        {"loss": 1.0, "accuracy": 0.5, "lr": 0.1, "images_per_s": 10.0, "per_arch": [{"loss": 1.0}] * 2},
        {"loss": 4.0, "accuracy": 0.8, "lr": 0.05, "images_per_s": 40.0, "per_arch": [{"loss": 4.0}]},
    ]
    steps = [
        ControllerStep([Sampled([7], -2.0, 1.0)] * 2, [0.25, 0.75], {"loss": 1.0, "baseline": 0.1}),
        ControllerStep([Sampled([8], -3.0, 2.0)], [1.0], {"loss": 3.0, "baseline": 0.2, "skip_penalty": 0.5}),
    ]
    result = epoch_result(4, trained, parts, steps, shared_seconds=1.0, duration=3.0)
    rows = [a.row() for a in result.architectures]
    assert [(r["phase"], r["index"], r["step"]) for r in rows] == [
        ("train", 0, None),
        ("train", 1, None),
        ("train", 2, None),
        ("sample", 0, 0),
        ("sample", 1, 0),
        ("sample", 2, 1),
    ]
    assert rows[2]["loss"] == 4.0 and rows[3]["reward"] == 0.25 and rows[5]["entropy"] == 2.0
    m = result.metrics
    assert set(m) <= set(METRICS) and result.epoch == 4
    assert m["shared_loss"] == pytest.approx(2.0) and m["shared_accuracy"] == pytest.approx(0.6)
    assert m["lr"] == 0.05 and m["images_per_s"] == pytest.approx(20.0)
    assert (m["reward_mean"], m["reward_max"], m["reward_min"]) == (pytest.approx(2 / 3), 1.0, 0.25)
    assert m["baseline"] == 0.2 and m["entropy"] == pytest.approx(4 / 3)
    assert m["controller_loss"] == 2.0 and m["skip_penalty"] == 0.25
    timings = (m["archs_per_s"], m["shared_seconds"], m["controller_seconds"], m["duration_s"])
    assert timings == (2.0, 1.0, 2.0, 3.0)
    assert "reward_mean" not in epoch_result(0, trained, parts, [], shared_seconds=1.0, duration=1.0).metrics
