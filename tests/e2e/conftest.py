"""End-to-end fixtures: the whole stack as real processes (`enasctl up`) on a free port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Stack:
    """A running `enasctl up` with its own ENAS_HOME; `url` is the API's base URL."""

    def __init__(self, home: Path, env_extra: dict[str, str]) -> None:
        self.home = home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("ENAS_")}
        self.env.update(ENAS_HOME=str(home), PYTHONUNBUFFERED="1", **env_extra)
        self.log_path = home / "stack.log"
        home.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "w")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "service.cli", "up", "--port", str(self.port)],
            cwd=ROOT, env=self.env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)

    def enasctl(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "service.cli", *args], cwd=ROOT,
                              env={**self.env, "ENAS_SERVER": self.url}, capture_output=True, text=True,
                              timeout=timeout)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


@pytest.fixture
def start_stack(tmp_path: Path) -> Iterator[object]:
    stacks: list[Stack] = []

    def start(**env_extra: str) -> Stack:
        stack = Stack(tmp_path / f"home{len(stacks)}", env_extra)
        stacks.append(stack)
        return stack

    yield start
    for stack in stacks:
        stack.stop()
