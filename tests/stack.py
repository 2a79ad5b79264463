"""The whole stack as real processes, for the end-to-end, CLI, browser and restart tests.

`Stack` runs `python -m service.cli up` (what `enasctl up` runs: API, worker, embedded Redis
unless ENAS_REDIS_URL is given) in its own process session, with its own ENAS_HOME and port.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def base_env() -> dict[str, str]:
    """This process's environment without ENAS_* settings, with unbuffered, uncoloured output."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENAS_")}
    return {**env, "PYTHONUNBUFFERED": "1", "COLUMNS": "200", "NO_COLOR": "1"}


def enasctl(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120, cwd: Path = ROOT
) -> subprocess.CompletedProcess[str]:
    """Run `python -m service.cli ARGS` (what the `enasctl` script runs) and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "service.cli", *args],
        cwd=cwd,
        env=env or base_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


class Stack:
    """A running `enasctl up` with its own ENAS_HOME; `url` is the API's base URL."""

    def __init__(self, home: Path, env_extra: dict[str, str] | None = None) -> None:
        self.home = home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**base_env(), "ENAS_HOME": str(home), **(env_extra or {})}
        home.mkdir(parents=True, exist_ok=True)
        self.log_path = home / "stack.log"
        self._log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "service.cli", "up", "--port", str(self.port)],
            cwd=ROOT,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run enasctl against this stack."""
        return enasctl(*args, env={**self.env, "ENAS_SERVER": self.url}, timeout=timeout)

    def json(self, *args: str) -> Any:
        """Run a read command with --json; assert exit 0; return the parsed output."""
        result = self.run(*args, "--json")
        assert result.returncode == 0, result.stderr + self.log()[-2000:]
        return json.loads(result.stdout)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int:
        """Ctrl-C the whole session (as a user would), then SIGKILL after a minute."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._log.close()
        return self.proc.returncode
