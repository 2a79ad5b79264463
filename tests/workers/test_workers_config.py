"""Resolved specs -> the core's frozen configs (no Ray, no data loading)."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from enas_core.configs import ChildConfig, ControllerTrainConfig, RetrainConfig
from enas_core.controller import ControllerConfig
from service import presets
from service.spec import SearchSpec, resolve_spec
from workers.actors import tokens_of
from workers.config import build_plan


@pytest.mark.parametrize("name", sorted(presets.PRESETS))
def test_every_preset_builds_a_plan(name: str) -> None:
    spec = resolve_spec(SearchSpec(preset=name))
    plan = build_plan(spec, data_root=Path("/data"))
    assert plan.space().name == spec["space"] and plan.epochs == spec["epochs"]
    assert plan.controller_train.steps_per_epoch == spec["controller"]["steps_per_epoch"]
    assert plan.controller.hidden == spec["controller"]["hidden"]
    assert plan.derive_top_k == spec["derive"]["top_k"] and plan.retrain_top_k == spec["retrain"]["top_k"]
    assert plan.resources.num_gpus == spec["resources"]["num_gpus"]
    assert pickle.loads(pickle.dumps(plan)) == plan  # travels to actors and tasks


def test_micro_plan_fields_come_from_the_spec() -> None:
    spec = resolve_spec(
        SearchSpec(
            space="micro",
            seed=7,
            child={"num_nodes": 4, "channels": 6},
            controller={"lr": 0.01, "hidden": 32},
            resources={"num_cpus": 0.5, "num_gpus": 0.25},
        )
    )
    plan = build_plan(spec)
    assert isinstance(plan.child, ChildConfig) and plan.child.channels == 6
    assert isinstance(plan.retrain, RetrainConfig)
    assert plan.controller == ControllerConfig.from_dict(spec["controller"]) and plan.controller.hidden == 32
    assert plan.controller_train == ControllerTrainConfig.from_dict(spec["controller"])
    assert plan.controller_train.lr == 0.01
    assert plan.space().params["num_nodes"] == 4 and plan.space().num_tokens == 2 * 4 * 4
    assert plan.seed == 7 and plan.dataset.seed == 7
    assert plan.resources.shared_options() == {"num_cpus": 0.5, "num_gpus": 0.25}


def test_data_dir_defaults_to_the_workers_data_root() -> None:
    cifar = resolve_spec(SearchSpec(space="micro", dataset="cifar10"))
    assert build_plan(cifar, data_root=Path("/srv/data")).dataset.data_dir == "/srv/data/cifar10"
    given = resolve_spec(SearchSpec(space="micro", dataset="cifar10", data_dir="/mnt/c10"))
    assert build_plan(given, data_root=Path("/srv/data")).dataset.data_dir == "/mnt/c10"
    digits = resolve_spec(SearchSpec(space="micro"))
    assert build_plan(digits, data_root=Path("/srv/data")).dataset.data_dir is None


def test_tokens_of_accepts_batches_and_lists() -> None:
    assert tokens_of({"tokens": [(1, 2)], "log_prob": [0.0], "entropy": [0.0]}) == [[1, 2]]
    assert tokens_of([(3, 4), [5]]) == [[3, 4], [5]]


def test_custom_resources_reach_each_role_ray_options() -> None:
    spec = resolve_spec(
        SearchSpec(space="micro", resources={"shared": {"node_a": 0.5}, "controller": {"ctl": 1}})
    )
    resources = build_plan(spec).resources
    assert resources.shared_options() == {"num_cpus": 1.0, "num_gpus": 0.0, "resources": {"node_a": 0.5}}
    assert resources.controller_options() == {"num_cpus": 1.0, "num_gpus": 0.0, "resources": {"ctl": 1.0}}
    assert resources.retrain_options() == {"num_cpus": 1.0, "num_gpus": 0.0}
