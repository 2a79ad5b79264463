"""The presets: every number of ENAS_SPEC tables 2-3 in the paper-* presets, every key of every
preset reaching the core's configs through workers/config.py (or listed here as used elsewhere),
notes on each published-code/paper disagreement."""

from __future__ import annotations

from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any

import pytest

from enas_core.spaces import get_plugin
from service.presets import PRESETS
from service.spec import SearchSpec, resolve_spec
from workers.config import SearchPlan, build_plan

# ENAS_SPEC section 2 (controller) and 3 (shared-weight and final training), transcribed.
CONTROLLER_TABLE: dict[str, dict[str, Any]] = {
    "paper-cifar10-macro": {
        "hidden": 64,
        "init_range": 0.1,
        "tanh_constant": 1.5,
        "temperature": None,
        "entropy_weight": 1e-4,
        "baseline_decay": 0.99,
        "lr": 1e-3,
        "adam_beta1": 0.0,
        "adam_eps": 1e-3,
        "steps_per_epoch": 50,
        "archs_per_step": 20,
        "skip_target": 0.4,
        "skip_weight": 0.8,
    },
    "paper-cifar10-micro": {
        "hidden": 64,
        "init_range": 0.1,
        "tanh_constant": 1.1,
        "op_tanh_reduce": 2.5,
        "op_bias": True,
        "temperature": None,
        "entropy_weight": 1e-4,
        "baseline_decay": 0.99,
        "lr": 3.5e-3,
        "adam_beta1": 0.0,
        "adam_eps": 1e-3,
        "steps_per_epoch": 30,
        "archs_per_step": 10,
    },
    # the paper's PTB numbers (CP:config.py): 100-unit LSTM, Adam 3.5e-4, 2.5*tanh(z/5), entropy
    # 1e-4, 2000 controller steps; E's 0.99 baseline and U(+-0.1) init
    "paper-ptb": {
        "hidden": 100,
        "init_range": 0.1,
        "tanh_constant": 2.5,
        "temperature": 5.0,
        "entropy_weight": 1e-4,
        "baseline_decay": 0.99,
        "lr": 3.5e-4,
        "adam_beta1": 0.0,
        "adam_eps": 1e-3,
        "steps_per_epoch": 2000,
        "archs_per_step": 1,
    },
}
CHILD_TABLE: dict[str, dict[str, Any]] = {
    "paper-cifar10-macro": {
        "batch_size": 128,
        "lr_max": 0.05,
        "lr_min": 5e-4,
        "l2": 2.5e-4,
        "keep_prob": 0.9,
        "num_layers": 12,
        "channels": 36,
        "aux_weight": 0.0,
        "reward_batch": 128,
    },
    "paper-cifar10-micro": {
        "batch_size": 160,
        "lr_max": 0.05,
        "lr_min": 5e-4,
        "l2": 1e-4,
        "keep_prob": 0.9,
        "num_layers": 6,
        "channels": 20,
        "num_nodes": 5,
        "aux_weight": 0.4,
        "reward_batch": 160,
    },
    "paper-ptb": {
        "lr_max": 20.0,
        "lr_decay": 0.96,
        "lr_decay_start": 15,
        "grad_clip": 0.25,
        "l2": 1e-7,
        "bptt": 35,
        "batch_size": 64,
        "num_nodes": 12,
        "reward_c": 80.0,
    },
}
RETRAIN_TABLE: dict[str, dict[str, Any]] = {
    "paper-cifar10-macro": {
        "batch_size": 100,
        "epochs": 310,
        "lr_max": 0.05,
        "lr_min": 1e-3,
        "l2": 2e-4,
        "keep_prob": 0.5,
        "drop_path_keep": 1.0,
        "channels": 96,
        "aux_weight": 0.0,
    },
    "paper-cifar10-micro": {
        "batch_size": 144,
        "epochs": 630,
        "lr_max": 0.05,
        "lr_min": 1e-4,
        "l2": 2e-4,
        "keep_prob": 0.8,
        "drop_path_keep": 0.6,
        "num_layers": 15,
        "channels": 36,
        "aux_weight": 0.4,
    },
}
SEARCH_EPOCHS = {"paper-cifar10-macro": 310, "paper-cifar10-micro": 150, "paper-ptb": 150}
SGD_RULES = {"sgdr_t0": 10, "sgdr_tmul": 2, "momentum": 0.9, "nesterov": True}  # ENAS_SPEC 3: "All"

