"""CLI fixtures: `enasctl` run as a real subprocess, and one real stack (`enasctl up`) per module."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNREACHABLE = "http://127.0.0.1:9"  # the discard port: nothing listens there


def _base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENAS_")}
    return {**env, "PYTHONUNBUFFERED": "1", "COLUMNS": "200", "NO_COLOR": "1"}


def enasctl(*args: str, env: dict[str, str] | None = None, timeout: float = 120,
            cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:  # fmt: skip
    """Run `python -m service.cli ARGS` (what the `enasctl` script runs) and capture its output."""
    return subprocess.run([sys.executable, "-m", "service.cli", *args], cwd=cwd, env=env or _base_env(),
                          capture_output=True, text=True, timeout=timeout)  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class CliStack:
    """A running `enasctl up` with its own ENAS_HOME; `run` calls enasctl against it."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.url = f"http://127.0.0.1:{free_port()}"
        self.env = {**_base_env(), "ENAS_HOME": str(home)}
        home.mkdir(parents=True, exist_ok=True)
        self.log_path = home / "stack.log"
        self._log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        port = self.url.rsplit(":", 1)[1]
        self.proc = subprocess.Popen([sys.executable, "-m", "service.cli", "up", "--port", port], cwd=ROOT,
                                     env=self.env, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)  # fmt: skip

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return enasctl(*args, env={**self.env, "ENAS_SERVER": self.url}, timeout=timeout)

    def json(self, *args: str) -> Any:
        """Run a read command with --json; assert exit 0; the parsed output."""
        result = self.run(*args, "--json")
        assert result.returncode == 0, result.stderr + self.log()[-2000:]
        return json.loads(result.stdout)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._log.close()


@dataclass(frozen=True)
class TinySearch:
    """The search the module's stack ran with `enasctl submit ... --watch --json`."""

    id: int
    submit: subprocess.CompletedProcess[str]
    states: list[dict[str, Any]]


# tests/e2e/test_stack.py's TINY spec, given as flags and --set overrides
TINY_SETS = ("controller.steps_per_epoch=3", "controller.archs_per_step=4", "derive.num_samples=4",
             "derive.top_k=2", "retrain.epochs=1")  # fmt: skip
TINY_ARGS = ("--space", "micro", "--dataset", "digits", "--epochs", "2", "--seed", "0", "--name", "tiny",
             *(arg for item in TINY_SETS for arg in ("--set", item)))  # fmt: skip


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CliStack]:
    """One stack for the whole test module (starting one costs seconds)."""
    running = CliStack(tmp_path_factory.mktemp("enas-home"))
    from service.client import EnasClient

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
