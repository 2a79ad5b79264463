"""Shared fixtures of the enas_core tests: one CPU thread, tiny shapes, cached digits, and the
registry of spaces that tests parametrize over (`space_cases`), so that a new space folder under
enas_core/zoo/ is tested without editing the tests."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
import torch

from enas_core.spaces import get_plugin, list_spaces
from service.presets import get_preset

torch.set_num_threads(1)

PUBLISHED_NORMAL = [0, 2, 0, 0, 0, 4, 0, 1, 0, 4, 1, 1, 1, 0, 0, 1, 0, 2, 1, 1]
PUBLISHED_REDUCE = [1, 0, 1, 0, 0, 3, 0, 2, 1, 1, 3, 1, 1, 0, 0, 4, 0, 3, 1, 1]
PUBLISHED_MICRO = PUBLISHED_NORMAL + PUBLISHED_REDUCE  # E:cifar10_micro_final.sh


def demo_params(name: str) -> dict[str, int]:
    """The space params of the space's default (demo) preset: small, CPU-sized."""
    child = get_preset(get_plugin(name).default_preset)["child"]
    return {k: int(child[k]) for k in get_plugin(name).spec_params if k in child}


def space_cases(
    overrides: Mapping[str, Mapping[str, Any]] | None = None, task: str | None = None
) -> list[tuple[str, dict[str, Any]]]:
    """(name, params) for every registered space (of `task`, if given): `overrides[name]` where
    given, else the params of the space's demo preset."""
    overrides = overrides or {}
    return [
        (name, dict(overrides[name]) if name in overrides else demo_params(name))
        for name in list_spaces()
        if task is None or get_plugin(name).task == task
    ]


@pytest.fixture(scope="session")
def digits():
    from enas_core.data.digits import load_digits

    return load_digits(seed=0)


@pytest.fixture
def published_micro() -> list[int]:
    return list(PUBLISHED_MICRO)
