"""The deployment files are checked without a Docker engine: they parse, and everything they name
exists (settings, CLI commands, Dockerfile, files copied into the image); no secret is written in them.
tests/compose/ runs the compose file for real (`make cluster-test`)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from service.cli.cli import app
from service.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
CLI_COMMANDS = {c.name or c.callback.__name__ for c in app.registered_commands} | {
    g.name for g in app.registered_groups
}
# read by deploy/ray-node.sh and ray-node-then.sh (the image's `ray-node`, `ray-node-then`), not by Settings
SCRIPT_VARS = {"ENAS_RAY_HEAD", "ENAS_WORKER_RESOURCES"}


def _enas_vars(env: dict[str, str] | list[dict[str, str]]) -> set[str]:
    names = env.keys() if isinstance(env, dict) else [e["name"] for e in env]
    return {n for n in names if n.startswith("ENAS_")}


def _assert_known_settings(names: set[str]) -> None:
    fields = {f"ENAS_{name.upper()}" for name in Settings.model_fields} | SCRIPT_VARS
    assert names <= fields, f"unknown settings: {names - fields}"


def _assert_enasctl(command: list[str]) -> None:
    if command and command[0] in ("ray-node", "ray-node-then"):
        assert (ROOT / "deploy" / f"{command[0]}.sh").is_file()
    if command and command[0] == "ray-node-then":
        command = command[1:]
    if command and command[0] == "enasctl":
        assert command[1] in CLI_COMMANDS, f"enasctl has no command {command[1]!r}"


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_topology() -> None:
    services = _compose()["services"]
    assert {"api", "worker", "ray-head", "ray-worker", "redis", "postgres", "migrate"} <= set(services)
    build = services["ray-head"]["build"]
    assert (ROOT / build["context"] / build["dockerfile"]).is_file()
    assert set(build["args"]) <= _dockerfile_args()
    for name in ("api", "worker", "migrate", "ray-worker", "ray-gpu"):
        _assert_known_settings(_enas_vars(services[name]["environment"]))
    for service in services.values():
        _assert_enasctl(service.get("command", []))
        for dep in service.get("depends_on", []):
            assert dep in services


def test_compose_order_attach_and_gpu() -> None:
    services = _compose()["services"]
    assert services["migrate"]["command"] == ["enasctl", "db", "upgrade"]
    for name in ("api", "worker"):
        assert services[name]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
    assert all("healthcheck" in services[n] for n in ("postgres", "redis", "ray-head", "api"))
    worker = services["worker"]
    assert worker["command"][0] == "ray-node-then" and worker["environment"]["ENAS_RAY_ADDRESS"] == "auto"
    assert "ENAS_RAY_HEAD" in (ROOT / "deploy" / "ray-node-then.sh").read_text()
    assert "ports" not in services["ray-head"], "the Ray dashboard is not published by default"
    gpu = services["ray-gpu"]
    assert gpu["profiles"] == ["gpu"]
    assert gpu["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
    assert gpu["image"] != services["ray-head"]["image"], "the gpu profile has its own (CUDA) image"
    assert gpu["build"]["args"]["TORCH_VARIANT"].startswith("${GPU_TORCH_VARIANT:-cu")
    assert "cu" in gpu["build"]["args"]["TORCH_INDEX"]
    assert set(gpu["build"]["args"]) <= _dockerfile_args()
    for name in ("ray-worker", "ray-gpu"):
        assert services[name]["command"] == ["ray-node"]
        assert {"ENAS_RAY_HEAD", "ENAS_WORKER_RESOURCES"} <= set(services[name]["environment"])
    artifact_mounts = {n: services[n]["volumes"] for n in ("ray-head", "ray-worker", "ray-gpu", "worker")}
    assert all("artifacts:/var/lib/enas/artifacts" in v for v in artifact_mounts.values())


def test_compose_secrets_come_from_env() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    required = set(re.findall(r"\$\{(\w+):\?", text))
    assert {"POSTGRES_PASSWORD", "ENAS_AUTH_TOKENS", "RAY_AUTH_TOKEN"} <= required
    example = (ROOT / ".env.example").read_text()
    documented = set(re.findall(r"^#? ?(\w+)=", example, re.M))
    assert set(re.findall(r"\$\{(\w+)", text)) <= documented
    assert "enas:enas@" not in text


def _dockerfile_args() -> set[str]:
    return set(re.findall(r"^ARG (\w+)", (ROOT / "deploy" / "Dockerfile").read_text(), re.M))


def test_dockerfile_copies_what_exists() -> None:
    text = (ROOT / "deploy" / "Dockerfile").read_text()
    for line in text.splitlines():
        if line.startswith("COPY ") and "$" not in line:
            for src in line.split()[1:-1]:
                assert (ROOT / src).exists(), src
    assert {"BASE", "EXTRA_CA", "TORCH_VERSION", "TORCH_VARIANT", "TORCH_INDEX"} <= _dockerfile_args()
    assert (ROOT / "deploy" / "ca").is_dir() and (ROOT / "deploy" / "wheels").is_dir()
    users = re.findall(r"^USER (\S+)", text, re.M)
    assert users and users[-1] not in ("root", "0")


def test_kuberay_manifest() -> None:
    docs = list(yaml.safe_load_all((ROOT / "deploy" / "kuberay" / "raycluster.yaml").read_text()))
    kinds = {d["kind"] for d in docs}
    assert {"RayCluster", "Deployment", "Service", "Job"} <= kinds
    cluster = next(d for d in docs if d["kind"] == "RayCluster")
    containers = cluster["spec"]["headGroupSpec"]["template"]["spec"]["containers"]
    for group in cluster["spec"]["workerGroupSpecs"]:
        containers += group["template"]["spec"]["containers"]
    for d in docs:
        if d["kind"] in ("Deployment", "Job"):
            containers += d["spec"]["template"]["spec"]["containers"]
    commands = [c.get("command", []) for c in containers]
    assert ["ray-node-then", "enasctl", "worker"] in commands and ["enasctl", "db", "upgrade"] in commands
    for c in containers:
        _assert_enasctl(c.get("command", []))
        _assert_known_settings(_enas_vars(c.get("env", [])))
        for e in c.get("env", []):
            if re.search(r"TOKEN|PASSWORD|DATABASE_URL", e["name"]):
                assert "secretKeyRef" in e.get("valueFrom", {}), f"{e['name']} must come from a Secret"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("{node_a: 1}", "is not JSON"),
        ('["node_a"]', "must be a JSON object"),
        ('{"node_a": 0}', "must be a positive number"),
        ('{"node_a": "1"}', "must be a positive number"),
        ('{"CPU": 1}', "is not a custom Ray resource name"),
    ],
)
def test_ray_node_rejects_bad_worker_resources(value: str, message: str) -> None:
    env = {**os.environ, "ENAS_RAY_HEAD": "ray-head:6379", "ENAS_WORKER_RESOURCES": value}
    done = subprocess.run(
        ["bash", str(ROOT / "deploy" / "ray-node.sh")], env=env, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 2, done
    assert "ENAS_WORKER_RESOURCES" in done.stderr and message in done.stderr
