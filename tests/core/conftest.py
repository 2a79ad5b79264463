"""Shared fixtures of the enas_core tests: one CPU thread, tiny shapes, cached digits."""

from __future__ import annotations

import pytest
import torch

torch.set_num_threads(1)

PUBLISHED_NORMAL = [0, 2, 0, 0, 0, 4, 0, 1, 0, 4, 1, 1, 1, 0, 0, 1, 0, 2, 1, 1]
PUBLISHED_REDUCE = [1, 0, 1, 0, 0, 3, 0, 2, 1, 1, 3, 1, 1, 0, 0, 4, 0, 3, 1, 1]
PUBLISHED_MICRO = PUBLISHED_NORMAL + PUBLISHED_REDUCE  # E:cifar10_micro_final.sh


@pytest.fixture(scope="session")
def digits():
    from enas_core.data.digits import load_digits

    return load_digits(seed=0)


@pytest.fixture
def published_micro() -> list[int]:
    return list(PUBLISHED_MICRO)
