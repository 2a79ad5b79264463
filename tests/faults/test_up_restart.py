"""The issue's done-when: a newcomer kills ``enasctl up`` mid-search (SIGKILL to all of it) and
starts it again with the same ENAS_HOME; the search continues from its last epoch and finishes
with no duplicated or missing rows. Then `enasctl cancel` / `enasctl resume` on the live stack.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.queue.connection import start_embedded
from service.store import Store
from tests.faults.conftest import (
    FAST_SETTINGS,
    FAULT_OVERRIDES,
    ROOT,
    Proc,
    assert_complete,
    free_port,
    wait_for,
)

pytestmark = pytest.mark.faults

Spawn = Callable[..., Proc]


def _enasctl(server: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENAS_")}
    command = [sys.executable, "-m", "service.cli", *args, "--server", server]
    return subprocess.run(
        command, cwd=ROOT, env={**env, **FAST_SETTINGS}, capture_output=True, text=True, timeout=60
    )


def _search(http: httpx.Client, search_id: int) -> dict[str, Any]:
    try:
        response = http.get(f"/searches/{search_id}")
    except httpx.HTTPError:
        return {}
    return response.json() if response.status_code == 200 else {}


def _start_up(spawn: Spawn, name: str, home: Path) -> tuple[Proc, httpx.Client]:
    port = free_port()
    stack = spawn(name, "up", "--port", str(port), env={"ENAS_HOME": str(home)})
    http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)

    def healthy() -> bool:
        try:
            return http.get("/healthz").status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(healthy, 120, f"{name} to answer", procs=(stack,))
    return stack, http


def test_killed_stack_resumes_the_search_when_started_again(spawn: Spawn, tmp_path: Path) -> None:
    home = tmp_path / "home"
    try:
        first, http = _start_up(spawn, "up-1", home)
        created = http.post("/searches", json={"space": "micro", **FAULT_OVERRIDES})
        assert created.status_code == 201, created.text
        search_id = created.json()["id"]
        wait_for(lambda: _search(http, search_id).get("epoch") == 0, 120, "epoch 0", procs=(first,))
        first.stop()  # SIGKILL to the whole session: enasctl up, the API, the worker, its Ray
        http.close()

        store = Store(f"sqlite:///{home / 'enas.db'}")
        crashed = store.get_search(search_id=search_id)
        assert crashed.status == "running" and crashed.epoch is not None and crashed.epoch < 2

        second, http = _start_up(spawn, "up-2", home)
        done = lambda: _search(http, search_id).get("status") in ("succeeded", "failed")  # noqa: E731
        wait_for(done, 180, "the search to finish", procs=(second,))
        assert_complete(store, search_id, crashed.spec)  # every epoch's rows exactly once
        assert store.get_search(search_id=search_id).fencing_token == 2
        assert f"resumed from {home}/artifacts/{search_id}/ckpt-{crashed.epoch}.pt" in second.log()

        server = str(http.base_url)
        finished = [_enasctl(server, verb, str(search_id)) for verb in ("cancel", "resume")]
        assert [r.returncode for r in finished] == [2, 2], [r.stderr for r in finished]  # 409
        assert "already succeeded" in finished[0].stderr
        assert _enasctl(server, "cancel", "999999").returncode == 2  # 404
        assert _enasctl("http://127.0.0.1:1", "cancel", str(search_id)).returncode == 1  # unreachable

        broken = http.post(
            "/searches", json={"space": "micro", **FAULT_OVERRIDES, "resources": {"num_cpus": 64}}
        )
        failed = lambda: _search(http, broken.json()["id"]).get("status") == "failed"  # noqa: E731
        wait_for(failed, 60, "the impossible search to fail", procs=(second,))
        shown = _search(http, broken.json()["id"])  # the error and its traceback, as GET shows them
        assert shown["error"].startswith(
            "Unplaceable: no Ray node can hold the shared model: it asks for 64 CPU"
        )
        assert "Traceback (most recent call last)" in shown["error_traceback"]
        assert "check_feasible" in shown["error_traceback"]
        http.close()
        store.dispose()
    finally:
        start_embedded(home)[0].shutdown()  # the embedded Redis outlived the killed stacks
