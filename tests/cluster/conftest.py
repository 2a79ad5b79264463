"""A real Ray cluster on this machine for tests/cluster (ENAS_CLUSTER_TEST=1, root, `ip netns`).

`RayCluster`: a head (no CPUs for tasks) and worker nodes, each a `ray start --block` process in
its own session (killing a node is ``kill -9`` of its session: its raylet and its workers), with
their own ports and custom resources (``node_a``, ``node_b``) so placement is observable. The head
listens on the host end of a veth pair.

`EnasWorker`: ``enasctl worker`` attached the documented way (deploy/ray-node-then.sh: it joins as
a Ray node with no CPUs, then ENAS_RAY_ADDRESS=auto) from its own network namespace (the veth's
other end) and its own mount namespace with a private /tmp, so it sees none of the head's Ray
session files: it reaches the head, PostgreSQL, Redis and the other nodes over the network only.
The API (``enasctl serve``) runs on the host; the test drives it with `EnasClient`.
Every process is started in a session of its own; teardown kills the sessions (by pid) and
deletes the namespace. State lives outside /tmp (the worker's /tmp is private).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.faults.conftest import PostgresServer, postgres_bin, redis_server_binary, session_pids, wait_for
from tests.stack import ROOT, base_env, free_port

needs_cluster = pytest.mark.skipif(
    os.environ.get("ENAS_CLUSTER_TEST") != "1", reason="set ENAS_CLUSTER_TEST=1 (make cluster-test)"
)
VENV_BIN = str(Path(sys.executable).parent)


def kill_session(proc: subprocess.Popen[Any]) -> None:
    """``kill -9`` of every process left in ``proc``'s session (it was started with one)."""
    for pid in session_pids(proc.pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)


class Veth:
    """A network namespace joined to the host by a veth pair: host ``host_ip``, inside ``ns_ip``."""

    def __init__(self) -> None:
        tag = secrets.token_hex(3)
        self.ns = f"enas-ct-{tag}"
        self.host_if, self.ns_if = f"ect{tag}h", f"ect{tag}n"
        net = 16 + secrets.randbelow(200)
        self.host_ip, self.ns_ip = f"10.231.{net}.1", f"10.231.{net}.2"
        for cmd in (
            f"ip netns add {self.ns}",
            f"ip link add {self.host_if} type veth peer name {self.ns_if}",
            f"ip link set {self.ns_if} netns {self.ns}",
            f"ip addr add {self.host_ip}/30 dev {self.host_if}",
            f"ip link set {self.host_if} up",
            f"ip netns exec {self.ns} ip addr add {self.ns_ip}/30 dev {self.ns_if}",
            f"ip netns exec {self.ns} ip link set {self.ns_if} up",
            f"ip netns exec {self.ns} ip link set lo up",
            # a default route, as a container has: Ray finds a node's own address by the route out
            # (without one it falls back to the host name's address, which is the host's)
            f"ip netns exec {self.ns} ip route add default via {self.host_ip}",
        ):
            subprocess.run(cmd.split(), check=True, capture_output=True, timeout=30)

    def delete(self) -> None:
        subprocess.run(["ip", "netns", "del", self.ns], capture_output=True, timeout=30)
        subprocess.run(["ip", "link", "del", self.host_if], capture_output=True, timeout=30)