# Keys that configure the run rather than one of the core's dataclasses: where each one goes.
PLAN_KEYS: dict[str, Any] = {
    "space": lambda plan: plan.space_name,
    "dataset": lambda plan: plan.dataset.name,
    "epochs": lambda plan: plan.epochs,
    "seed": lambda plan: plan.seed,
    "derive.num_samples": lambda plan: plan.derive_num_samples,
    "derive.top_k": lambda plan: plan.derive_top_k,
    "retrain.enabled": lambda plan: plan.retrain_enabled,
    "retrain.top_k": lambda plan: plan.retrain_top_k,
    "resources.num_cpus": lambda plan: plan.resources.num_cpus,
    "resources.num_gpus": lambda plan: plan.resources.num_gpus,
    "resources.device": lambda plan: plan.resources.device,
    "resources.shared": lambda plan: dict(plan.resources.shared),
    "resources.controller": lambda plan: dict(plan.resources.controller),
    "resources.retrain": lambda plan: dict(plan.resources.retrain),
}
# Keys the core never sees: read by the service or the worker themselves.
SERVICE_ONLY = {
    "notes": "shown with the search",
    "preset": "the preset's name, stored with the search",
    "name": "the search's display name",
    "data_dir": "the worker resolves it (spec data_dir or <settings.data_dir>/<dataset>)",
    "resources.tensorboard": "workers/tensorboard.py writes event files when true",
}


@pytest.mark.parametrize("name", sorted(CONTROLLER_TABLE))
def test_paper_presets_carry_the_spec_tables(name: str) -> None:
    preset = PRESETS[name]
    assert preset["epochs"] == SEARCH_EPOCHS[name]
    assert {k: preset["controller"][k] for k in CONTROLLER_TABLE[name]} == CONTROLLER_TABLE[name]
    assert {k: preset["child"][k] for k in CHILD_TABLE[name]} == CHILD_TABLE[name]
    if name in RETRAIN_TABLE:
        assert {k: preset["retrain"][k] for k in RETRAIN_TABLE[name]} == RETRAIN_TABLE[name]
        for section in ("child", "retrain"):
            assert {k: preset[section][k] for k in SGD_RULES} == SGD_RULES
            assert (preset[section]["precision"], preset[section]["channels_last"]) == ("fp32", False)
    sampled = preset["controller"]["steps_per_epoch"] * preset["controller"]["archs_per_step"]
    assert sampled == {"paper-cifar10-macro": 1000, "paper-cifar10-micro": 300, "paper-ptb": 2000}[name]


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_key_reaches_the_core(name: str) -> None:
    spec = resolve_spec(SearchSpec(preset=name))
    plan = build_plan(spec, data_root=Path("/data"))
    space_keys = get_plugin(spec["space"]).spec_params
    for key, value in _flat(spec):
        if key in SERVICE_ONLY:
            continue
        if key in PLAN_KEYS:
            assert PLAN_KEYS[key](plan) == value, key
            continue
        section, field = key.split(".")
        targets = _configs(plan, section)
        holders = [t for t in targets if field in {f.name for f in fields(t)}]
        in_space = section == "child" and field in space_keys  # reaches the space's params
        assert holders or in_space, f"{name}: {key} reaches no core config and is not listed as service-only"
        assert all(getattr(h, field) == value for h in holders), (key, value)
    for space_key in space_keys:
        assert plan.space().params[space_key] == spec["child"][space_key]


def _flat(spec: dict[str, Any]) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for key, value in spec.items():
        if isinstance(value, dict):
            out.extend((f"{key}.{k}", v) for k, v in value.items())
        else:
            out.append((key, value))
    return out


def _configs(plan: SearchPlan, section: str) -> list[Any]:
    configs = {
        "controller": [plan.controller, plan.controller_train],
        "child": [plan.child],
        "retrain": [plan.retrain],
    }[section]
    assert all(is_dataclass(c) for c in configs)
    return configs


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_notes_say_which_choice_each_preset_follows(name: str) -> None:
    notes = " ".join(PRESETS[name]["notes"])
    assert "BatchNorm" in notes or PRESETS[name]["space"] == "rnn"
    if name.startswith("paper-"):
        assert "authors'" in notes and "paper" in notes
    if name == "paper-cifar10-macro":
        assert "skip j" in notes and "we follow the paper" in notes
        assert "num_layers" not in PRESETS[name]["retrain"] and "24-layer" in notes
    if name.startswith("demo-micro"):
        for change in ("2 computed nodes", "16 channels", "150 shared steps", "lr 0.1", "op_bias off"):
            assert change in notes, change
