"""CLI fixtures: `enasctl` run as a real subprocess, and one real stack (`enasctl up`) per module."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.stack import Stack, base_env, enasctl  # noqa: F401 - re-exported for the tests

ROOT = Path(__file__).resolve().parents[2]
UNREACHABLE = "http://127.0.0.1:9"  # the discard port: nothing listens there


CliStack = Stack
_base_env = base_env


@dataclass(frozen=True)
class TinySearch:
    """The search the module's stack ran with `enasctl submit ... --watch --json`."""

    id: int
    submit: subprocess.CompletedProcess[str]
    states: list[dict[str, Any]]


# tests/e2e/test_stack.py's TINY spec, given as flags and --set overrides
TINY_SETS = (
    "controller.steps_per_epoch=3",
    "controller.archs_per_step=4",
    "derive.num_samples=4",
    "derive.top_k=2",
    "retrain.epochs=1",
)
TINY_ARGS = (
    "--space",
    "micro",
    "--dataset",
    "digits",
    "--epochs",
    "2",
    "--seed",
    "0",
    "--name",
    "tiny",
    *(arg for item in TINY_SETS for arg in ("--set", item)),
)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CliStack]:
    """One stack for the whole test module (starting one costs seconds)."""
    running = Stack(tmp_path_factory.mktemp("enas-home"))
    from service.cli.client import EnasClient

    try:
        with EnasClient(running.url) as client:
            client.wait_ready(timeout=120)
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def tiny(stack: CliStack) -> TinySearch:
    """A tiny micro search run to its end once per module, submitted by flags with --watch --json."""
    result = stack.run("submit", *TINY_ARGS, "--watch", "--json", timeout=900)
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    assert result.returncode == 0, (result.stderr, lines[-1:], stack.log()[-3000:])
    return TinySearch(id=lines[0]["id"], submit=result, states=lines)
