"""The deployment files are checked without a Docker engine: they parse, and everything they name
exists (settings, CLI commands, Dockerfile, files copied into the image)."""

from __future__ import annotations

from pathlib import Path

import yaml

from service.cli.cli import app
from service.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
CLI_COMMANDS = {c.name or c.callback.__name__ for c in app.registered_commands}


def _enas_vars(env: dict[str, str] | list[dict[str, str]]) -> set[str]:
    names = env.keys() if isinstance(env, dict) else [e["name"] for e in env]
    return {n for n in names if n.startswith("ENAS_")}


def _assert_known_settings(names: set[str]) -> None:
    fields = {f"ENAS_{name.upper()}" for name in Settings.model_fields}
    assert names <= fields, f"unknown settings: {names - fields}"


def _assert_enasctl(command: list[str]) -> None:
    if command and command[0] == "enasctl":
        assert command[1] in CLI_COMMANDS, f"enasctl has no command {command[1]!r}"


def test_compose_topology() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"api", "worker", "ray-head", "ray-worker", "redis", "postgres"} <= set(services)
    build = services["ray-head"]["build"]
    assert (ROOT / build["context"] / build["dockerfile"]).is_file()
    for name in ("api", "worker"):
        _assert_known_settings(_enas_vars(services[name]["environment"]))
    for service in services.values():
        _assert_enasctl(service.get("command", []))
        for dep in service.get("depends_on", []):
            assert dep in services


def test_dockerfile_copies_what_exists() -> None:
    for line in (ROOT / "deploy" / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY "):
            for src in line.split()[1:-1]:
                assert (ROOT / src).exists(), src


def test_kuberay_manifest() -> None:
    docs = list(yaml.safe_load_all((ROOT / "deploy" / "kuberay" / "raycluster.yaml").read_text()))
    kinds = {d["kind"] for d in docs}
    assert {"RayCluster", "Deployment", "Service"} <= kinds
    cluster = next(d for d in docs if d["kind"] == "RayCluster")
    containers = cluster["spec"]["headGroupSpec"]["template"]["spec"]["containers"]
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    for c in containers + deployment["spec"]["template"]["spec"]["containers"]:
        _assert_enasctl(c.get("command", []))
        _assert_known_settings(_enas_vars(c.get("env", [])))