class RayCluster:
    """A Ray head plus named worker nodes, all ``ray start --block`` processes on this host."""

    def __init__(self, folder: Path, ip: str) -> None:
        self.folder, self.ip = folder, ip
        self.port = free_port()
        self.address = f"{ip}:{self.port}"
        self.env = {
            **base_env(),
            "PATH": f"{VENV_BIN}:{os.environ['PATH']}",
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN": secrets.token_hex(16),
            "RAY_raylet_start_wait_time_s": "120",  # a loaded 2-core machine starts raylets slowly
        }
        self.nodes: dict[str, subprocess.Popen[bytes]] = {}
        # the nodes' own Ray folder: never /tmp/ray, where other Rays of this host record themselves
        # (a short path: Ray's socket paths must stay under 108 characters)
        self.temp_dir = tempfile.mkdtemp(prefix="enas-ct-")

    def _start(self, name: str, *args: str) -> None:
        log = open(self.folder / f"ray-{name}.log", "wb")  # noqa: SIM115 - the process owns it
        common = [
            f"--node-ip-address={self.ip}",
            # every port its own: nodes on one host otherwise race for the same ones
            f"--dashboard-agent-listen-port={free_port()}",
            f"--dashboard-agent-grpc-port={free_port()}",
            f"--node-manager-port={free_port()}",
            f"--object-manager-port={free_port()}",
            f"--metrics-export-port={free_port()}",
            f"--runtime-env-agent-port={free_port()}",
            "--disable-usage-stats",
            "--block",
        ]
        self.nodes[name] = subprocess.Popen(
            [f"{VENV_BIN}/ray", "start", *args, *common],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()

    def start_head(self) -> None:
        self._start(
            "head",
            "--head",
            f"--port={self.port}",
            f"--temp-dir={self.temp_dir}",  # the other nodes take the head's
            "--num-cpus=0",
            "--include-dashboard=false",
        )
        wait_for(self._head_answers, 60, "the Ray head")

    def start_node(self, name: str, cpus: int = 1) -> None:
        self._start(
            name,
            f"--address={self.address}",
            f"--num-cpus={cpus}",
            f"--resources={json.dumps({name: 1, 'pool': 1})}",
        )

    def _head_answers(self) -> bool:
        try:
            socket.create_connection((self.ip, self.port), timeout=2).close()
        except OSError:
            return False
        return True

    def alive_resources(self) -> set[str]:
        """Custom ``node_*`` resources of the nodes the head counts as alive."""
        out = self.query("result = [n['Resources'] for n in ray.nodes() if n['Alive']]")
        return {k for r in out for k in r if k.startswith("node_")}

    def query(self, code: str) -> Any:
        """Run ``code`` (``ray`` and ``state`` imported; it sets ``result``) in a short driver
        attached to the head; returns ``result`` (JSON)."""
        program = (
            "import json, ray, ray._private.state as state\n"
            f"ray.init(address={self.address!r}, logging_level='ERROR', log_to_driver=False)\n"
            f"{code}\n"
            "print('RESULT ' + json.dumps(result))\n"
        )
        done = subprocess.run(
            [sys.executable, "-c", program],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            cwd=ROOT,
        )
        lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
        assert lines, done.stdout[-2000:] + done.stderr[-3000:]
        return json.loads(lines[-1][len("RESULT ") :])

    def actor_nodes(self, prefix: str) -> list[str]:
        """The ``node_*`` resource of the node of each live actor whose name starts with ``prefix``."""
        return list(
            self.query(
                "nodes = {n['NodeID']: n['Resources'] for n in ray.nodes()}\n"
                "result = [next((k for k in nodes.get(a['Address']['NodeID'], {}) if k.startswith('node_')),"
                " 'other') for a in state.state.actor_table(None).values()"
                f" if a['State'] == 'ALIVE' and a['Name'].startswith({prefix!r})]"
            )
        )

    def node_names(self) -> dict[str, str]:
        """Ray node id -> its ``node_*`` resource (every node the head knew)."""
        return dict(
            self.query(
                "result = {n['NodeID']: next((k for k in n['Resources'] if k.startswith('node_')), 'other')"
                " for n in ray.nodes()}"
            )
        )

    def hold(self, node: str, cpus: int) -> None:
        """Take ``cpus`` CPUs of ``node`` with a detached placeholder actor (`release` frees them)."""
        self.query(
            "Hold = type('Hold', (), {'ping': lambda self: 1})\n"
            f"H = ray.remote(num_cpus={cpus}, resources={{{node!r}: 0.001}})(Hold)\n"
            f"h = H.options(name='hold-{node}', lifetime='detached', namespace='enas-test').remote()\n"
            "result = ray.get(h.ping.remote())"
        )

    def release(self, node: str) -> None:
        self.query(f"ray.kill(ray.get_actor('hold-{node}', namespace='enas-test'))\nresult = 1")

    def kill(self, name: str) -> None:
        """``kill -9`` of node ``name``: its raylet, its object store, its workers."""
        kill_session(self.nodes[name])

    def stop(self) -> None:
        for proc in self.nodes.values():
            kill_session(proc)
        shutil.rmtree(self.temp_dir, ignore_errors=True)


class EnasWorker:
    """``enasctl worker`` joined as a Ray node from its own network and mount namespace."""

    def __init__(self, veth: Veth, cluster: RayCluster, env: dict[str, str], log: Path) -> None:
        # Ray nodes take the head's temp dir; the documented `auto` looks in /tmp/ray, so this
        # private /tmp links one to the other (a real host's head uses /tmp/ray itself)
        inner = (
            f"mount -t tmpfs tmpfs /tmp && mkdir -p {cluster.temp_dir} && "
            f"ln -s {cluster.temp_dir} /tmp/ray && "
            f"exec {ROOT}/deploy/ray-node-then.sh {sys.executable} -m service.cli worker"
        )
        full_env = {
            **cluster.env,
            **env,
            "ENAS_RAY_HEAD": cluster.address,
            "ENAS_RAY_ADDRESS": "auto",
        }
        self.log = log
        out = open(log, "wb")  # noqa: SIM115 - the process owns it
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", veth.ns, "unshare", "-m", "--propagation", "private", "sh", "-c", inner],
            env=full_env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        out.close()

    def stop(self) -> None:
        kill_session(self.proc)


class NetPostgres(PostgresServer):
    """`PostgresServer` that also listens on ``ip`` and trusts the worker's namespace."""

    def __init__(self, folder: Path, ip: str) -> None:
        super().__init__(folder)
        self.ip = ip
        with open(self.data / "pg_hba.conf", "a") as hba:
            hba.write("host all all 10.231.0.0/16 trust\n")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.sockets} -c listen_addresses=127.0.0.1,{self.ip} -c fsync=off"
        log = str(self.data.parent / "postgres.log")
        self._run(postgres_bin("pg_ctl"), "-D", str(self.data), "-o", options, "-l", log, "-w", "start")

    def url_at(self, ip: str) -> str:
        return f"postgresql+psycopg://postgres@{ip}:{self.port}/postgres"


