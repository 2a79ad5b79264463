"""Fixtures shared by every test folder."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.stack import Stack


@pytest.fixture
def start_stack(tmp_path: Path) -> Iterator[Callable[..., Stack]]:
    """Start `enasctl up` stacks (each with its own home, env overrides as keywords); all stop after."""
    stacks: list[Stack] = []

    def start(**env_extra: str) -> Stack:
        stack = Stack(tmp_path / f"home{len(stacks)}", env_extra)
        stacks.append(stack)
        return stack

    yield start
    for stack in stacks:
        stack.stop()
