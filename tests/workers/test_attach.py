"""`enasctl worker` that cannot attach to its Ray cluster exits within seconds, naming the address."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from tests.stack import free_port


def test_worker_exits_fast_when_the_ray_address_does_not_answer(tmp_path: Path) -> None:
    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    env = {**os.environ, "ENAS_HOME": str(tmp_path), "ENAS_RAY_ADDRESS": address}
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "service.cli", "worker", "--burst"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    elapsed = time.monotonic() - started
    assert done.returncode == 1, done.stderr
    assert "cannot attach to the Ray cluster" in done.stderr and address in done.stderr
    assert elapsed < 30  # the probe answers at once; the interpreter and imports take the rest