def start_redis(folder: Path, ip: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    args = [redis_server_binary(), "--port", str(port), "--bind", f"127.0.0.1 {ip}", "--protected-mode", "no"]
    args += ["--save", "", "--appendonly", "no", "--dir", str(folder)]
    log = open(folder / "redis.log", "wb")  # noqa: SIM115 - the process owns it
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    return proc, f"redis://{ip}:{port}/0"


class Site:
    """Everything of one cluster test: namespace, Ray nodes, PostgreSQL, Redis, API, enas worker."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.veth = Veth()
        self.ray = RayCluster(folder, self.veth.host_ip)
        self.pg_folder = Path(tempfile.mkdtemp(prefix="enas-pg-"))  # the postgres user reaches it
        self.pg = NetPostgres(self.pg_folder, self.veth.host_ip)
        self.pg.start()
        self.redis, redis_url = start_redis(folder, self.veth.host_ip)
        self.env = {
            "ENAS_HOME": str(folder / "home"),
            "ENAS_DATABASE_URL": self.pg.url_at(self.veth.host_ip),
            "ENAS_REDIS_URL": redis_url,
            "ENAS_ARTIFACT_DIR": str(folder / "artifacts"),  # a shared volume: every node sees it
            "ENAS_LEASE_TTL_S": "4",
            "ENAS_RECONCILE_INTERVAL_S": "1",
            "ENAS_RETRY_MAX_S": "2",
            "PYTHONUNBUFFERED": "1",
        }
        self.api_port = free_port()
        self.url = f"http://127.0.0.1:{self.api_port}"
        api_log = open(folder / "api.log", "wb")  # noqa: SIM115 - the process owns it
        self.api = subprocess.Popen(
            [sys.executable, "-m", "service.cli", "serve", "--port", str(self.api_port)],
            env={**base_env(), **self.env},
            cwd=ROOT,
            stdout=api_log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        api_log.close()
        self.worker: EnasWorker | None = None

    def start_worker(self) -> EnasWorker:
        self.worker = EnasWorker(self.veth, self.ray, self.env, self.folder / "worker.log")
        return self.worker

    def logs(self) -> str:
        parts = []
        for path in sorted(self.folder.glob("*.log")):
            parts.append(f"--- {path.name}\n{path.read_text(errors='replace')[-3000:]}")
        return "\n".join(parts)

    def close(self) -> None:
        for stop in (
            lambda: self.worker and self.worker.stop(),
            lambda: kill_session(self.api),
            self.ray.stop,
            lambda: kill_session(self.redis),
            self.pg.stop,
            self.veth.delete,
            lambda: shutil.rmtree(self.pg_folder, ignore_errors=True),
        ):
            with contextlib.suppress(Exception):
                stop()


@pytest.fixture
def site() -> Iterator[Site]:
    if os.geteuid() != 0 or not shutil.which("ip") or not shutil.which("unshare"):
        pytest.skip("needs root, ip and unshare (network and mount namespaces)")
    folder = ROOT / ".enas" / f"cluster-test-{secrets.token_hex(3)}"  # not /tmp: private to the worker
    folder.mkdir(parents=True)
    os.chmod(folder, 0o755)
    built = Site(folder)
    try:
        yield built
    finally:
        built.close()
        if os.environ.get("ENAS_CLUSTER_KEEP") != "1":
            shutil.rmtree(folder, ignore_errors=True)


def wait_until(predicate: Any, timeout: float, what: str, site: Site) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}\n{site.logs()}")
